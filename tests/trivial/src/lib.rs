//! The trivial filter: an HTTP context that returns `Continue` from every callback and does
//! nothing else. `make bench` measures it as the unavoidable cost of one wasm filter (the ABI
//! hop and the VM), the yardstick for every Palisade filter's common path.
//!
//! Its configuration can make it read the request's header map once per request and drop it,
//! the bench's measure of what any filter that looks at a header pays on top of the hop:
//! - `read_request_headers`: through the SDK, which decodes the map into a `String` per name
//!   and value;
//! - `read_request_header_bytes`: the host call alone, its bytes kept as they are, as
//!   Palisade's glue does before its own decoding (one allocation, no copy);
//! - `read_request_body`: those header bytes, then the body buffered to its end and read once,
//!   as request-validation and field-encryption do before inspecting it: the floor of any
//!   filter that looks at a whole body.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(TrivialRoot { read: Read::Nothing }));
}}

/// What the filter reads per request.
#[derive(Debug, Clone, Copy)]
enum Read {
    Nothing,
    /// `get_http_request_headers()`: the SDK's decoded pairs.
    Decoded,
    /// `proxy_get_header_map_pairs`' buffer, undecoded.
    Bytes,
    /// The header bytes, then the whole body (buffered until the end of the stream).
    Body,
}

struct TrivialRoot {
    read: Read,
}

impl Context for TrivialRoot {}

impl RootContext for TrivialRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.read = match self.get_plugin_configuration().as_deref() {
            Some(b"read_request_headers") => Read::Decoded,
            Some(b"read_request_header_bytes") => Read::Bytes,
            Some(b"read_request_body") => Read::Body,
            _ => Read::Nothing,
        };
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Trivial { read: self.read }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Every other `HttpContext` callback keeps its default: `Action::Continue`.
struct Trivial {
    read: Read,
}

impl Context for Trivial {}

impl HttpContext for Trivial {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.read {
            Read::Nothing => {}
            Read::Decoded => {
                std::hint::black_box(self.get_http_request_headers());
            }
            Read::Bytes | Read::Body => {
                std::hint::black_box(request_header_bytes());
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !matches!(self.read, Read::Body) {
            return Action::Continue;
        }
        if !end_of_stream {
            // Envoy keeps buffering; the next call sees everything received so far.
            return Action::Pause;
        }
        std::hint::black_box(self.get_http_request_body(0, body_size));
        Action::Continue
    }
}

/// The request's header map as the host encodes it: the same host call, and the same call
/// from the host into this module's allocator, as every Palisade filter's first header read.
fn request_header_bytes() -> Option<Vec<u8>> {
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    }
    const HTTP_REQUEST_HEADERS: u32 = 0;
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer and a length into the two locals.
    let status = unsafe { proxy_get_header_map_pairs(HTTP_REQUEST_HEADERS, &mut data, &mut size) };
    if status != 0 || data.is_null() {
        return None;
    }
    // SAFETY: `data` comes from this module's `proxy_on_memory_allocate` (the SDK's, a boxed
    // slice of exactly `size` bytes) and is now ours, as the SDK's own `get_map_bytes` assumes.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}
