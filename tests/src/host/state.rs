//! The state behind the hostcalls: per host ([`HostShared`]), per VM ([`VmState`], the wasmtime
//! store data) and per HTTP stream ([`Stream`], shared by every filter of a chain).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use super::abi::LogLevel;
use super::callouts::{GrpcCall, HttpCall};
use super::headers::Headers;
use super::message::PropertyValue;
use super::shared::{Metrics, SharedData, SharedQueues};
use super::wasi::{TestClock, WasiHost, WasiState};

/// One captured log line (`proxy_log`, or stdout/stderr through WASI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The level.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// The context that logged it (root context id 1, HTTP contexts from 2).
    pub context_id: u32,
}

/// A local reply a filter sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Response code details.
    pub details: String,
    /// Body.
    pub body: Vec<u8>,
    /// Headers as given (lower-cased).
    pub headers: Headers,
    /// gRPC status; `None` outside 0..=16 (the SDK passes -1).
    pub grpc_status: Option<u32>,
    /// The plugin that sent it.
    pub sent_by: String,
}

/// Host-wide state shared by every VM of one [`super::Host`].
pub(crate) struct HostShared {
    pub clock: Rc<TestClock>,
    pub data: RefCell<SharedData>,
    pub queues: RefCell<SharedQueues>,
    pub metrics: RefCell<Metrics>,
    pub clusters: RefCell<BTreeSet<String>>,
    pub next_token: Cell<u32>,
    pub next_plugin: Cell<u64>,
    pub seed: Cell<u64>,
    /// Live VMs, for delivering `on_queue_ready` to a queue's owner.
    pub vms: RefCell<Vec<(u64, Weak<RefCell<super::vm::Vm>>)>>,
}

impl std::fmt::Debug for HostShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostShared").field("clock", &self.clock).finish_non_exhaustive()
    }
}

impl HostShared {
    pub fn token(&self) -> u32 {
        let token = self.next_token.get().wrapping_add(1).max(1);
        self.next_token.set(token);
        token
    }
}

/// The callback a filter is in, for Envoy's availability rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callback {
    RequestHeaders,
    RequestBody { eos: bool },
    RequestTrailers,
    ResponseHeaders,
    ResponseBody { eos: bool },
    ResponseTrailers,
    Log,
}

/// One filter's view of a stream.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub callback: Option<Callback>,
    /// Request headers readable: from the headers callback until it continues.
    pub request_headers_open: bool,
    pub response_headers_open: bool,
    /// Body data buffered by this filter (accumulated while it pauses).
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
}

impl Slot {
    pub fn map_available(&self, map: i32) -> bool {
        let callback = self.callback;
        if callback == Some(Callback::Log) {
            return true;
        }
        match map {
            0 => self.request_headers_open,
            1 => matches!(callback, Some(Callback::RequestTrailers | Callback::RequestBody { eos: true })),
            2 => self.response_headers_open,
            3 => matches!(callback, Some(Callback::ResponseTrailers | Callback::ResponseBody { eos: true })),
            _ => false,
        }
    }
}

/// An HTTP stream as every filter of the chain sees it.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub request_headers: Headers,
    pub request_trailers: Headers,
    pub response_headers: Headers,
    pub response_trailers: Headers,
    pub properties: Vec<(Vec<String>, PropertyValue)>,
    /// Filter state written by `proxy_set_property` (key = the raw path).
    pub filter_state: BTreeMap<Vec<u8>, Vec<u8>>,
    pub slots: Vec<Slot>,
    /// A local reply sent during the current callback: (slot, reply).
    pub local_reply: Option<(usize, LocalReply)>,
    /// `proxy_continue_stream` calls: (slot, stream type).
    pub continues: Vec<(usize, i32)>,
    /// `proxy_close_stream` calls: (slot, stream type).
    pub closes: Vec<(usize, i32)>,
    /// Nanoseconds since the epoch when the request arrived (`request.time`).
    pub start_ns: u64,
    pub connection_id: u64,
}

/// Data a callout callback may read, only while it runs.
#[derive(Debug, Default)]
pub(crate) struct CalloutData {
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
}

/// The wasmtime store data of one VM.
#[derive(Debug)]
pub(crate) struct VmState {
    pub wasi: WasiState,
    pub host: Rc<HostShared>,
    pub id: u64,
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub log_level: LogLevel,
    pub logs: Vec<LogEntry>,
    pub root_context: u32,
    pub current_context: u32,
    /// Live HTTP contexts: id -> (stream, this filter's slot).
    pub streams: BTreeMap<u32, (Rc<RefCell<Stream>>, usize)>,
    pub tick_period_ms: u32,
    pub http_calls: BTreeMap<u32, HttpCall>,
    pub grpc_calls: BTreeMap<u32, GrpcCall>,
    pub callout: Option<CalloutData>,
    /// `proxy_get_status`: (code, message).
    pub status: (u32, Vec<u8>),
    /// Whether an HTTP context called `proxy_done`.
    pub done_called: bool,
    /// Every crossing of the wasm boundary so far.
    pub crossings: Crossings,
}

/// Crossings of the wasm boundary. In Envoy each one costs far more CPU than the guest code
/// around it (V8's C API wraps every argument), so benches count them next to fuel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crossings {
    /// Calls from the guest to a host function (proxy-wasm and WASI imports).
    pub host_calls: u64,
    /// Calls from the host into the guest (callbacks and the guest allocator).
    pub guest_calls: u64,
}

impl Crossings {
    /// Both kinds together.
    pub fn total(self) -> u64 {
        self.host_calls + self.guest_calls
    }
}

impl VmState {
    pub fn stream(&self) -> Option<(Rc<RefCell<Stream>>, usize)> {
        self.streams.get(&self.current_context).cloned()
    }
}

impl WasiHost for VmState {
    fn wasi(&mut self) -> &mut WasiState {
        &mut self.wasi
    }

    fn log(&mut self, level: LogLevel, message: String) {
        let context_id = self.current_context;
        self.logs.push(LogEntry { level, message, context_id });
    }
}
