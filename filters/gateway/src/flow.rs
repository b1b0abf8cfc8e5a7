//! One HTTP stream through every layer, run as Envoy runs a chain of separate filters.
//!
//! The bundle is one filter to Envoy; inside it, each layer keeps its own HTTP context and sees
//! the callbacks it would see as a separate filter in the same place of `http_filters`:
//! - the request path runs layers 1..N, the response path N..1;
//! - a layer that pauses the request headers holds every later layer until it resumes the
//!   stream (through [`palisade_glue::layer::resume_http_request`], which lands in [`resume`]);
//! - a layer that buffers a body (`Pause` before the end of stream) holds the later layers, the
//!   earlier ones see each new chunk, and once it continues the later layers see the whole
//!   buffered body at once;
//! - a local reply from layer k ends the request path and runs the response callbacks of layers
//!   k..1 only.
//!
//! Assumption shared with every Palisade filter: a layer that buffers a body does so from its
//! first chunk, and a layer that lets chunks pass does not read them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::{Rc, Weak};

use palisade_core::decision::LocalReply;
use palisade_glue::layer::{take_local_reply, with_callback_cache};
use palisade_glue::send_reply;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType};

/// Hashes a context id with one multiplication: ids are host-chosen integers, not attacker
/// input, and SipHash (the std default) cost more than the rest of the map per stream.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, value: u64) {
        // Fibonacci hashing: spreads consecutive ids over the high bits hashbrown probes with.
        self.0 = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type StreamMap = HashMap<u32, Weak<RefCell<Flow>>, BuildHasherDefault<IdHasher>>;

thread_local! {
    /// Live streams by context id, for [`resume`].
    static STREAMS: RefCell<StreamMap> = RefCell::new(StreamMap::default());
}

/// Continues the stream `context_id` after the layer holding its request headers let them go:
/// the later layers run, and the request goes upstream only if they all continue.
pub fn resume(context_id: u32) {
    let flow = STREAMS.with(|streams| streams.borrow().get(&context_id).and_then(Weak::upgrade));
    let Some(flow) = flow else { return };
    // Resumes come from root callbacks, never while the stream's own callback runs.
    let Ok(mut flow) = flow.try_borrow_mut() else { return };
    flow.resume_request();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

impl Direction {
    fn buffer(self) -> BufferType {
        match self {
            Self::Request => BufferType::HttpRequestBody,
            Self::Response => BufferType::HttpResponseBody,
        }
    }
}

/// The request headers a layer paused, with the arguments the later layers get on resume.
#[derive(Debug, Clone, Copy)]
struct HeldHeaders {
    layer: usize,
    num_headers: usize,
    end_of_stream: bool,
}

/// A body a layer is buffering: its position in the direction's order, and the bytes buffered
/// when it last paused (the later chunks arrive appended to them).
#[derive(Debug, Clone, Copy)]
struct HeldBody {
    position: usize,
    bytes: usize,
}

/// The layers a direction runs, in order, as (position, layer) pairs: layer = position on the
/// request path, the reverse on the response path. A value, so callbacks allocate nothing.
#[derive(Debug, Clone, Copy)]
struct Order {
    len: usize,
    reversed: bool,
}

impl Order {
    fn layers(self) -> impl Iterator<Item = (usize, usize)> {
        let Self { len, reversed } = self;
        (0..len).map(move |position| (position, if reversed { len.saturating_sub(position + 1) } else { position }))
    }
}

/// The state of one stream through the layers.
pub struct Flow {
    layers: Vec<Box<dyn HttpContext>>,
    /// Some layer had no HTTP context: the stream fails closed.
    incomplete: bool,
    headers_held: Option<HeldHeaders>,
    /// The layer whose local reply ended the request path.
    replied_by: Option<usize>,
    request_body: Option<HeldBody>,
    response_body: Option<HeldBody>,
}

impl Flow {
    fn order(&self, direction: Direction) -> Order {
        match direction {
            Direction::Request => Order { len: self.layers.len(), reversed: false },
            // A local reply runs the response callbacks of its sender and the layers before it;
            // while a layer holds the request headers, only it can have replied.
            Direction::Response => {
                let last = self.replied_by.or(self.headers_held.map(|h| h.layer));
                let len = last.map_or(self.layers.len(), |k| k.saturating_add(1)).min(self.layers.len());
                Order { len, reversed: true }
            }
        }
    }

    fn held_body(&mut self, direction: Direction) -> &mut Option<HeldBody> {
        match direction {
            Direction::Request => &mut self.request_body,
            Direction::Response => &mut self.response_body,
        }
    }

    /// Records a local reply the layer just sent; true if it did.
    fn replied(&mut self, layer: usize, direction: Direction) -> bool {
        if !take_local_reply() {
            return false;
        }
        if direction == Direction::Request && self.replied_by.is_none() {
            self.replied_by = Some(layer);
        }
        true
    }

    fn request_headers(&mut self, from: usize, num_headers: usize, end_of_stream: bool) -> Action {
        if self.incomplete || self.layers.is_empty() {
            send_reply(&LocalReply::json(500, "gateway_unconfigured", "the gateway has no configuration"));
            return Action::Pause;
        }
        take_local_reply();
        with_callback_cache(|| {
            for layer in from..self.layers.len() {
                let Some(context) = self.layers.get_mut(layer) else { break };
                let action = context.on_http_request_headers(num_headers, end_of_stream);
                if self.replied(layer, Direction::Request) {
                    return Action::Pause;
                }
                if action != Action::Continue {
                    self.headers_held = Some(HeldHeaders { layer, num_headers, end_of_stream });
                    return Action::Pause;
                }
            }
            Action::Continue
        })
    }

    fn resume_request(&mut self) {
        let Some(held) = self.headers_held.take() else {
            // Nothing held in the bundle: resume the stream as the separate filter would.
            let _ = hostcalls::resume_http_request();
            return;
        };
        let from = held.layer.saturating_add(1);
        if self.request_headers(from, held.num_headers, held.end_of_stream) == Action::Continue {
            let _ = hostcalls::resume_http_request();
        }
    }

    fn response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        take_local_reply();
        with_callback_cache(|| {
            for (_, layer) in self.order(Direction::Response).layers() {
                let Some(context) = self.layers.get_mut(layer) else { continue };
                let action = context.on_http_response_headers(num_headers, end_of_stream);
                if self.replied(layer, Direction::Response) || action != Action::Continue {
                    return Action::Pause;
                }
            }
            Action::Continue
        })
    }

    fn body(&mut self, direction: Direction, size: usize, end_of_stream: bool) -> Action {
        let order = self.order(direction);
        let held = self.held_body(direction).take();
        let (held_at, held_bytes) = held.map_or((0, 0), |h| (h.position, h.bytes));
        let mut buffered = size;
        take_local_reply();
        for (position, layer) in order.layers() {
            // Layers before the one buffering already passed the earlier bytes: they see the new ones.
            let seen = if position < held_at { size.saturating_sub(held_bytes) } else { buffered };
            let Some(context) = self.layers.get_mut(layer) else { continue };
            let action = match direction {
                Direction::Request => context.on_http_request_body(seen, end_of_stream),
                Direction::Response => context.on_http_response_body(seen, end_of_stream),
            };
            if self.replied(layer, direction) {
                return Action::Pause;
            }
            if action != Action::Continue {
                *self.held_body(direction) = Some(HeldBody { position, bytes: buffered });
                return Action::Pause;
            }
            if position >= held_at {
                // The layer may have replaced the body: the next one sees what it left.
                buffered = buffer_size(direction.buffer()).unwrap_or(buffered);
            }
        }
        Action::Continue
    }

    fn trailers(&mut self, direction: Direction, num_trailers: usize) -> Action {
        let order = self.order(direction);
        let held_at = self.held_body(direction).take().map(|h| h.position);
        take_local_reply();
        for (position, layer) in order.layers() {
            // After a buffering layer let go, each later layer gets the body, then the trailers.
            if held_at.is_some_and(|held_at| position > held_at) {
                let size = buffer_size(direction.buffer()).unwrap_or(0);
                if size > 0 {
                    let Some(context) = self.layers.get_mut(layer) else { continue };
                    let _ = match direction {
                        Direction::Request => context.on_http_request_body(size, false),
                        Direction::Response => context.on_http_response_body(size, false),
                    };
                    if self.replied(layer, direction) {
                        return Action::Pause;
                    }
                }
            }
            let Some(context) = self.layers.get_mut(layer) else { continue };
            let action = match direction {
                Direction::Request => context.on_http_request_trailers(num_trailers),
                Direction::Response => context.on_http_response_trailers(num_trailers),
            };
            if self.replied(layer, direction) || action != Action::Continue {
                return Action::Pause;
            }
        }
        Action::Continue
    }
}

/// The size of a body buffer (`proxy_get_buffer_status`, which the SDK does not wrap).
fn buffer_size(buffer: BufferType) -> Option<usize> {
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_buffer_status(buffer_type: u32, length: *mut usize, flags: *mut u32) -> u32;
    }
    let mut length = 0usize;
    let mut flags = 0u32;
    // SAFETY: both out-pointers are valid, aligned locals for the duration of the call.
    let status = unsafe { proxy_get_buffer_status(buffer as u32, &mut length, &mut flags) };
    (status == 0).then_some(length)
}

/// The bundle's HTTP context: forwards every callback to the layers' contexts.
pub struct GatewayStream {
    context_id: u32,
    flow: Rc<RefCell<Flow>>,
}

impl GatewayStream {
    /// A stream over the layers' HTTP contexts (`None` where a layer gave none).
    pub fn new(context_id: u32, layers: impl ExactSizeIterator<Item = Option<Box<dyn HttpContext>>>) -> Self {
        let mut incomplete = false;
        let mut contexts = Vec::with_capacity(layers.len());
        for layer in layers {
            match layer {
                Some(context) => contexts.push(context),
                None => incomplete = true,
            }
        }
        let flow = Flow {
            layers: contexts,
            incomplete,
            headers_held: None,
            replied_by: None,
            request_body: None,
            response_body: None,
        };
        let flow = Rc::new(RefCell::new(flow));
        STREAMS.with(|streams| streams.borrow_mut().insert(context_id, Rc::downgrade(&flow)));
        Self { context_id, flow }
    }

    /// Runs `f` on the flow; a flow already in use (never expected) stops the stream.
    fn with_flow(&self, f: impl FnOnce(&mut Flow) -> Action) -> Action {
        match self.flow.try_borrow_mut() {
            Ok(mut flow) => f(&mut flow),
            Err(_) => Action::Pause,
        }
    }
}

impl Drop for GatewayStream {
    fn drop(&mut self) {
        STREAMS.with(|streams| {
            if let Ok(mut streams) = streams.try_borrow_mut() {
                streams.remove(&self.context_id);
            }
        });
    }
}

impl Context for GatewayStream {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, num_trailers: usize) {
        if let Ok(mut flow) = self.flow.try_borrow_mut() {
            for layer in &mut flow.layers {
                layer.on_http_call_response(token_id, num_headers, body_size, num_trailers);
            }
        }
    }

    fn on_done(&mut self) -> bool {
        if let Ok(mut flow) = self.flow.try_borrow_mut() {
            for layer in &mut flow.layers {
                layer.on_done();
            }
        }
        true
    }
}

impl HttpContext for GatewayStream {
    fn on_http_request_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        self.with_flow(|flow| flow.request_headers(0, num_headers, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with_flow(|flow| flow.body(Direction::Request, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, num_trailers: usize) -> Action {
        self.with_flow(|flow| flow.trailers(Direction::Request, num_trailers))
    }

    fn on_http_response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action {
        self.with_flow(|flow| flow.response_headers(num_headers, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.with_flow(|flow| flow.body(Direction::Response, body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, num_trailers: usize) -> Action {
        self.with_flow(|flow| flow.trailers(Direction::Response, num_trailers))
    }

    fn on_log(&mut self) {
        if let Ok(mut flow) = self.flow.try_borrow_mut() {
            for layer in &mut flow.layers {
                layer.on_log();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_the_layers_per_direction() {
        let request: Vec<_> = Order { len: 3, reversed: false }.layers().collect();
        assert_eq!(request, [(0, 0), (1, 1), (2, 2)]);
        let response: Vec<_> = Order { len: 3, reversed: true }.layers().collect();
        assert_eq!(response, [(0, 2), (1, 1), (2, 0)]);
        assert_eq!(Order { len: 0, reversed: true }.layers().count(), 0);
    }

    #[test]
    fn spreads_consecutive_context_ids() {
        let hash = |id: u32| {
            let mut hasher = IdHasher::default();
            hasher.write_u32(id);
            hasher.finish() >> 57
        };
        let top: std::collections::HashSet<u64> = (2..66).map(hash).collect();
        assert!(top.len() > 32, "{top:?}");
    }
}
