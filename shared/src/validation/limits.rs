//! Method, size and count limits, checked in the headers phase; and the body-size accounting
//! of the body phase ([`BodyPlan`]), which buffers at most `max_body_bytes`.

use super::config::LimitsConfig;
use super::rule::{Place, Rule, Violation};
use crate::config::ConfigError;
use crate::http::RequestView;
use crate::route::compile_methods;

/// Largest `max_body_bytes` accepted: Envoy buffers the body in memory.
const MAX_BODY_LIMIT: usize = 1 << 30;

/// Headers through which many frameworks let a request act as another method (Express's
/// method-override, ASP.NET Core's HttpMethodOverride, Symfony, Spring's filter for forms):
/// the method they name must be allowed too, or a POST would do what `methods` forbids.
const METHOD_OVERRIDE_HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// Compiled `limits`.
#[derive(Debug, Clone)]
pub struct Limits {
    methods: Vec<String>,
    max_path_bytes: usize,
    max_query_bytes: usize,
    max_header_bytes: usize,
    max_headers: usize,
    pub(super) max_body_bytes: usize,
}

impl Limits {
    /// Checks the numbers and the method list.
    pub fn compile(config: &LimitsConfig, field: &str) -> Result<Self, ConfigError> {
        let at_least_one = |value: usize, name: &str| {
            if value == 0 {
                Err(ConfigError::new(format!("{field}.{name}"), "must be at least 1"))
            } else {
                Ok(value)
            }
        };
        let max_body_bytes = at_least_one(config.max_body_bytes, "max_body_bytes")?;
        if max_body_bytes > MAX_BODY_LIMIT {
            return Err(ConfigError::new(
                format!("{field}.max_body_bytes"),
                format!("must be at most {MAX_BODY_LIMIT}"),
            ));
        }
        Ok(Self {
            methods: compile_methods(&config.methods, &format!("{field}.methods"))?,
            max_path_bytes: at_least_one(config.max_path_bytes, "max_path_bytes")?,
            max_query_bytes: at_least_one(config.max_query_bytes, "max_query_bytes")?,
            max_header_bytes: at_least_one(config.max_header_bytes, "max_header_bytes")?,
            max_headers: at_least_one(config.max_headers, "max_headers")?,
            max_body_bytes,
        })
    }

    /// The allowed methods (empty: any), for the `allow` header of a 405.
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// Every header-phase limit, in a fixed order; calls `report` for each violation until it
    /// returns true (stop).
    pub fn check(&self, request: &RequestView, report: &mut dyn FnMut(Violation) -> bool) {
        if !self.methods.is_empty() {
            if !self.methods.contains(&request.method) && report(Violation::new(Rule::MethodNotAllowed, Place::Method))
            {
                return;
            }
            // Frameworks upper-case the named method before using it.
            let forbidden = |value: &str| !self.methods.iter().any(|m| m.eq_ignore_ascii_case(value.trim()));
            let overridden = METHOD_OVERRIDE_HEADERS.iter().find(|name| request.headers.get_all(name).any(&forbidden));
            if let Some(name) = overridden {
                if report(Violation::new(Rule::MethodNotAllowed, Place::Header).field(name)) {
                    return;
                }
            }
        }
        if request.path_only().len() > self.max_path_bytes && report(Violation::new(Rule::PathTooLong, Place::Path)) {
            return;
        }
        if request.query().is_some_and(|q| q.len() > self.max_query_bytes)
            && report(Violation::new(Rule::QueryTooLong, Place::Query))
        {
            return;
        }
        let regular = || request.headers.iter().filter(|(name, _)| !name.starts_with(':'));
        if regular().count() > self.max_headers && report(Violation::new(Rule::TooManyHeaders, Place::Header)) {
            return;
        }
        for (name, value) in regular() {
            if name.len() + value.len() > self.max_header_bytes
                && report(Violation::new(Rule::HeaderTooLarge, Place::Header).field(name))
            {
                return;
            }
        }
        if let Some(length) = request.headers.get("content-length") {
            // An unparsable length is Envoy's to refuse; only a parsed, too large one is ours.
            if length.trim().parse::<u64>().is_ok_and(|n| n > self.max_body_bytes as u64) {
                report(Violation::new(Rule::BodyTooLarge, Place::Body));
            }
        }
    }
}

/// What the body phase does with the bytes buffered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStep {
    /// Keep buffering (return `Pause`): the body is incomplete and within the limit.
    Buffer,
    /// The buffered body exceeds the limit: reject now, before the rest arrives.
    TooLarge,
    /// The whole body is buffered: inspect it.
    Inspect,
    /// Nothing more to do for this body: let it pass.
    Pass,
}

/// The body phase of one request: which route's rules apply, and how much is buffered.
///
/// Envoy reports the total buffered size on each `on_http_request_body` while the filter
/// returns `Pause`, so the check is against that total, never a single chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPlan {
    pub(super) route: usize,
    pub(super) kind: super::BodyKind,
    max_body_bytes: usize,
    buffered: usize,
    done: bool,
}

impl BodyPlan {
    pub(super) fn new(route: usize, kind: super::BodyKind, max_body_bytes: usize) -> Self {
        Self { route, kind, max_body_bytes, buffered: 0, done: false }
    }

    /// Called for each body callback with the total buffered size and end-of-stream.
    pub fn step(&mut self, buffered: usize, end_of_stream: bool) -> BodyStep {
        if self.done {
            return BodyStep::Pass;
        }
        self.buffered = buffered;
        if buffered > self.max_body_bytes {
            self.done = true;
            return BodyStep::TooLarge;
        }
        if end_of_stream {
            self.done = true;
            BodyStep::Inspect
        } else {
            BodyStep::Buffer
        }
    }

    /// The body ended with trailers: inspect what is buffered (if still within the limit).
    pub fn finish(&mut self) -> BodyStep {
        if self.done {
            return BodyStep::Pass;
        }
        self.done = true;
        BodyStep::Inspect
    }

    /// The total size buffered so far.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// A body-size violation, for the `TooLarge` step.
    pub fn too_large(&self) -> Violation {
        Violation::new(Rule::BodyTooLarge, Place::Body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;
    use crate::validation::BodyKind;

    fn limits(json: &str) -> Limits {
        let config: LimitsConfig = serde_json::from_str(json).unwrap();
        Limits::compile(&config, "limits").unwrap()
    }

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            method: method.into(),
            path: path.into(),
            headers: Headers::from_pairs(headers.iter().copied()),
            ..RequestView::default()
        }
    }

    fn first(limits: &Limits, request: &RequestView) -> Option<Violation> {
        let mut found = None;
        limits.check(request, &mut |v| {
            found = Some(v);
            true
        });
        found
    }

    fn rule(limits: &Limits, request: &RequestView) -> Option<Rule> {
        first(limits, request).map(|v| v.rule)
    }

    #[test]
    fn methods() {
        let l = limits(r#"{"methods":["GET","POST"]}"#);
        assert_eq!(rule(&l, &request("POST", "/", &[])), None);
        assert_eq!(rule(&l, &request("PUT", "/", &[])), Some(Rule::MethodNotAllowed));
        assert_eq!(rule(&l, &request("get", "/", &[])), Some(Rule::MethodNotAllowed));
        assert_eq!(rule(&limits("{}"), &request("PURGE", "/", &[])), None);
        // A method named in an override header must be allowed too.
        for name in METHOD_OVERRIDE_HEADERS {
            let overriding = |method: &str| request("POST", "/", &[("accept", "*/*"), (name, method)]);
            assert_eq!(rule(&l, &overriding("DELETE")), Some(Rule::MethodNotAllowed), "{name}");
            assert_eq!(rule(&l, &overriding(" delete ")), Some(Rule::MethodNotAllowed), "{name}");
            assert_eq!(rule(&l, &overriding("get")), None, "{name}: GET is allowed, in any case");
            assert_eq!(rule(&limits("{}"), &overriding("DELETE")), None, "{name}: no methods, no check");
        }
        let twice = request("POST", "/", &[("x-http-method-override", "GET"), ("X-HTTP-Method-Override", "PATCH")]);
        assert_eq!(rule(&l, &twice), Some(Rule::MethodNotAllowed), "every value counts");
    }

    #[test]
    fn path_and_query_at_their_boundaries() {
        let l = limits(r#"{"max_path_bytes":5,"max_query_bytes":3}"#);
        assert_eq!(rule(&l, &request("GET", "/abcd", &[])), None);
        assert_eq!(rule(&l, &request("GET", "/abcde", &[])), Some(Rule::PathTooLong));
        assert_eq!(rule(&l, &request("GET", "/abcd?a=1", &[])), None);
        assert_eq!(rule(&l, &request("GET", "/abcd?a=12", &[])), Some(Rule::QueryTooLong));
    }

    #[test]
    fn header_count_and_size_at_their_boundaries() {
        let l = limits(r#"{"max_headers":2,"max_header_bytes":10}"#);
        let two = request("GET", "/", &[(":path", "/"), ("a", "1"), ("bb", "12345678")]);
        assert_eq!(rule(&l, &two), None, "pseudo-headers are not counted; 2+8 bytes fit");
        let three = request("GET", "/", &[("a", "1"), ("b", "2"), ("c", "3")]);
        assert_eq!(rule(&l, &three), Some(Rule::TooManyHeaders));
        let big = first(&l, &request("GET", "/", &[("bb", "123456789")])).unwrap();
        assert_eq!((big.rule, big.field.as_deref()), (Rule::HeaderTooLarge, Some("bb")));
    }

    #[test]
    fn content_length_is_checked_up_front() {
        let l = limits(r#"{"max_body_bytes":100}"#);
        assert_eq!(rule(&l, &request("POST", "/", &[("content-length", "100")])), None);
        assert_eq!(rule(&l, &request("POST", "/", &[("content-length", "101")])), Some(Rule::BodyTooLarge));
        assert_eq!(rule(&l, &request("POST", "/", &[("content-length", "x")])), None);
    }

    #[test]
    fn shadow_reporting_continues_through_every_limit() {
        let l = limits(r#"{"methods":["GET"],"max_path_bytes":1,"max_headers":1}"#);
        let mut seen = Vec::new();
        l.check(&request("PUT", "/ab", &[("a", "1"), ("b", "2")]), &mut |v| {
            seen.push(v.rule);
            false
        });
        assert_eq!(seen, [Rule::MethodNotAllowed, Rule::PathTooLong, Rule::TooManyHeaders]);
    }

    #[test]
    fn body_arriving_in_chunks_is_buffered_up_to_the_limit() {
        let mut plan = BodyPlan::new(0, BodyKind::Json, 100);
        assert_eq!(plan.step(40, false), BodyStep::Buffer);
        assert_eq!(plan.step(80, false), BodyStep::Buffer);
        assert_eq!(plan.step(100, true), BodyStep::Inspect);
        assert_eq!(plan.step(100, true), BodyStep::Pass, "decided once");

        let mut big = BodyPlan::new(0, BodyKind::Other, 100);
        assert_eq!(big.step(60, false), BodyStep::Buffer);
        assert_eq!(big.step(101, false), BodyStep::TooLarge, "rejected before the end arrives");
        assert_eq!(big.step(150, true), BodyStep::Pass);
        assert_eq!(big.buffered(), 101);

        let mut trailers = BodyPlan::new(0, BodyKind::Form, 100);
        assert_eq!(trailers.step(10, false), BodyStep::Buffer);
        assert_eq!(trailers.finish(), BodyStep::Inspect);
        assert_eq!(trailers.finish(), BodyStep::Pass);
    }
}
