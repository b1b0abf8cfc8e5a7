//! A filter's decision as a value: continue (with header changes) or answer locally.
//!
//! ```text
//! Verdict::Continue(vec![HeaderOp::Remove("x-palisade-subject".into())])
//! Verdict::Respond(LocalReply::json(403, "forbidden", "access denied"))
//! ```

use crate::http::Headers;

/// One change to a header map, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Replace every value of the header with this one (or add it).
    Set(String, String),
    /// Add the header only when it is absent.
    SetIfAbsent(String, String),
    /// Append another value.
    Append(String, String),
    /// Remove every value of the header.
    Remove(String),
}

impl HeaderOp {
    /// Applies the operation to a plain header map, as the proxy would.
    pub fn apply_to(&self, headers: &mut Headers) {
        match self {
            HeaderOp::Set(name, value) => headers.set(name, value.clone()),
            HeaderOp::SetIfAbsent(name, value) => {
                if !headers.contains(name) {
                    headers.add(name, value.clone());
                }
            }
            HeaderOp::Append(name, value) => headers.add(name, value.clone()),
            HeaderOp::Remove(name) => headers.remove(name),
        }
    }

    /// The header the operation names.
    pub fn name(&self) -> &str {
        match self {
            HeaderOp::Set(name, _)
            | HeaderOp::SetIfAbsent(name, _)
            | HeaderOp::Append(name, _)
            | HeaderOp::Remove(name) => name,
        }
    }
}

/// Whether no operation's effect depends on an earlier one: no `Set`, `SetIfAbsent` or
/// `Remove` names a header an earlier operation names (an `Append` only adds, so it may
/// repeat a name). Such a list can be applied in one pass
/// ([`Headers::encode_after_independent`]).
pub fn independent(ops: &[&HeaderOp]) -> bool {
    ops.iter().enumerate().all(|(i, op)| {
        matches!(op, HeaderOp::Append(..))
            || ops[..i].iter().all(|earlier| !earlier.name().eq_ignore_ascii_case(op.name()))
    })
}

/// A reply the proxy sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// Envoy's response code details (`%RESPONSE_CODE_DETAILS%`), e.g. `palisade_authz_denied`.
    pub details: String,
}

impl LocalReply {
    /// A JSON reply `{"error": code, "message": message}`.
    ///
    /// `code` and `message` are ours, never request input, so no secret or payload is echoed.
    pub fn json(status: u16, code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "error": code, "message": message });
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            details: format!("palisade_{code}"),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets Envoy's response code details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }
}

/// What a filter does with the request or response in hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it pass, after applying these header changes.
    Continue(Vec<HeaderOp>),
    /// Stop it and send this reply.
    Respond(LocalReply),
}

impl Verdict {
    /// Continue with no change.
    pub fn pass() -> Self {
        Verdict::Continue(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reply_has_code_message_and_content_type() {
        let reply = LocalReply::json(401, "unauthorized", "missing \"token\"");
        assert_eq!(reply.status, 401);
        assert_eq!(reply.headers, [("content-type".to_string(), "application/json".to_string())]);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(body["message"], "missing \"token\"");
        assert_eq!(reply.details, "palisade_unauthorized");
    }

    #[test]
    fn header_ops_apply_in_order() {
        let mut headers = Headers::from_pairs([("server", "envoy"), ("x-a", "1")]);
        headers.apply(&[
            HeaderOp::Remove("server".into()),
            HeaderOp::SetIfAbsent("x-a".into(), "2".into()),
            HeaderOp::SetIfAbsent("x-b".into(), "3".into()),
            HeaderOp::Append("x-b".into(), "4".into()),
            HeaderOp::Set("x-a".into(), "5".into()),
        ]);
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("x-b", "3"), ("x-b", "4"), ("x-a", "5")]);
    }
}
