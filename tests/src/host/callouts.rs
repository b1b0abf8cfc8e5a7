//! HTTP and gRPC callouts a filter dispatched, and the answers a test gives them.

use super::headers::Headers;

/// An HTTP callout waiting for the test's answer (`proxy_http_call`).
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// The token the filter got back.
    pub token: u32,
    /// The upstream cluster.
    pub cluster: String,
    /// Request headers (`:method`, `:path`, `:authority` included).
    pub headers: Headers,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: Headers,
    /// Timeout in milliseconds (0 = none).
    pub timeout_ms: u32,
    /// The context that dispatched it (root or HTTP).
    pub(crate) context_id: u32,
}

/// The test's answer to an [`HttpCall`].
#[derive(Debug, Clone)]
pub enum HttpReply {
    /// The upstream answered.
    Response {
        /// Headers, `:status` included.
        headers: Vec<(String, Vec<u8>)>,
        /// Body.
        body: Vec<u8>,
        /// Trailers.
        trailers: Vec<(String, Vec<u8>)>,
    },
    /// The connection failed or was reset: callback with (0, 0, 0), status 11 "reset".
    Reset,
    /// The call timed out: reported like a reset.
    Timeout,
}

impl HttpReply {
    /// A response with `status` and nothing else.
    pub fn status(status: u16) -> Self {
        HttpReply::Response {
            headers: vec![(":status".into(), status.to_string().into_bytes())],
            body: Vec::new(),
            trailers: Vec::new(),
        }
    }

    /// `200`.
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// Adds a header to a response.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let HttpReply::Response { headers, .. } = &mut self {
            headers.push((name.to_string(), value.as_bytes().to_vec()));
        }
        self
    }

    /// Sets the body of a response.
    pub fn body(mut self, data: impl AsRef<[u8]>) -> Self {
        if let HttpReply::Response { body, .. } = &mut self {
            *body = data.as_ref().to_vec();
        }
        self
    }

    /// Adds a trailer to a response.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        if let HttpReply::Response { trailers, .. } = &mut self {
            trailers.push((name.to_string(), value.as_bytes().to_vec()));
        }
        self
    }
}

/// A gRPC call or stream a filter opened.
#[derive(Debug, Clone)]
pub struct GrpcCall {
    /// The token.
    pub token: u32,
    /// The upstream cluster (the `GrpcService` the SDK serialized, as bytes).
    pub cluster: Vec<u8>,
    /// Service name.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Initial metadata.
    pub metadata: Headers,
    /// Messages sent: the request of a unary call, or each `proxy_grpc_send` of a stream.
    pub messages: Vec<Vec<u8>>,
    /// Whether it is a stream (`proxy_grpc_stream`).
    pub stream: bool,
    /// Timeout in milliseconds (unary calls).
    pub timeout_ms: u32,
    /// The dispatching context.
    pub(crate) context_id: u32,
}

/// The test's answer to a [`GrpcCall`]: metadata, messages, trailing metadata, then close.
#[derive(Debug, Clone, Default)]
pub struct GrpcReply {
    /// Initial metadata (`on_grpc_receive_initial_metadata`), if any.
    pub initial_metadata: Vec<(String, Vec<u8>)>,
    /// Messages (`on_grpc_receive` each).
    pub messages: Vec<Vec<u8>>,
    /// Trailing metadata, if any.
    pub trailing_metadata: Vec<(String, Vec<u8>)>,
    /// The gRPC status code given to `on_grpc_close` (0 = OK).
    pub status: u32,
    /// The status message `proxy_get_status` returns.
    pub status_message: String,
}

impl GrpcReply {
    /// A successful reply with one message.
    pub fn message(message: impl AsRef<[u8]>) -> Self {
        Self { messages: vec![message.as_ref().to_vec()], ..Self::default() }
    }

    /// A failed call with this status.
    pub fn error(status: u32, message: &str) -> Self {
        Self { status, status_message: message.to_string(), ..Self::default() }
    }
}
