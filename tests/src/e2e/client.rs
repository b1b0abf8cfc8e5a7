//! A small HTTP/1.1 client for tests: it writes exactly the request it is given (header order and
//! case kept, chunked uploads split where the test says, with pauses), follows no redirect, and
//! returns 4xx/5xx as responses, never as errors. Every call is bounded by a timeout.
//!
//! Built on std `TcpStream` with httparse and chunked_transfer (both also used by the echo) rather
//! than ureq: tests need byte-exact control of what goes on the wire, which clients normalize away.

use std::fmt;
use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::wire::{self, Framing};
use crate::echo::Echoed;

/// The default bound on connecting, and on each read and write.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body and how it is framed on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body and no framing header.
    Empty,
    /// Sent with `content-length` (unless the request sets a framing header itself).
    Bytes(Vec<u8>),
    /// Sent with `transfer-encoding: chunked`, one HTTP chunk per element, pausing between them.
    Chunked {
        /// The chunks, in order (an empty chunk would end the body early, so none should be empty).
        chunks: Vec<Vec<u8>>,
        /// Pause after each chunk but the last, so Envoy sees separate body callbacks.
        pause: Duration,
        /// Trailers after the last chunk (Envoy reads them only with `enable_trailers`).
        trailers: Vec<(String, String)>,
    },
}

/// An HTTP/1.1 request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method, sent as given.
    pub method: String,
    /// The request target (path and query), sent as given.
    pub path: String,
    /// Headers in order; `host: localhost` is sent first when none is given.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// Bound on connecting and on each read and write.
    pub timeout: Duration,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Body::Empty,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Request::new("GET", path)
    }

    /// `POST path` with a body.
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Request::new("POST", path).body(body)
    }

    /// Appends a header (a repeated name is sent twice).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a `content-length` body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.header("content-type", "application/json").body(value.to_string())
    }

    /// Sets a chunked body: one HTTP chunk per element, with `pause` between chunks.
    pub fn chunked<C: Into<Vec<u8>>>(mut self, chunks: impl IntoIterator<Item = C>, pause: Duration) -> Self {
        self.body = Body::Chunked { chunks: chunks.into_iter().map(Into::into).collect(), pause, trailers: Vec::new() };
        self
    }

    /// Appends a trailer. HTTP/1.1 carries trailers only after a chunked body, so a
    /// `content-length` body becomes one chunk, and no body an empty one.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        if !matches!(self.body, Body::Chunked { .. }) {
            let chunks = match std::mem::replace(&mut self.body, Body::Empty) {
                Body::Bytes(bytes) if !bytes.is_empty() => vec![bytes],
                _ => Vec::new(),
            };
            self = self.chunked(chunks, Duration::ZERO);
        }
        if let Body::Chunked { trailers, .. } = &mut self.body {
            trailers.push((name.into(), value.into()));
        }
        self
    }

    /// Sets the bound on connecting and on each read and write.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The request as a curl command a reader can copy (`base_url` like `http://127.0.0.1:10000`).
    pub fn curl(&self, base_url: &str) -> String {
        let mut cmd = String::from("curl -si");
        if self.method != "GET" || !matches!(self.body, Body::Empty) {
            cmd.push_str(&format!(" -X {}", self.method));
        }
        cmd.push_str(&format!(" {}", shell_quote(&format!("{base_url}{}", self.path))));
        for (name, value) in &self.headers {
            cmd.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
        }
        match &self.body {
            Body::Empty => {}
            Body::Bytes(bytes) => {
                cmd.push_str(&format!(" --data-binary {}", shell_quote(&String::from_utf8_lossy(bytes))));
            }
            Body::Chunked { chunks, .. } => {
                let all: Vec<u8> = chunks.concat();
                cmd.push_str(&format!(
                    " -H 'transfer-encoding: chunked' --data-binary {}",
                    shell_quote(&String::from_utf8_lossy(&all))
                ));
            }
        }
        cmd
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    fn head(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        if !self.has_header("host") {
            head.push_str("host: localhost\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let framed = self.has_header("content-length") || self.has_header("transfer-encoding");
        match &self.body {
            Body::Bytes(bytes) if !framed => head.push_str(&format!("content-length: {}\r\n", bytes.len())),
            Body::Chunked { .. } if !framed => head.push_str("transfer-encoding: chunked\r\n"),
            _ => {}
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// An HTTP response as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers in received order (values lossily decoded when not UTF-8).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in received order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// What the echo upstream received, when this response came from the echo.
    pub fn echoed(&self) -> Result<Echoed, serde_json::Error> {
        Echoed::from_json(&self.body)
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub enum ClientError {
    /// Connecting, writing or reading failed (including timeouts and early close).
    Io(io::Error),
    /// The response was not valid HTTP/1.1.
    Malformed(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(err) => write!(f, "http client: {err}"),
            ClientError::Malformed(what) => write!(f, "http client: malformed response: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(err: io::Error) -> Self {
        ClientError::Io(err)
    }
}

/// One keep-alive connection: several requests in sequence on one TCP connection.
pub struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `addr` (127.0.0.1 in tests) within `timeout`.
    pub fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Connection { writer: stream, reader })
    }

    /// Sends a request and reads its response.
    pub fn send(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.set_timeout(request.timeout)?;
        self.writer.write_all(&request.head())?;
        match &request.body {
            Body::Empty => {}
            Body::Bytes(bytes) => self.writer.write_all(bytes)?,
            Body::Chunked { chunks, pause, trailers } => {
                for (i, chunk) in chunks.iter().enumerate() {
                    if i > 0 {
                        std::thread::sleep(*pause);
                    }
                    self.writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                    self.writer.write_all(chunk)?;
                    self.writer.write_all(b"\r\n")?;
                    self.writer.flush()?;
                }
                self.writer.write_all(b"0\r\n")?;
                for (name, value) in trailers {
                    self.writer.write_all(format!("{name}: {value}\r\n").as_bytes())?;
                }
                self.writer.write_all(b"\r\n")?;
            }
        }
        self.writer.flush()?;
        self.read_response(request.method.eq_ignore_ascii_case("HEAD"))
    }

    /// Sends bytes as they are (for malformed or hostile requests) and reads one response.
    pub fn send_raw(&mut self, bytes: &[u8], timeout: Duration) -> Result<Response, ClientError> {
        self.set_timeout(timeout)?;
        self.writer.write_all(bytes)?;
        self.writer.flush()?;
        self.read_response(bytes.starts_with(b"HEAD "))
    }

    fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))?;
        self.writer.set_write_timeout(Some(timeout))
    }

    fn read_response(&mut self, head_request: bool) -> Result<Response, ClientError> {
        loop {
            let head =
                wire::read_head(&mut self.reader)?.ok_or(ClientError::Io(io::ErrorKind::UnexpectedEof.into()))?;
            let mut slots = vec![httparse::EMPTY_HEADER; wire::MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&head) {
                Ok(httparse::Status::Complete(_)) => {}
                Ok(httparse::Status::Partial) | Err(_) => return Err(ClientError::Malformed("response head")),
            }
            let status = parsed.code.ok_or(ClientError::Malformed("status code"))?;
            let headers = wire::header_pairs(parsed.headers);
            // Interim responses (100 Continue, 103 Early Hints) precede the real one.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let framing = if head_request || status == 204 || status == 304 || status < 200 {
                Framing::None
            } else {
                wire::framing(&headers, Framing::UntilClose).map_err(ClientError::Malformed)?
            };
            let body = wire::read_body(&mut self.reader, framing)?;
            return Ok(Response { status, headers, body });
        }
    }
}

/// Sends one request on a new connection to `addr`.
pub fn send(addr: SocketAddr, request: &Request) -> Result<Response, ClientError> {
    Connection::open(addr, request.timeout)?.send(request)
}

/// Sends raw bytes on a new connection to `addr` and reads one response.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Result<Response, ClientError> {
    Connection::open(addr, DEFAULT_TIMEOUT)?.send_raw(bytes, DEFAULT_TIMEOUT)
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_adds_host_and_length_once() {
        let head = Request::post("/p", "abc").header("X-A", "1").head();
        assert_eq!(head, b"POST /p HTTP/1.1\r\nhost: localhost\r\nX-A: 1\r\ncontent-length: 3\r\n\r\n");
        let head = Request::get("/").header("Host", "h").header("content-length", "9").body("x").head();
        assert_eq!(head, b"GET / HTTP/1.1\r\nHost: h\r\ncontent-length: 9\r\n\r\n");
    }

    #[test]
    fn curl_quotes_for_the_shell() {
        let req = Request::post("/a?b=1", "it's").header("x-y", "z");
        assert_eq!(
            req.curl("http://127.0.0.1:1"),
            r"curl -si -X POST 'http://127.0.0.1:1/a?b=1' -H 'x-y: z' --data-binary 'it'\''s'"
        );
    }
}
