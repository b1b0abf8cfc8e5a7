//! Whole-policy tests: configuration errors, tiers, keys, shadow mode, failure modes.

use serde_json::json;

use super::*;
use crate::audit::AuditDecision;
use crate::decision::{HeaderOp, Verdict};
use crate::http::{Headers, RequestView};
use crate::identity::Identity;

const NOW: u64 = 1_700_000_000_000;

const GUIDE: &str = r#"{
  "domain": "api", "hash_seed_env": "PALISADE_RATE_LIMIT_SEED", "trusted_proxies": 1,
  "headers": {"legacy": true, "on_allowed": true},
  "limits": {
    "burst": {"key": ["client_ip"], "rate": {"tokens": 20, "per": "1s"}},
    "hourly": {"key": ["subject"], "on_missing_key": {"fallback": ["client_ip"]},
               "rate": {"tokens": 100, "per": "1h"},
               "tiers": {"authenticated": {"tokens": 1000, "per": "1h"},
                         "premium": {"tokens": 10000, "per": "1h"}}}
  },
  "routes": [
    {"match": {"path": {"prefix": "/api/"}}, "limits": ["burst", "hourly"], "cost": {"methods": {"POST": 5}}}
  ]
}"#;

/// The VM environment of these tests: the seed, and an empty variable.
fn env(name: &str) -> Option<String> {
    match name {
        "PALISADE_RATE_LIMIT_SEED" => Some("test-seed".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn compile_json(json: &[u8]) -> Result<Policy, crate::config::ConfigError> {
    super::compile_json(json, &env)
}

fn compiled(json: &str) -> Policy {
    compile_json(json.as_bytes()).unwrap()
}

fn store(policy: &Policy) -> MemoryStore {
    let mut store = MemoryStore::new();
    create_missing(&mut store, policy.table_keys()).unwrap();
    store
}

fn request(method: &str, path: &str, client: &str) -> RequestView {
    RequestView {
        method: method.into(),
        path: path.into(),
        headers: Headers::from_pairs([("x-forwarded-for", client), ("x-request-id", "r-1")]),
        source_ip: "10.0.0.1".parse().ok(),
        ..RequestView::default()
    }
}

fn user(subject: &str, tier: Option<&str>) -> Identity {
    Identity {
        provider: "corp".into(),
        issuer: Some("https://auth.example.com".into()),
        subject: Some(subject.into()),
        tier: tier.map(str::to_string),
        ..Identity::default()
    }
}

/// How many of `n` identical requests pass, at `NOW`.
fn admitted(
    policy: &Policy,
    store: &mut MemoryStore,
    request: &RequestView,
    identity: Option<&Identity>,
    n: u32,
) -> u32 {
    (0..n).filter(|_| matches!(policy.check(store, request, identity, NOW).verdict, Verdict::Continue(_))).count()
        as u32
}

#[test]
fn guide_tiers_apply_per_hour() {
    // Burst of 20 per second would hide the hourly limits: give each request its own IP.
    let policy = compiled(&GUIDE.replace(r#""tokens": 20, "per": "1s""#, r#""tokens": 100000, "per": "1s""#));
    let mut store = store(&policy);
    let req = request("GET", "/api/x", "192.0.2.1");
    assert_eq!(admitted(&policy, &mut store, &req, None, 150), 100, "anonymous");
    let alice = user("alice", None);
    assert_eq!(admitted(&policy, &mut store, &req, Some(&alice), 1200), 1000, "authenticated");
    let bob = user("bob", Some("premium"));
    assert_eq!(admitted(&policy, &mut store, &req, Some(&bob), 10_050), 10_000, "premium");
    // An unknown tier gets the default rate.
    let carol = user("carol", Some("gold"));
    assert_eq!(admitted(&policy, &mut store, &req, Some(&carol), 120), 100, "unlisted tier");
}

#[test]
fn limited_request_gets_429_headers_and_audit() {
    let policy = compiled(GUIDE);
    let mut store = store(&policy);
    let req = request("GET", "/api/x", "192.0.2.7");
    let first = policy.check(&mut store, &req, None, NOW);
    assert_eq!(first.metrics.counted, Counted::Allowed);
    assert_eq!(first.verdict, Verdict::pass());
    assert!(first.response_headers.contains(&HeaderOp::Set("ratelimit".into(), r#""burst";r=19;t=1"#.into())));
    assert!(first
        .response_headers
        .contains(&HeaderOp::Set("ratelimit-policy".into(), r#""burst";q=20;w=1, "hourly";q=100;w=3600"#.into())));
    for _ in 0..19 {
        policy.check(&mut store, &req, None, NOW);
    }
    let limited = policy.check(&mut store, &req, None, NOW + 10);
    assert_eq!(limited.metrics.counted, Counted::Limited);
    let Verdict::Respond(reply) = &limited.verdict else { panic!("expected a reply") };
    assert_eq!(reply.status, 429);
    let header = |name: &str| reply.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    // 20 per second: one token every 50 ms, 40 ms after the last take at NOW + 10.
    assert_eq!(header("retry-after"), Some("1"));
    assert_eq!(header("ratelimit"), Some(r#""burst";r=0;t=1"#));
    assert_eq!(header("x-ratelimit-limit"), Some("20"));
    let audit = limited.audit.unwrap();
    assert_eq!(
        (audit.decision, audit.reason.as_str(), audit.rule.as_deref()),
        (AuditDecision::Deny, "rate_limited", Some("burst"))
    );
    assert_eq!(audit.status, Some(429));
    // The hourly bucket was charged only for the 20 admitted requests.
    let later = request("GET", "/api/x", "192.0.2.7");
    let decision = policy.check(&mut store, &later, None, NOW + 1000);
    assert!(decision.response_headers.contains(&HeaderOp::Set("x-ratelimit-remaining".into(), "19".into())));
}

#[test]
fn cost_by_method_and_unmatched_routes() {
    let policy = compiled(GUIDE);
    let mut store = store(&policy);
    let post = request("POST", "/api/orders", "192.0.2.9");
    assert_eq!(admitted(&policy, &mut store, &post, None, 10), 4, "20 tokens at 5 per POST");
    let other = request("GET", "/health", "192.0.2.9");
    let decision = policy.check(&mut store, &other, None, NOW);
    assert_eq!((decision.verdict, decision.metrics.counted), (Verdict::pass(), Counted::Unlimited));
}

#[test]
fn missing_keys_fall_back_deny_or_skip() {
    let mut no_ip = request("GET", "/api/x", "");
    no_ip.headers = Headers::new();
    // Fallback: no subject, so the hourly limit keys on the client IP; no XFF entry: 429.
    let policy = compiled(GUIDE);
    let decision = policy.check(&mut store(&policy), &no_ip, None, NOW);
    assert_eq!(decision.metrics.counted, Counted::Limited);
    assert_eq!(decision.audit.unwrap().reason, "missing_key");
    let skip =
        compiled(&GUIDE.replace(r#"["client_ip"], "rate""#, r#"["client_ip"], "on_missing_key": "skip", "rate""#));
    let decision = skip.check(&mut store(&skip), &no_ip, None, NOW);
    assert_eq!(decision.metrics.counted, Counted::Limited, "hourly falls back to the absent IP");
    let lenient = compiled(
        &GUIDE
            .replace(r#"["client_ip"], "rate""#, r#"["client_ip"], "on_missing_key": "skip", "rate""#)
            .replace(r#"{"fallback": ["client_ip"]}"#, r#""skip""#),
    );
    let decision = lenient.check(&mut store(&lenient), &no_ip, None, NOW);
    assert_eq!(decision.metrics.counted, Counted::Unlimited);
}

#[test]
fn subject_and_fallback_keys_do_not_collide() {
    // A subject equal to an IP string must not share the anonymous bucket of that IP.
    let policy = compiled(&GUIDE.replace(r#""tokens": 20, "per": "1s""#, r#""tokens": 100000, "per": "1s""#));
    let mut store = store(&policy);
    let req = request("GET", "/api/x", "192.0.2.1");
    assert_eq!(admitted(&policy, &mut store, &req, None, 100), 100);
    let spoof = Identity { tier: Some("anonymous".into()), ..user("192.0.2.1", None) };
    assert_eq!(admitted(&policy, &mut store, &req, Some(&spoof), 1), 1);
}

#[test]
fn shadow_mode_counts_and_audits_but_never_blocks() {
    let policy = compiled(&GUIDE.replace(r#""domain": "api""#, r#""domain": "api", "shadow": true"#));
    let mut store = store(&policy);
    let req = request("GET", "/api/x", "192.0.2.3");
    let decisions: Vec<Decision> = (0..25).map(|_| policy.check(&mut store, &req, None, NOW)).collect();
    assert!(decisions.iter().all(|d| d.verdict == Verdict::pass()));
    assert_eq!(decisions.iter().filter(|d| d.metrics.counted == Counted::Allowed).count(), 20);
    let shadowed: Vec<&Decision> = decisions.iter().filter(|d| d.metrics.counted == Counted::ShadowLimited).collect();
    assert_eq!(shadowed.len(), 5);
    assert_eq!(shadowed[0].audit.as_ref().unwrap().decision, AuditDecision::ShadowDeny);
}

#[test]
fn store_failures_follow_the_failure_mode() {
    let closed = compiled(GUIDE);
    let req = request("GET", "/api/x", "192.0.2.4");
    let mut broken = store(&closed);
    broken.fail_gets = true;
    let decision = closed.check(&mut broken, &req, None, NOW);
    assert_eq!(decision.metrics.counted, Counted::FailedClosed);
    assert!(decision.metrics.store_error);
    let Verdict::Respond(reply) = decision.verdict else { panic!("fail closed must answer") };
    assert_eq!(reply.status, 503);
    assert_eq!(decision.audit.unwrap().reason, "store_error");
    let open = compiled(&GUIDE.replace(r#""domain": "api""#, r#""domain": "api", "failure_mode": "open""#));
    let decision = open.check(&mut broken, &req, None, NOW);
    assert_eq!((decision.verdict, decision.metrics.counted), (Verdict::pass(), Counted::FailedOpen));
    // Tables never created: the request path does not create them, it fails.
    let decision = closed.check(&mut MemoryStore::new(), &req, None, NOW);
    assert_eq!(decision.metrics.counted, Counted::FailedClosed);
}

#[test]
fn tier_from_a_claim() {
    let json = GUIDE.replace(r#""domain": "api""#, r#""domain": "api", "tier": {"claim": "plan.name"}"#);
    let policy = compiled(&json);
    let mut premium = user("dave", Some("anonymous"));
    premium.claims = json!({"plan": {"name": "premium"}}).as_object().unwrap().clone();
    assert_eq!(policy.tiers.tier(Some(&premium)), "premium");
    assert_eq!(policy.tiers.tier(Some(&user("erin", Some("premium")))), "authenticated");
    assert_eq!(policy.tiers.tier(None), "anonymous");
}

#[test]
fn memory_is_the_configured_table() {
    let policy = compiled(
        &GUIDE.replace(r#""trusted_proxies": 1"#, r#""trusted_proxies": 1, "table": {"slots": 64, "ways": 8}"#),
    );
    let store = store(&policy);
    // 8 groups per limit, plus one overflow bucket per rate: burst 1, hourly 3.
    assert_eq!(store.len(), 2 * 8 + 1 + 3);
    assert!(policy.table_keys().all(|k| k.starts_with("palisade.rl.api.")));
}

#[test]
fn config_errors_name_the_field() {
    let base = json!({
        "limits": {"l": {"key": ["client_ip"], "rate": {"tokens": 10, "per": "1s"}}},
        "routes": [{"limits": ["l"]}]
    });
    let with = |pointer: &str, value: serde_json::Value| {
        let mut config = base.clone();
        let (parent, last) = pointer.rsplit_once('/').unwrap();
        let target = config.pointer_mut(parent).unwrap();
        target.as_object_mut().unwrap().insert(last.to_string(), value);
        config.to_string()
    };
    let cases = [
        (with("/domain", json!("Bad.Domain")), "domain: must be 1 to 64 of a-z, 0-9, - and _"),
        (with("/max_cas_retries", json!(0)), "max_cas_retries: must be between 1 and 1000"),
        (with("/table", json!({"ways": 0})), "table.ways: must be between 1 and 64"),
        (with("/table", json!({"slots": 0})), "table.slots: must be between 1 and 1048576"),
        (with("/table", json!({"slots": 100, "ways": 8})), "table.slots: must be a multiple of table.ways (8)"),
        (with("/table", json!({"on_full": "evict"})), "table.on_full: unknown variant `evict`"),
        (with("/trusted_proxies", json!(17)), "trusted_proxies: must be at most 16"),
        (with("/client_ip_prefix", json!({"ipv6": 0})), "client_ip_prefix.ipv6: must be between 1 and 128"),
        (with("/client_ip_prefix", json!({"ipv4": 33})), "client_ip_prefix.ipv4: must be between 1 and 32"),
        (with("/tier", json!({"claim": "a..b"})), "tier.claim: must be a claim path like plan or org.plan"),
        (with("/tier", json!({"anonymous": ""})), "tier.anonymous: must not be empty"),
        (with("/failure_mode", json!("maybe")), "failure_mode: unknown variant `maybe`"),
        (with("/limits", json!({})), "limits: must define at least one limit"),
        (with("/routes", json!([])), "routes: must have at least one route"),
        (
            with("/limits/L", json!({"key": ["client_ip"], "rate": {"tokens": 1, "per": "1s"}})),
            "limits.L: must be 1 to 64",
        ),
        (with("/limits/l/key", json!([])), "limits.l.key: must have at least one part"),
        (with("/limits/l/key", json!(["client_ip", "client_ip"])), "limits.l.key[1]: duplicate key part"),
        (with("/limits/l/key", json!([{"header": ""}])), "limits.l.key[0].header: must be a header name"),
        (with("/limits/l/key", json!(["ip"])), "limits.l.key[0]: unknown variant `ip`"),
        (
            with("/limits/l/on_missing_key", json!({"fallback": []})),
            "limits.l.on_missing_key.fallback: must have at least one part",
        ),
        (with("/limits/l/rate", json!({"tokens": 0, "per": "1s"})), "limits.l.rate.tokens: tokens must be at least 1"),
        (with("/limits/l/rate", json!({"tokens": 1, "per": "0s"})), "limits.l.rate.per: window must be at least 1s"),
        (
            with("/limits/l/rate", json!({"tokens": 1, "per": "1w"})),
            "limits.l.rate.per: must be a whole number of s, m, h or d",
        ),
        (with("/limits/l/rate", json!({"tokens": 1, "per": "01s"})), "limits.l.rate.per: must be a whole number"),
        (
            with("/limits/l/rate", json!({"tokens": 5, "per": "1s", "burst": 4})),
            "limits.l.rate.burst: burst must be at least tokens",
        ),
        (
            with("/limits/l/rate", json!({"tokens": 1, "per": "1000000d", "burst": u64::MAX / 2})),
            "limits.l.rate.burst: burst times window in milliseconds must fit in 64 bits",
        ),
        (with("/limits/l/tiers", json!({"gold": {"tokens": 1}})), "limits.l.tiers.gold: missing field `per`"),
        (
            with("/limits/l/rate", json!({"tokens": 1, "per": "1s", "extra": 1})),
            "limits.l.rate.extra: unknown field `extra`",
        ),
        (
            with("/limits/m", json!({"key": ["route"], "rate": {"tokens": 1, "per": "1s"}})),
            "limits.m: is not used by any route",
        ),
        (with("/routes/0/limits", json!([])), "routes[0].limits: must name at least one limit"),
        (with("/routes/0/limits", json!(["x"])), "routes[0].limits[0]: unknown limit \"x\""),
        (with("/routes/0/limits", json!(["l", "l"])), "routes[0].limits[1]: duplicate limit"),
        (
            with("/routes/0/cost", json!({"methods": {"post": 1}})),
            "routes[0].cost.methods[0]: must be an upper-case HTTP method",
        ),
        (
            with("/routes/0/cost", json!({"default": 11})),
            "routes[0].cost.default: exceeds the capacity 10 of limit \"l\"",
        ),
        (
            with("/routes/0/cost", json!({"methods": {"POST": 11}})),
            "routes[0].cost.methods.POST: exceeds the capacity 10",
        ),
        (with("/routes/0/match", json!({"path": {"prefix": "x"}})), "routes[0].match.path.prefix: must start with /"),
        (with("/hash_seed_env", json!("MISSING")), "hash_seed_env: environment variable MISSING is not set"),
        (with("/hash_seed_env", json!("EMPTY")), "hash_seed_env: environment variable EMPTY is empty"),
        (with("/hash_seed", json!("inline")), "hash_seed: unknown field `hash_seed`"),
    ];
    for (json, expected) in cases {
        let err = compile_json(json.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{json}\n  got: {err}\n want: {expected}");
    }
    assert!(!compile_json(base.to_string().as_bytes()).unwrap().seeded, "no hash_seed_env: the filter warns");
    assert!(compiled(GUIDE).seeded);
    assert!(compile_json(b"").unwrap_err().to_string().starts_with("config: missing field `limits`"));
}

#[test]
fn parses_windows() {
    use super::config::parse_window;
    assert_eq!(parse_window("1s"), Some(1));
    assert_eq!(parse_window("10m"), Some(600));
    assert_eq!(parse_window("1h"), Some(3600));
    assert_eq!(parse_window("2d"), Some(172_800));
    for bad in ["", "s", "1", "1.5s", "-1s", "1 s", "99999999999999999999s", "1ms"] {
        assert_eq!(parse_window(bad), None, "{bad}");
    }
}

#[test]
fn example_config_compiles_and_applies_the_guide_tiers() {
    let policy = compile_json(include_bytes!("../../../envoy-config/examples/rate-limit.json")).unwrap();
    let mut store = store(&policy);
    let login = request("POST", "/auth/login", "198.51.100.1");
    assert_eq!(admitted(&policy, &mut store, &login, None, 15), 10);
    let api = request("GET", "/api/items", "198.51.100.2");
    let decision = policy.check(&mut store, &api, None, NOW);
    assert!(decision
        .response_headers
        .contains(&HeaderOp::Set("ratelimit".into(), r#""per-ip-burst";r=39;t=1"#.into())));
    let premium = user("zoe", Some("premium"));
    let decision = policy.check(&mut store, &api, Some(&premium), NOW);
    assert!(decision.response_headers.iter().any(|op| matches!(op, HeaderOp::Set(name, value)
        if name == "ratelimit-policy" && value.contains(r#""hourly";q=10000;w=3600"#))));
}

#[test]
fn a_rate_change_starts_keys_afresh_instead_of_misreading_levels() {
    let policy = compiled(GUIDE);
    let mut store = store(&policy);
    let req = request("GET", "/api/x", "192.0.2.50");
    assert_eq!(admitted(&policy, &mut store, &req, None, 30), 20);
    let faster = compiled(&GUIDE.replace(r#""tokens": 20, "per": "1s""#, r#""tokens": 40, "per": "2s""#));
    assert_eq!(admitted(&faster, &mut store, &req, None, 50), 40);
}

/// xorshift64*: deterministic pseudo-random traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn randomized_traffic_never_exceeds_the_rate() {
    // 5 per second per IP, a tiny table (so overflow and reuse happen), a clock that jitters
    // backwards, random costs and methods: per IP, admitted tokens never exceed the burst plus
    // the refill up to the latest time seen.
    let json = r#"{"domain": "fuzz", "table": {"slots": 8, "ways": 2, "on_full": "deny"},
        "limits": {"ip": {"key": ["client_ip"], "rate": {"tokens": 5, "per": "1s"}}},
        "routes": [{"limits": ["ip"], "cost": {"methods": {"POST": 3}}}]}"#;
    let policy = compiled(json);
    let mut store = store(&policy);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut now = NOW;
    let mut latest = NOW;
    let mut spent = std::collections::HashMap::<u64, u64>::new();
    for _ in 0..20_000 {
        let step = rng.next() % 12;
        now = if rng.next().is_multiple_of(10) { now.saturating_sub(step * 3) } else { now + step };
        latest = latest.max(now);
        let ip = rng.next() % 12;
        let method = if rng.next().is_multiple_of(4) { "POST" } else { "GET" };
        let mut req = request(method, "/any", "");
        req.source_ip = format!("203.0.113.{ip}").parse().ok();
        store.fail_gets = rng.next().is_multiple_of(500);
        let decision = policy.check(&mut store, &req, None, now);
        if decision.metrics.counted == Counted::Allowed {
            *spent.entry(ip).or_default() += if method == "POST" { 3 } else { 1 };
        }
        let spent_ip = spent.get(&ip).copied().unwrap_or(0);
        let bound = 5 + (latest - NOW) * 5 / 1000;
        assert!(spent_ip <= bound, "ip {ip} spent {spent_ip} > {bound}");
    }
    // Demand (about 25 tokens/s per IP) far exceeds the rate, so the busiest IPs sit at the bound.
    let bound = 5 + (latest - NOW) * 5 / 1000;
    assert!(spent.values().any(|&s| s * 10 >= bound * 9), "{spent:?} vs {bound}");
}

#[test]
fn an_ipv6_client_is_its_network() {
    // 2 per hour per client: addresses of one /64 share a bucket (by default), the next /64 has
    // its own, and `ipv6: 128` gives each address its own again.
    let config = |prefix: serde_json::Value| {
        let mut config = json!({"limits": {"ip": {"key": ["client_ip"], "rate": {"tokens": 2, "per": "1h"}}},
                                "routes": [{"limits": ["ip"]}]});
        if !prefix.is_null() {
            config["client_ip_prefix"] = prefix;
        }
        compiled(&config.to_string())
    };
    let statuses = |policy: &Policy, peers: &[&str]| {
        let mut store = store(policy);
        let mut statuses = Vec::new();
        for peer in peers {
            let mut req = request("GET", "/", "");
            req.source_ip = peer.parse().ok();
            let decision = policy.check(&mut store, &req, None, NOW);
            statuses.push(match decision.verdict {
                Verdict::Continue(_) => 200,
                Verdict::Respond(reply) => reply.status,
            });
        }
        statuses
    };
    let rotating = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:3::1"];
    assert_eq!(statuses(&config(json!(null)), &rotating), [200, 200, 429, 200]);
    assert_eq!(statuses(&config(json!({"ipv6": 48})), &rotating), [200, 200, 429, 429]);
    assert_eq!(statuses(&config(json!({"ipv6": 128})), &rotating), [200, 200, 200, 200]);
    let mapped = ["198.51.100.7", "::ffff:198.51.100.7", "198.51.100.7", "198.51.100.8"];
    assert_eq!(statuses(&config(json!(null)), &mapped), [200, 200, 429, 200]);
    assert_eq!(statuses(&config(json!({"ipv4": 24})), &mapped), [200, 200, 429, 429]);
}

#[test]
fn deciding_reads_only_the_connection_facts_its_keys_use() {
    let policy = |key: serde_json::Value, on_missing: serde_json::Value, route_match: serde_json::Value| {
        let mut limit = json!({"key": key, "rate": {"tokens": 10, "per": "1s"}});
        if !on_missing.is_null() {
            limit["on_missing_key"] = on_missing;
        }
        compiled(&json!({"limits": {"l": limit}, "routes": [{"match": route_match, "limits": ["l"]}]}).to_string())
    };
    let by_header = policy(json!([{"header": "x-api-key"}]), json!(null), json!({}));
    assert!(!by_header.reads_source_ip() && !by_header.reads_route_name());
    let by_ip = policy(json!(["client_ip"]), json!(null), json!({}));
    assert!(by_ip.reads_source_ip() && !by_ip.reads_route_name());
    let falls_back_to_ip = policy(json!(["subject"]), json!({"fallback": ["client_ip"]}), json!({}));
    assert!(falls_back_to_ip.reads_source_ip());
    let by_route = policy(json!(["route", {"header": "x-a"}]), json!(null), json!({}));
    assert!(by_route.reads_route_name() && !by_route.reads_source_ip());
    let on_named_route = policy(json!([{"header": "x-a"}]), json!(null), json!({"route_name": "api"}));
    assert!(on_named_route.reads_route_name());
}
