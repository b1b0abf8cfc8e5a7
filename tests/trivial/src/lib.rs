//! The trivial filter: an HTTP context that returns `Continue` from every callback and does
//! nothing else. `make bench` measures it as the unavoidable cost of one wasm filter (the ABI
//! hop and the VM), the yardstick for every Palisade filter's common path.
//!
//! Configured with the string `read_request_headers`, it also reads the request's header map
//! once per request and drops it: the bench's measure of what any filter that looks at a
//! header pays on top of the hop.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(TrivialRoot { read_headers: false }));
}}

struct TrivialRoot {
    read_headers: bool,
}

impl Context for TrivialRoot {}

impl RootContext for TrivialRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.read_headers = self.get_plugin_configuration().as_deref() == Some(b"read_request_headers".as_slice());
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Trivial { read_headers: self.read_headers }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Every other `HttpContext` callback keeps its default: `Action::Continue`.
struct Trivial {
    read_headers: bool,
}

impl Context for Trivial {}

impl HttpContext for Trivial {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.read_headers {
            // The same host call (and the host's call into the VM's allocator) as every
            // Palisade filter's first header read.
            std::hint::black_box(self.get_http_request_headers());
        }
        Action::Continue
    }
}
