//! Response headers and the 429 reply.
//!
//! IETF `RateLimit` / `RateLimit-Policy` follow draft-ietf-httpapi-ratelimit-headers-10
//! (September 2025; the structured-field syntax is unchanged in -11): each policy is an sf-List
//! member, a quoted policy name with `q` (quota) and `w` (window seconds); `RateLimit` carries
//! one member with `r` (remaining) and `t` (seconds until the quota resets), for the limit with
//! the fewest remaining tokens as the draft requires, or for the limit that denied:
//!
//! ```text
//! RateLimit-Policy: "per-second";q=10;w=1, "hourly";q=1000;w=3600
//! RateLimit: "hourly";r=0;t=4
//! Retry-After: 4
//! ```
//!
//! On a 429, `t` equals `Retry-After`: the seconds until the request's cost is available,
//! rounded up. On an allowed response, `t` is the seconds until the bucket is full again.
//! Legacy `X-RateLimit-Limit/Remaining/Reset` (Envoy `local_ratelimit` style) carry the same
//! limit's `q`, `r` and `t`.

use crate::decision::{HeaderOp, LocalReply};

use super::bucket::ceil_secs;
use super::limiter::LimitStatus;

/// Which headers to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSettings {
    /// IETF `RateLimit` and `RateLimit-Policy`.
    pub ietf: bool,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
    pub legacy: bool,
    /// Also on responses to allowed requests.
    pub on_allowed: bool,
}

/// The header pairs describing `statuses`, centred on `statuses[focus]`.
pub fn header_pairs(statuses: &[LimitStatus<'_>], focus: usize, settings: HeaderSettings) -> Vec<(String, String)> {
    let Some(current) = statuses.get(focus) else {
        return Vec::new();
    };
    let reset = ceil_secs(current.reset_ms);
    let mut pairs = Vec::new();
    if settings.ietf {
        let policies: Vec<String> = statuses
            .iter()
            .map(|s| format!("\"{}\";q={};w={}", s.limit, s.rate.tokens(), s.rate.window_secs()))
            .collect();
        pairs.push(("ratelimit-policy".to_string(), policies.join(", ")));
        pairs.push(("ratelimit".to_string(), format!("\"{}\";r={};t={reset}", current.limit, current.remaining)));
    }
    if settings.legacy {
        pairs.push(("x-ratelimit-limit".to_string(), current.rate.tokens().to_string()));
        pairs.push(("x-ratelimit-remaining".to_string(), current.remaining.to_string()));
        pairs.push(("x-ratelimit-reset".to_string(), reset.to_string()));
    }
    pairs
}

/// The limit a response reports on when every limit admitted: the one with the fewest
/// remaining tokens (the first on ties).
pub fn tightest(statuses: &[LimitStatus<'_>]) -> usize {
    statuses.iter().enumerate().min_by_key(|(_, status)| status.remaining).map_or(0, |(index, _)| index)
}

/// Header operations for the response to an allowed request (empty unless configured).
pub fn allowed_headers(statuses: &[LimitStatus<'_>], settings: HeaderSettings) -> Vec<HeaderOp> {
    if !settings.on_allowed {
        return Vec::new();
    }
    header_pairs(statuses, tightest(statuses), settings).into_iter().map(|(k, v)| HeaderOp::Set(k, v)).collect()
}

/// The 429 reply: JSON body, `Retry-After`, and the configured rate-limit headers.
pub fn too_many_requests(
    statuses: &[LimitStatus<'_>],
    by: usize,
    retry_after_ms: u64,
    settings: HeaderSettings,
) -> LocalReply {
    let retry_after = ceil_secs(retry_after_ms).max(1);
    let mut reply = LocalReply::json(429, "rate_limited", &format!("too many requests, retry in {retry_after} s"))
        .with_header("retry-after", retry_after.to_string());
    for (name, value) in header_pairs(statuses, by, settings) {
        reply = reply.with_header(&name, value);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::bucket::Rate;

    const ALL: HeaderSettings = HeaderSettings { ietf: true, legacy: true, on_allowed: true };

    fn statuses() -> Vec<LimitStatus<'static>> {
        vec![
            LimitStatus { limit: "per-second", rate: Rate::new(10, 1, None).unwrap(), remaining: 9, reset_ms: 100 },
            LimitStatus {
                limit: "hourly",
                rate: Rate::new(1000, 3600, None).unwrap(),
                remaining: 0,
                reset_ms: 3_600_001,
            },
        ]
    }

    fn header<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
        pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn too_many_requests_carries_every_header_and_json() {
        let reply = too_many_requests(&statuses(), 1, 3_999, ALL);
        assert_eq!(reply.status, 429);
        assert_eq!(reply.details, "palisade_rate_limited");
        let pairs = &reply.headers;
        assert_eq!(header(pairs, "content-type"), Some("application/json"));
        assert_eq!(header(pairs, "retry-after"), Some("4"));
        assert_eq!(header(pairs, "ratelimit-policy"), Some(r#""per-second";q=10;w=1, "hourly";q=1000;w=3600"#));
        assert_eq!(header(pairs, "ratelimit"), Some(r#""hourly";r=0;t=3601"#));
        assert_eq!(header(pairs, "x-ratelimit-limit"), Some("1000"));
        assert_eq!(header(pairs, "x-ratelimit-remaining"), Some("0"));
        assert_eq!(header(pairs, "x-ratelimit-reset"), Some("3601"));
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body, serde_json::json!({"error": "rate_limited", "message": "too many requests, retry in 4 s"}));
    }

    #[test]
    fn headers_follow_the_switches() {
        let ietf_only = HeaderSettings { ietf: true, legacy: false, on_allowed: false };
        let reply = too_many_requests(&statuses(), 0, 1, ietf_only);
        assert_eq!(header(&reply.headers, "retry-after"), Some("1"));
        assert_eq!(header(&reply.headers, "ratelimit"), Some(r#""per-second";r=9;t=1"#));
        assert_eq!(header(&reply.headers, "x-ratelimit-limit"), None);
        assert!(allowed_headers(&statuses(), ietf_only).is_empty());
        let none = HeaderSettings { ietf: false, legacy: false, on_allowed: true };
        assert!(allowed_headers(&statuses(), none).is_empty());
        assert!(header_pairs(&[], 0, ALL).is_empty());
    }

    #[test]
    fn allowed_responses_report_the_tightest_limit() {
        let ops = allowed_headers(&statuses(), ALL);
        assert!(ops.contains(&HeaderOp::Set("ratelimit".into(), r#""hourly";r=0;t=3601"#.into())));
        assert!(ops.contains(&HeaderOp::Set("x-ratelimit-remaining".into(), "0".into())));
        let mut tie = statuses();
        tie[1].remaining = 9;
        assert_eq!(tightest(&tie), 0);
    }
}
