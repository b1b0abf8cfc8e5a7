//! What a test sends: a downstream [`Request`], an upstream [`Response`], and the property
//! values a request carries.

use std::fmt;

/// A property value as Envoy encodes it: strings and bytes raw, ints 8-byte LE, bools 1 byte.
#[derive(Clone, PartialEq, Eq)]
pub struct PropertyValue(pub Vec<u8>);

impl fmt::Debug for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl From<&str> for PropertyValue {
    fn from(value: &str) -> Self {
        Self(value.as_bytes().to_vec())
    }
}

impl From<String> for PropertyValue {
    fn from(value: String) -> Self {
        Self(value.into_bytes())
    }
}

impl From<&[u8]> for PropertyValue {
    fn from(value: &[u8]) -> Self {
        Self(value.to_vec())
    }
}

impl From<Vec<u8>> for PropertyValue {
    fn from(value: Vec<u8>) -> Self {
        Self(value)
    }
}

impl From<i64> for PropertyValue {
    fn from(value: i64) -> Self {
        Self(value.to_le_bytes().to_vec())
    }
}

impl From<u64> for PropertyValue {
    fn from(value: u64) -> Self {
        Self(value.to_le_bytes().to_vec())
    }
}

impl From<bool> for PropertyValue {
    fn from(value: bool) -> Self {
        Self(vec![u8::from(value)])
    }
}

/// A downstream request: headers (pseudo-headers included), body chunks, trailers, properties.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Header pairs in arrival order; names are lower-cased when they enter the host.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body chunks as Envoy would deliver them (each one an `on_http_request_body` call).
    pub body: Vec<Vec<u8>>,
    /// Trailers, if any.
    pub trailers: Vec<(String, Vec<u8>)>,
    /// Properties for this request, by path segments; they override the defaults.
    pub properties: Vec<(Vec<String>, PropertyValue)>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |pairs: &[(String, Vec<u8>)]| -> Vec<String> {
            pairs.iter().map(|(k, v)| format!("{k}: {}", preview(v))).collect()
        };
        f.debug_struct("Request")
            .field("headers", &show(&self.headers))
            .field("body", &self.body.iter().map(|c| preview(c)).collect::<Vec<_>>())
            .field("trailers", &show(&self.trailers))
            .field("properties", &self.properties)
            .finish()
    }
}

/// At most 120 characters of a value, escaped, with its length when cut.
fn preview(bytes: &[u8]) -> String {
    let text: String = bytes.iter().take(120).flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
    if bytes.len() > 120 {
        format!("{text}... ({} bytes)", bytes.len())
    } else {
        text
    }
}

impl Request {
    /// A request with `:method`, `:path`, `:authority example.com` and `:scheme https`.
    pub fn new(method: &str, path: &str) -> Self {
        Self::default()
            .header(":method", method)
            .header(":path", path)
            .header(":authority", "example.com")
            .header(":scheme", "https")
    }

    /// A GET request.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A POST request.
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// A request with no headers at all, not even pseudo-headers.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds a header (another value if the name is already present).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header whose value may be any bytes.
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_string(), value.to_vec()));
        self
    }

    /// Sets a header, replacing every value of it (pseudo-headers included).
    pub fn set_header(mut self, name: &str, value: &str) -> Self {
        match self.headers.iter().position(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some(at) => {
                self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                self.headers.insert(at.min(self.headers.len()), (name.to_string(), value.as_bytes().to_vec()));
                self
            }
            None => self.header(name, value),
        }
    }

    /// Removes every value of a header (e.g. a pseudo-header).
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// The body in one chunk.
    pub fn body(self, body: impl AsRef<[u8]>) -> Self {
        self.body_chunks([body])
    }

    /// The body in several chunks, delivered one by one.
    pub fn body_chunks<B: AsRef<[u8]>>(mut self, chunks: impl IntoIterator<Item = B>) -> Self {
        self.body = chunks.into_iter().map(|c| c.as_ref().to_vec()).collect();
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Sets a property for this request, e.g. `(&["source", "address"], "10.0.0.1:1234")`.
    pub fn property(mut self, path: &[&str], value: impl Into<PropertyValue>) -> Self {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.properties.retain(|(p, _)| *p != path);
        self.properties.push((path, value.into()));
        self
    }
}

/// An upstream response the test feeds into the response path.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Header pairs, `:status` first.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body chunks.
    pub body: Vec<Vec<u8>>,
    /// Trailers.
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("headers", &self.headers.iter().map(|(k, v)| format!("{k}: {}", preview(v))).collect::<Vec<_>>())
            .field("body", &self.body.iter().map(|c| preview(c)).collect::<Vec<_>>())
            .finish()
    }
}

impl Response {
    /// A response with this status.
    pub fn status(status: u16) -> Self {
        Self::default().header(":status", &status.to_string())
    }

    /// `200`.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// Adds a header.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header with any bytes.
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_string(), value.to_vec()));
        self
    }

    /// The body in one chunk.
    pub fn body(self, body: impl AsRef<[u8]>) -> Self {
        self.body_chunks([body])
    }

    /// The body in several chunks.
    pub fn body_chunks<B: AsRef<[u8]>>(mut self, chunks: impl IntoIterator<Item = B>) -> Self {
        self.body = chunks.into_iter().map(|c| c.as_ref().to_vec()).collect();
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_string(), value.as_bytes().to_vec()));
        self
    }
}
