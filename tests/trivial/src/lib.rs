//! The trivial filter: an HTTP context that returns `Continue` from every callback and does
//! nothing else. `make bench` measures it as the unavoidable cost of one wasm filter (the ABI
//! hop and the VM), the yardstick for every Palisade filter's common path.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(TrivialRoot));
}}

struct TrivialRoot;

impl Context for TrivialRoot {}

impl RootContext for TrivialRoot {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Trivial))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Every `HttpContext` callback keeps its default: `Action::Continue`.
struct Trivial;

impl Context for Trivial {}

impl HttpContext for Trivial {}
