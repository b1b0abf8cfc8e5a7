//! The echo upstream: answers every HTTP/1.1 request with a JSON report of what it received, so a
//! test sees exactly what reached the upstream through Envoy and the filters.
//!
//! ```text
//! POST /api/users?x=1            200 application/json
//! content-type: text/plain   ->  {"method":"POST","path":"/api/users?x=1",
//! hello                           "headers":[["host","..."],["content-type","text/plain"],...],
//!                                 "body":"hello"}
//! ```
//!
//! Headers are reported in received order with their original case, all of them; `body` is the
//! request body when it is UTF-8 (`null` when empty or not UTF-8), `body_base64` carries it
//! otherwise. Header values that are not UTF-8 are reported lossily (U+FFFD).
//!
//! Three optional request headers let a test shape the reply (they are reported like any other):
//! - `x-echo-status: 404` answers with that status instead of 200;
//! - `x-echo-header: name: value` (repeatable) adds that header to the reply;
//! - `x-echo-raw: 1` answers with the request body itself (and its `content-type`) instead of the
//!   JSON report, for filters that act on response bodies.
//!
//! Parsing is httparse (hyper's parser) and chunked_transfer: unlike tiny_http they keep non-ASCII
//! header bytes, untrimmed values and the received order, and add no headers of their own.

use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::e2e::wire::{self, Framing};

/// A keep-alive connection idle this long is closed, so no thread outlives its test for long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the echo upstream received, as it reports it in its JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Echoed {
    /// The request method as received.
    pub method: String,
    /// The request target (path and query) as received.
    pub path: String,
    /// Every header, in received order, names in received case.
    pub headers: Vec<(String, String)>,
    /// The body when it is non-empty UTF-8.
    pub body: Option<String>,
    /// The body, base64 (standard alphabet), when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl Echoed {
    /// Parses the echo's JSON report (a response body that came from the echo).
    pub fn from_json(body: &[u8]) -> Result<Echoed, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The first value of a header, name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in received order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body bytes the upstream received (empty when there was none).
    pub fn body_bytes(&self) -> Vec<u8> {
        match (&self.body, &self.body_base64) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }

    fn new(method: String, path: String, headers: Vec<(String, String)>, body: Vec<u8>) -> Echoed {
        let (body, body_base64) = if body.is_empty() {
            (None, None)
        } else {
            match String::from_utf8(body) {
                Ok(text) => (Some(text), None),
                Err(err) => (None, Some(base64::engine::general_purpose::STANDARD.encode(err.into_bytes()))),
            }
        };
        Echoed { method, path, headers, body, body_base64 }
    }
}

/// A running echo upstream on 127.0.0.1; stops accepting on drop.
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Starts the echo on a free port of 127.0.0.1.
    pub fn start() -> io::Result<EchoServer> {
        EchoServer::bind(0)
    }

    /// Starts the echo on 127.0.0.1:`port` (0 picks a free port).
    pub fn bind(port: u16) -> io::Result<EchoServer> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let acceptor = std::thread::Builder::new()
            .name(format!("echo-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &stop_flag))?;
        Ok(EchoServer { addr, stop, acceptor: Some(acceptor) })
    }

    /// The address the echo listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the echo listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the acceptor sees the flag and returns.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        // A connection thread ends when the peer closes, on a bad request, or after IDLE_TIMEOUT.
        let _ = std::thread::Builder::new().name("echo-conn".into()).spawn(move || {
            let _ = serve_connection(stream);
        });
    }
}

fn serve_connection(stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some(head) = wire::read_head(&mut reader)? else { return Ok(()) };
        let request = match parse_head(&head) {
            Ok(request) => request,
            Err(reason) => {
                write_reply(&mut writer, &Reply::bad_request(reason), false)?;
                return writer.shutdown(Shutdown::Both);
            }
        };
        if request.expects_continue {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = match wire::read_body(&mut reader, request.framing) {
            Ok(body) => body,
            Err(_) => {
                write_reply(&mut writer, &Reply::bad_request("malformed body"), false)?;
                return writer.shutdown(Shutdown::Both);
            }
        };
        let keep_alive = request.keep_alive;
        write_reply(&mut writer, &Reply::to(request, body), keep_alive)?;
        if !keep_alive {
            return writer.shutdown(Shutdown::Both);
        }
    }
}

struct ParsedRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    framing: Framing,
    keep_alive: bool,
    expects_continue: bool,
}

fn parse_head(head: &[u8]) -> Result<ParsedRequest, &'static str> {
    let mut slots = vec![httparse::EMPTY_HEADER; wire::MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => return Err("malformed request head"),
    }
    let method = parsed.method.unwrap_or_default().to_string();
    let path = parsed.path.unwrap_or_default().to_string();
    let http10 = parsed.version == Some(0);
    let headers = wire::header_pairs(parsed.headers);
    let framing = wire::framing(&headers, Framing::None)?;
    let connection: Vec<String> = wire::values(&headers, "connection").collect();
    let keep_alive = if http10 {
        connection.iter().any(|c| c.contains("keep-alive"))
    } else {
        !connection.iter().any(|c| c.contains("close"))
    };
    let expects_continue = wire::values(&headers, "expect").any(|e| e == "100-continue");
    Ok(ParsedRequest { method, path, headers, framing, keep_alive, expects_continue })
}

/// The echo's answer to one request.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn bad_request(reason: &str) -> Reply {
        Reply {
            status: 400,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: reason.as_bytes().to_vec(),
        }
    }

    fn to(request: ParsedRequest, body: Vec<u8>) -> Reply {
        let control = |name| control_values(&request.headers, name);
        let status = control("x-echo-status").next().and_then(|s| s.parse().ok()).filter(|s| (200..600).contains(s));
        let mut headers: Vec<(String, String)> = control("x-echo-header")
            .filter_map(|h| h.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
            .collect();
        let raw = control("x-echo-raw").any(|v| v == "1" || v == "true");
        let content_type = control("content-type").next().map(str::to_string);
        let body = match (raw, content_type) {
            (true, content_type) => {
                headers.extend(content_type.map(|ct| ("content-type".to_string(), ct)));
                body
            }
            (false, _) => {
                headers.push(("content-type".into(), "application/json".into()));
                let echoed = Echoed::new(request.method, request.path, request.headers, body);
                serde_json::to_vec(&echoed).unwrap_or_default()
            }
        };
        Reply { status: status.unwrap_or(200), headers, body }
    }
}

/// The trimmed values of a request header that controls the reply.
fn control_values<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

fn write_reply(out: &mut impl Write, reply: &Reply, keep_alive: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n", reply.body.len()));
    if !keep_alive {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(&reply.body)?;
    out.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Echo",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_round_trips_binary_bodies() {
        let echoed = Echoed::new("POST".into(), "/".into(), vec![], vec![0xff, 0x00, 0x41]);
        assert_eq!(echoed.body, None);
        assert_eq!(echoed.body_base64.as_deref(), Some("/wBB"));
        assert_eq!(echoed.body_bytes(), vec![0xff, 0x00, 0x41]);
    }

    #[test]
    fn parse_head_picks_chunked_over_content_length() {
        let head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let parsed = parse_head(head).unwrap();
        assert!(matches!(parsed.framing, Framing::Chunked));
        assert!(parsed.keep_alive);
        assert_eq!(parsed.headers[0], ("Host".to_string(), "a".to_string()));
    }

    #[test]
    fn parse_head_rejects_bad_content_length() {
        assert!(parse_head(b"POST /x HTTP/1.1\r\ncontent-length: x\r\n\r\n").is_err());
    }
}
