//! The proxy-wasm side shared by every Palisade filter, and nothing more: read the request into
//! the core's plain-data view, apply a verdict, count decisions, write audit lines, pass the
//! identity along. Decisions live in `palisade-core`; this crate only translates.
//!
//! Every host call here tolerates the refusals Envoy can give (a missing property, a map that
//! is no longer available) so that a filter never traps on traffic.

use palisade_core::audit::AuditEvent;
use palisade_core::config::ConfigError;
use palisade_core::decision::{HeaderOp, LocalReply};
use palisade_core::http::{parse_socket_ip, Headers, RequestView, ResponseView};
use palisade_core::identity::{Identity, FILTER_STATE_PROPERTY};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType, MetricType};

pub mod layer;

/// Reads the request headers and connection facts into a [`RequestView`].
///
/// Call only in `on_http_request_headers`: Envoy refuses request headers afterwards.
pub fn request_view() -> RequestView {
    let headers = header_map(MapType::HttpRequestHeaders);
    let pseudo = |name: &str| headers.get(name).unwrap_or_default().to_string();
    RequestView {
        method: pseudo(":method"),
        path: pseudo(":path"),
        authority: pseudo(":authority"),
        scheme: pseudo(":scheme"),
        source_ip: property_string(&["source", "address"]).as_deref().and_then(parse_socket_ip),
        peer_principal: property_string(&["connection", "uri_san_peer_certificate"]).filter(|s| !s.is_empty()),
        route_name: property_string(&["xds", "route_name"]).filter(|s| !s.is_empty()),
        headers,
    }
}

/// Reads the response headers into a [`ResponseView`].
pub fn response_view() -> ResponseView {
    let headers = header_map(MapType::HttpResponseHeaders);
    let status = headers.get(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
    ResponseView { status, headers }
}

/// A header map with lower-case names; values that are not UTF-8 are kept lossily.
pub fn header_map(map: MapType) -> Headers {
    match hostcalls::get_map_bytes(map) {
        Ok(pairs) => Headers::from_pairs(
            pairs.into_iter().map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned())),
        ),
        Err(_) => Headers::new(),
    }
}

/// A property as a UTF-8 string; `None` when absent, refused, or not UTF-8.
pub fn property_string(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok()??;
    String::from_utf8(bytes).ok()
}

/// Applies header operations to a header map.
pub fn apply_header_ops(map: MapType, ops: &[HeaderOp]) {
    for op in ops {
        // Envoy answers Ok for every map operation while the map is available; the SDK
        // panics on anything else, so there is nothing to handle here.
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
    let serialized = serialize_pairs(headers);
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

/// proxy-wasm's map encoding: count, then (key length, value length) pairs, then the
/// NUL-terminated keys and values.
fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (key, value) in pairs {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

/// The caller's identity left in filter state by an authentication filter.
///
/// `None` when no filter set one. Unreadable state is logged, counted on `malformed`, and
/// treated as no identity, so every consumer fails closed on it.
pub fn read_identity(filter: &str, context_id: u32, malformed: Counter) -> Option<Identity> {
    let bytes = hostcalls::get_property(vec![FILTER_STATE_PROPERTY]).ok()??;
    match Identity::from_filter_state(&bytes) {
        Ok(identity) => Some(identity),
        Err(err) => {
            malformed.inc();
            log(LogLevel::Warn, &format!("[{context_id}] palisade {filter}: {err}"));
            None
        }
    }
}

/// Hands the identity to later filters through filter state.
pub fn write_identity(identity: &Identity) {
    let _ = hostcalls::set_property(vec![FILTER_STATE_PROPERTY], Some(&identity.to_filter_state()));
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

    /// Adds `n`.
    pub fn add(self, n: u64) {
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
