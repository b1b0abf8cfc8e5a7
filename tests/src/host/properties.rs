//! Properties (notes §2.8): NUL-separated path segments, values encoded as Envoy does, unknown
//! top-level names read filter state written with `proxy_set_property`.

use super::abi::Status;
use super::state::{Stream, VmState};

/// Where a request comes from unless the test says otherwise.
pub const DEFAULT_SOURCE: &str = "127.0.0.1:50000";
/// The listener address unless the test says otherwise.
pub const DEFAULT_DESTINATION: &str = "127.0.0.1:10000";

/// Top-level names Envoy resolves itself; any other name is looked up in filter state.
const ATTRIBUTES: [&str; 14] = [
    "request",
    "response",
    "source",
    "destination",
    "connection",
    "upstream",
    "metadata",
    "filter_state",
    "upstream_filter_state",
    "xds",
    "node",
    "plugin_name",
    "plugin_root_id",
    "plugin_vm_id",
];

/// The value of a property path for the current context.
pub fn get(state: &VmState, path: &[u8]) -> Result<Vec<u8>, Status> {
    let segments: Vec<String> = path.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
    let names: Vec<&str> = segments.iter().map(String::as_str).collect();
    match names.as_slice() {
        ["plugin_name"] => return Ok(state.name.clone().into_bytes()),
        ["plugin_root_id"] => return Ok(state.root_id.clone().into_bytes()),
        ["plugin_vm_id"] => return Ok(state.vm_id.clone().into_bytes()),
        _ => {}
    }
    let Some((stream, _)) = state.stream() else { return Err(Status::NotFound) };
    let stream = stream.borrow();
    if let Some((_, value)) = stream.properties.iter().find(|(p, _)| *p == segments) {
        return Ok(value.0.clone());
    }
    let first = names.first().copied().unwrap_or_default();
    if !ATTRIBUTES.contains(&first) {
        // Unknown top-level names are filter state (`wasm.<name>` in Envoy).
        return match names.len() {
            1 => stream.filter_state.get(first.as_bytes()).cloned().ok_or(Status::NotFound),
            _ => Err(Status::NotFound),
        };
    }
    builtin(&stream, &names).ok_or(Status::NotFound)
}

fn builtin(stream: &Stream, names: &[&str]) -> Option<Vec<u8>> {
    let request = |name: &str| stream.request_headers.get_bytes(name.as_bytes()).map(<[u8]>::to_vec);
    let path = request(":path").unwrap_or_default();
    let (url_path, query) = match path.iter().position(|b| *b == b'?') {
        Some(at) => (path.get(..at)?.to_vec(), path.get(at + 1..)?.to_vec()),
        None => (path.clone(), Vec::new()),
    };
    Some(match names {
        ["request", "path"] => request(":path")?,
        ["request", "url_path"] => url_path,
        ["request", "query"] => query,
        ["request", "host"] => request(":authority")?,
        ["request", "scheme"] => request(":scheme")?,
        ["request", "method"] => request(":method")?,
        ["request", "referer"] => request("referer")?,
        ["request", "useragent"] => request("user-agent")?,
        ["request", "id"] => request("x-request-id")?,
        ["request", "protocol"] => b"HTTP/1.1".to_vec(),
        ["request", "time"] => stream.start_ns.to_le_bytes().to_vec(),
        ["request", "headers", name] => request(name)?,
        ["response", "code"] => {
            let status = stream.response_headers.get(":status")?.parse::<i64>().ok()?;
            status.to_le_bytes().to_vec()
        }
        ["response", "headers", name] => stream.response_headers.get_bytes(name.as_bytes())?.to_vec(),
        ["response", "trailers", name] => stream.response_trailers.get_bytes(name.as_bytes())?.to_vec(),
        ["source", "address"] => source_address(stream).into_bytes(),
        ["source", "port"] => port(&source_address(stream))?.to_le_bytes().to_vec(),
        ["destination", "address"] => DEFAULT_DESTINATION.as_bytes().to_vec(),
        ["destination", "port"] => port(DEFAULT_DESTINATION)?.to_le_bytes().to_vec(),
        ["connection", "mtls"] => vec![0],
        ["connection", "id"] => stream.connection_id.to_le_bytes().to_vec(),
        _ => return None,
    })
}

fn source_address(stream: &Stream) -> String {
    let override_ = stream.properties.iter().find(|(p, _)| p.len() == 2 && p[0] == "source" && p[1] == "address");
    match override_ {
        Some((_, value)) => String::from_utf8_lossy(&value.0).into_owned(),
        None => DEFAULT_SOURCE.to_string(),
    }
}

fn port(address: &str) -> Option<i64> {
    address.rsplit(':').next()?.parse().ok()
}

/// `proxy_set_property`: writes filter state; NotFound outside an HTTP stream.
pub fn set(state: &VmState, path: &[u8], value: &[u8]) -> Status {
    match state.stream() {
        Some((stream, _)) => {
            stream.borrow_mut().filter_state.insert(path.to_vec(), value.to_vec());
            Status::Ok
        }
        None => Status::NotFound,
    }
}
