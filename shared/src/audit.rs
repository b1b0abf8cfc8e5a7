//! Audit events: one JSON line per decision, with stable field names and no secrets.
//!
//! ```json
//! {"audit":"palisade","filter":"authz","decision":"deny","reason":"policy_denied",
//!  "rule":"block-admin","status":403,"method":"GET","path":"/admin","route":"api",
//!  "principal":"https://auth.example.com/alice","source":"10.0.0.1","request_id":"..."}
//! ```
//!
//! The path is logged without its query string (queries carry tokens and API keys); no header
//! value, token, body or claim value other than the principal is ever written.

use serde::Serialize;

use crate::http::RequestView;

/// What the filter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    /// The request passed.
    Allow,
    /// The request was stopped.
    Deny,
    /// A rule would have stopped the request, but it runs in shadow mode.
    ShadowDeny,
    /// An AUDIT rule matched; the request passed.
    Audit,
}

/// One audit record. Build with [`AuditEvent::new`], then add what applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Always `palisade`, so log pipelines can select audit lines.
    pub audit: &'static str,
    /// The filter that decided: `jwt-authn`, `authz`, ...
    pub filter: &'static str,
    /// The decision.
    pub decision: AuditDecision,
    /// Why, as a stable snake_case code (`token_expired`, `rate_limited`, ...).
    pub reason: String,
    /// The rule or policy name that decided, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The status sent, when the filter answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `:method`.
    pub method: String,
    /// `:path` without the query string.
    pub path: String,
    /// The matched route name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The caller's principal (`iss/sub`, consumer, or mTLS peer), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The downstream peer IP, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `x-request-id`, to join with access logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// An event for `request`, filled with what every event carries.
    pub fn new(filter: &'static str, decision: AuditDecision, reason: &str, request: &RequestView) -> Self {
        Self {
            audit: "palisade",
            filter,
            decision,
            reason: reason.to_string(),
            rule: None,
            status: None,
            method: request.method.clone(),
            path: request.path_only().to_string(),
            route: request.route_name.clone(),
            principal: request.peer_principal.clone(),
            source: request.source_ip.map(|ip| ip.to_string()),
            request_id: request.headers.get("x-request-id").map(str::to_string),
        }
    }

    /// Names the rule or policy.
    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Records the status sent.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Records the caller's principal (overrides the mTLS peer).
    pub fn principal(mut self, principal: Option<String>) -> Self {
        if principal.is_some() {
            self.principal = principal;
        }
        self
    }

    /// Fills the connection facts this event lacks from `request`, for an event built from a
    /// view that skipped them: the event then equals one built from `request` (a principal
    /// set with [`AuditEvent::principal`] stays).
    pub fn fill_connection(&mut self, request: &RequestView) {
        if self.route.is_none() {
            self.route.clone_from(&request.route_name);
        }
        if self.principal.is_none() {
            self.principal.clone_from(&request.peer_principal);
        }
        if self.source.is_none() {
            self.source = request.source_ip.map(|ip| ip.to_string());
        }
    }

    /// The one-line JSON form written to the proxy log.
    pub fn to_json_line(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

    #[test]
    fn writes_stable_fields_and_drops_the_query() {
        let request = RequestView {
            method: "GET".into(),
            path: "/admin/users?api_key=secret".into(),
            headers: Headers::from_pairs([("x-request-id", "r-1"), ("authorization", "Bearer t")]),
            source_ip: "10.0.0.1".parse().ok(),
            route_name: Some("api".into()),
            ..RequestView::default()
        };
        let line = AuditEvent::new("authz", AuditDecision::ShadowDeny, "policy_denied", &request)
            .rule("block-admin")
            .status(403)
            .principal(Some("iss/alice".into()))
            .to_json_line();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "audit": "palisade", "filter": "authz", "decision": "shadow_deny",
                "reason": "policy_denied", "rule": "block-admin", "status": 403,
                "method": "GET", "path": "/admin/users", "route": "api",
                "principal": "iss/alice", "source": "10.0.0.1", "request_id": "r-1"
            })
        );
        assert!(!line.contains("secret") && !line.contains("Bearer"));
    }

    #[test]
    fn filling_the_connection_facts_equals_building_from_the_whole_view() {
        let whole = RequestView {
            method: "GET".into(),
            path: "/a".into(),
            source_ip: "10.0.0.9".parse().ok(),
            peer_principal: Some("spiffe://cluster.local/ns/a/sa/b".into()),
            route_name: Some("api".into()),
            ..RequestView::default()
        };
        let partial = RequestView { source_ip: None, peer_principal: None, route_name: None, ..whole.clone() };
        for caller in [None, Some("alice".to_string())] {
            let expected = AuditEvent::new("f", AuditDecision::Deny, "r", &whole).principal(caller.clone());
            let mut filled = AuditEvent::new("f", AuditDecision::Deny, "r", &partial).principal(caller);
            filled.fill_connection(&whole);
            assert_eq!(filled.to_json_line(), expected.to_json_line());
        }
    }
}
