//! The proxy-wasm side shared by every Palisade filter, and nothing more: read the request into
//! the core's plain-data view, apply a verdict, count decisions, write audit lines, pass the
//! identity along. Decisions live in `palisade-core`; this crate only translates.
//!
//! Every host call here tolerates the refusals Envoy can give (a missing property, a map that
//! is no longer available) so that a filter never traps on traffic.

use std::rc::Rc;

use palisade_core::audit::AuditEvent;
use palisade_core::config::ConfigError;
use palisade_core::decision::{HeaderOp, LocalReply};
use palisade_core::http::{encode_pairs, parse_socket_ip, Headers, RequestView, ResponseView};
use palisade_core::identity::{Identity, FILTER_STATE_PROPERTY};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType, MetricType};

pub mod layer;

/// Which connection properties a filter reads into its [`RequestView`].
///
/// Each is a `get_property` host call, and one that returns a value also costs the host a call
/// into the VM to allocate it: a filter asks only for what its compiled config uses, and reads
/// the rest with [`complete_request_view`] when it needs the whole view (an audit line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewNeeds {
    /// `source.address` into [`RequestView::source_ip`].
    pub source_ip: bool,
    /// `connection.uri_san_peer_certificate` into [`RequestView::peer_principal`].
    pub peer_principal: bool,
    /// `xds.route_name` into [`RequestView::route_name`].
    pub route_name: bool,
}

impl ViewNeeds {
    /// Every property: what [`request_view`] reads.
    pub const ALL: Self = Self { source_ip: true, peer_principal: true, route_name: true };
    /// No property: headers only.
    pub const NONE: Self = Self { source_ip: false, peer_principal: false, route_name: false };
}

/// Reads the request headers and connection facts into a [`RequestView`].
///
/// Call only in `on_http_request_headers`: Envoy refuses request headers afterwards.
pub fn request_view() -> RequestView {
    request_view_with(ViewNeeds::ALL)
}

/// Reads the request headers and only the connection properties `needs` names; the others
/// stay `None` until [`complete_request_view`] reads them.
///
/// Call only in `on_http_request_headers`: Envoy refuses request headers afterwards.
pub fn request_view_with(needs: ViewNeeds) -> RequestView {
    let headers = header_map(MapType::HttpRequestHeaders);
    let pseudo = |name: &str| headers.get(name).unwrap_or_default().to_string();
    let mut view = RequestView {
        method: pseudo(":method"),
        path: pseudo(":path"),
        authority: pseudo(":authority"),
        scheme: pseudo(":scheme"),
        headers,
        ..RequestView::default()
    };
    read_properties(&mut view, needs);
    view
}

/// Reads the properties that `read` (what [`request_view_with`] was given) left out, so that
/// `view` equals what [`request_view`] would have returned.
pub fn complete_request_view(view: &mut RequestView, read: ViewNeeds) {
    let missing =
        ViewNeeds { source_ip: !read.source_ip, peer_principal: !read.peer_principal, route_name: !read.route_name };
    read_properties(view, missing);
}

fn read_properties(view: &mut RequestView, needs: ViewNeeds) {
    if needs.source_ip {
        view.source_ip = property_string(&["source", "address"]).as_deref().and_then(parse_socket_ip);
    }
    if needs.peer_principal {
        view.peer_principal = property_string(&["connection", "uri_san_peer_certificate"]).filter(|s| !s.is_empty());
    }
    if needs.route_name {
        view.route_name = property_string(&["xds", "route_name"]).filter(|s| !s.is_empty());
    }
}

/// Reads the response headers into a [`ResponseView`].
pub fn response_view() -> ResponseView {
    let headers = header_map(MapType::HttpResponseHeaders);
    let status = headers.get(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
    ResponseView { status, headers }
}

/// A header map with lower-case names; values that are not UTF-8 are kept lossily.
///
/// The host's encoded map becomes the map's text as it is ([`Headers::from_map_encoding`]):
/// two allocations whatever the number of headers, where the SDK's decoding makes two per
/// header.
pub fn header_map(map: MapType) -> Headers {
    layer::cached_header_map(map, || read_header_map(map))
}

fn read_header_map(map: MapType) -> Headers {
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer and a length into the two locals; the pointer comes
    // from this module's `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes),
    // whose ownership passes to us, as the SDK's own `get_map_bytes` assumes.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != 0 || data.is_null() {
        return Headers::new();
    }
    // SAFETY: see above: `data` is an allocation of exactly `size` bytes that we now own.
    let bytes = unsafe { Vec::from_raw_parts(data, size, size) };
    Headers::from_map_encoding(bytes)
}

/// A property as a UTF-8 string; `None` when absent, refused, or not UTF-8.
pub fn property_string(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok()??;
    String::from_utf8(bytes).ok()
}

/// Applies header operations to a header map.
pub fn apply_header_ops(map: MapType, ops: &[HeaderOp]) {
    ops.iter().for_each(|op| apply_header_op(map, op));
}

/// Removes every value of `name` from a header map.
pub fn remove_header(map: MapType, name: &str) {
    apply_header_op(map, &HeaderOp::Remove(name.to_string()));
}

/// One header operation on the live map: one host call, two for `SetIfAbsent`.
fn apply_header_op(map: MapType, op: &HeaderOp) {
    layer::header_map_written(map);
    // Envoy answers Ok for every map operation while the map is available; the SDK panics on
    // anything else, so there is nothing to handle here.
    let _ = match op {
        HeaderOp::Set(name, value) => hostcalls::set_map_value(map, name, Some(value)),
        HeaderOp::SetIfAbsent(name, value) => match hostcalls::get_map_value_bytes(map, name) {
            Ok(Some(_)) => Ok(()),
            _ => hostcalls::add_map_value(map, name, value),
        },
        HeaderOp::Append(name, value) => hostcalls::add_map_value(map, name, value),
        HeaderOp::Remove(name) => hostcalls::set_map_value(map, name, None),
    };
}

/// Applies header operations to a map whose content before them is `current` (as
/// [`header_map`] read it), with as few host calls as their effect allows.
///
/// In Envoy a host call costs about as much CPU as a few thousand guest instructions.
/// Independent operations ([`palisade_core::decision::independent`]) become one
/// `proxy_set_header_map_pairs`, which Envoy runs as "remove every header, then `addCopy` each
/// pair in order": the pairs are `current` after the operations, so the map ends as one call
/// per operation would leave it. Otherwise each operation is its own call, and `current` spares
/// the calls that cannot change anything.
pub fn rewrite_header_map(map: MapType, current: &Headers, ops: &[&HeaderOp], independent: bool) {
    if independent && ops.len() > 1 {
        let encoded = current.encode_after_independent(ops);
        let count = encoded.get(..4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_le_bytes) as usize;
        if count <= HOST_PAIRS_MAX_COUNT && encoded.len() <= HOST_PAIRS_MAX_BYTES {
            set_header_map_pairs(map, &encoded);
            return;
        }
        // Beyond these the host would read an empty map and drop every header.
    }
    if independent {
        ops.iter().for_each(|op| apply_header_op_known(map, op, current));
    } else {
        ops.iter().for_each(|op| apply_header_op(map, op));
    }
}

/// cpp-host's limits on a map passed to it (`PROXY_WASM_HOST_PAIRS_MAX_COUNT` and `_BYTES`):
/// beyond them it reads the map as empty.
const HOST_PAIRS_MAX_COUNT: usize = 1024;
const HOST_PAIRS_MAX_BYTES: usize = 1 << 20;

/// One operation whose effect `current` tells (exact when the operations are independent): no
/// host call for removing a header the map lacks or for adding one it already has.
fn apply_header_op_known(map: MapType, op: &HeaderOp, current: &Headers) {
    layer::header_map_written(map);
    let _ = match op {
        HeaderOp::Set(name, value) => hostcalls::set_map_value(map, name, Some(value)),
        HeaderOp::SetIfAbsent(name, value) if !current.contains(name) => hostcalls::add_map_value(map, name, value),
        HeaderOp::Append(name, value) => hostcalls::add_map_value(map, name, value),
        HeaderOp::Remove(name) if current.contains(name) => hostcalls::set_map_value(map, name, None),
        HeaderOp::SetIfAbsent(..) | HeaderOp::Remove(_) => Ok(()),
    };
}

/// `proxy_set_header_map_pairs` with an encoded map.
fn set_header_map_pairs(map: MapType, encoded: &[u8]) {
    layer::header_map_written(map);
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_set_header_map_pairs(map_type: u32, map_data: *const u8, map_size: usize) -> u32;
    }
    // SAFETY: the pointer is valid for its length for the duration of the call; the host
    // copies the data before returning. Envoy answers Ok while the map is available.
    let _ = unsafe { proxy_set_header_map_pairs(map as u32, encoded.as_ptr(), encoded.len()) };
}

/// Sends a local reply. The caller then returns `Action::Pause`.
pub fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let body = if reply.body.is_empty() { None } else { Some(reply.body.as_slice()) };
    layer::note_local_reply();
    let _ = send_local_response(reply.status, &reply.details, body, &headers);
}

/// `proxy_send_local_response` with response code details, which the SDK does not pass.
fn send_local_response(status: u16, details: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Result<(), ()> {
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_send_local_response(
            status_code: u32,
            details_data: *const u8,
            details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
    }
    let serialized = encode_pairs(headers.iter().copied());
    let body = body.unwrap_or_default();
    // SAFETY: every pointer is valid for its length for the duration of the call; the host
    // copies the data before returning.
    let status = unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            -1,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(())
    }
}

/// The caller's identity left in filter state by an authentication filter; in the gateway
/// bundle, the one an earlier layer wrote in this callback, as it was written.
///
/// `None` when no filter set one. Unreadable state is logged, counted on `malformed`, and
/// treated as no identity, so every consumer fails closed on it.
pub fn read_identity(filter: &str, context_id: u32, malformed: Counter) -> Option<Rc<Identity>> {
    if let Some(identity) = layer::written_identity() {
        return Some(identity);
    }
    let bytes = hostcalls::get_property(vec![FILTER_STATE_PROPERTY]).ok()??;
    match Identity::from_filter_state(&bytes) {
        Ok(identity) => Some(Rc::new(identity)),
        Err(err) => {
            malformed.inc();
            log(LogLevel::Warn, &format!("[{context_id}] palisade {filter}: {err}"));
            None
        }
    }
}

/// Hands the identity to later filters through filter state, as `filter_state`
/// ([`Identity::to_filter_state`] of `identity`, which the caller may keep serialized).
pub fn write_identity(identity: Rc<Identity>, filter_state: &[u8]) {
    let _ = hostcalls::set_property(vec![FILTER_STATE_PROPERTY], Some(filter_state));
    layer::identity_written(identity);
}

/// Writes an audit event as one JSON line at info level.
pub fn audit(event: &AuditEvent) {
    let _ = hostcalls::log(LogLevel::Info, &event.to_json_line());
}

/// Logs at `level`, ignoring the (never refused) result.
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Reads the plugin configuration and compiles it; logs and returns `None` on error, so that
/// `on_configure` returns false and Envoy rejects the config. Inside the gateway bundle this is
/// the layer's own configuration, and errors name the field from the bundle's root.
pub fn load_config<T>(filter: &str, compile: impl FnOnce(&[u8]) -> Result<T, ConfigError>) -> Option<T> {
    let (bytes, field) = layer::layer_config().unwrap_or_else(|| {
        let bytes = hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        (bytes, String::new())
    });
    match compile(&bytes).map_err(|err| err.within(&field)) {
        Ok(config) => Some(config),
        Err(err) => {
            log(LogLevel::Error, &format!("palisade {filter}: invalid configuration: {err}"));
            None
        }
    }
}

/// An Envoy counter (a proxy-wasm metric), shown on the admin `/stats` page.
#[derive(Debug, Clone, Copy)]
pub struct Counter(Option<u32>);

impl Counter {
    /// Defines (or finds) the counter `name`. Envoy shows it as `wasmcustom.<name>`.
    pub fn new(name: &str) -> Self {
        Self(hostcalls::define_metric(MetricType::Counter, name).ok())
    }

    /// Adds one.
    pub fn inc(self) {
        self.add(1);
    }

    /// Adds `n`; adding zero makes no host call.
    pub fn add(self, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(id) = self.0 {
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// The proxy's clock, in milliseconds since the Unix epoch (0 if refused).
pub fn now_millis() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
