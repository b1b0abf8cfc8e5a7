//! Table tests through the public API: every condition kind, Istio's evaluation order, shadow
//! mode, 401 versus 403, audit events and config errors.

use serde_json::{json, Value};

use super::*;
use crate::audit::AuditDecision;
use crate::decision::{HeaderOp, Verdict};
use crate::http::{Headers, RequestView};
use crate::identity::Identity;

const ORDER_SERVICE: &str = "spiffe://cluster.local/ns/production/sa/order-service";

fn authz(config: Value) -> Authz {
    Authz::from_json(config.to_string().as_bytes()).unwrap_or_else(|err| panic!("{err}"))
}

/// One ALLOW policy with one rule.
fn allow(rule: Value) -> Authz {
    authz(json!({"policies": [{"name": "p", "action": "ALLOW", "rules": [rule]}]}))
}

#[derive(Clone)]
struct Req {
    view: RequestView,
    identity: Option<Identity>,
    port: Option<u16>,
}

fn req(method: &str, path: &str) -> Req {
    Req {
        view: RequestView {
            method: method.into(),
            path: path.into(),
            authority: "api.example.com".into(),
            scheme: "https".into(),
            headers: Headers::new(),
            source_ip: "10.0.0.5".parse().ok(),
            ..RequestView::default()
        },
        identity: None,
        port: Some(8443),
    }
}

fn get(path: &str) -> Req {
    req("GET", path)
}

impl Req {
    fn peer(mut self, peer: &str) -> Self {
        self.view.peer_principal = Some(peer.into());
        self
    }
    fn ip(mut self, ip: &str) -> Self {
        self.view.source_ip = ip.parse().ok();
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.view.headers.add(name, value);
        self
    }
    fn host(mut self, authority: &str) -> Self {
        self.view.authority = authority.into();
        self
    }
    fn port(mut self, port: Option<u16>) -> Self {
        self.port = port;
        self
    }
    fn route(mut self, name: &str) -> Self {
        self.view.route_name = Some(name.into());
        self
    }
    fn claims(mut self, claims: Value) -> Self {
        self.identity = Some(Identity {
            provider: "corp".into(),
            issuer: Some("https://auth.example.com".into()),
            subject: Some("alice".into()),
            claims: claims.as_object().cloned().unwrap_or_default(),
            ..Identity::default()
        });
        self
    }
    fn user(self) -> Self {
        self.claims(json!({}))
    }
}

fn decide(authz: &Authz, r: &Req) -> Decision {
    authz.evaluate(&r.view, r.identity.as_ref(), r.port)
}

/// The enforced result as a short word: `allow`, or the reply status.
fn result(authz: &Authz, r: &Req) -> String {
    match authz.verdict(&decide(authz, r)) {
        Verdict::Continue(_) => "allow".into(),
        Verdict::Respond(reply) => reply.status.to_string(),
    }
}

fn check(authz: &Authz, cases: &[(Req, &str)]) {
    for (i, (r, expected)) in cases.iter().enumerate() {
        assert_eq!(result(authz, r), *expected, "case {i}: {} {} {:?}", r.view.method, r.view.path, r.view);
    }
}

#[test]
fn mtls_principals_and_namespaces() {
    let exact = allow(json!({"from": [{"source": {"principals": [ORDER_SERVICE]}}]}));
    check(
        &exact,
        &[
            (get("/").peer(ORDER_SERVICE), "allow"),
            (get("/").peer("spiffe://cluster.local/ns/production/sa/order-service2"), "403"),
            (get("/").peer("spiffe://cluster.local/ns/staging/sa/order-service"), "403"),
            (get("/"), "403"),
        ],
    );
    let istio_form = allow(json!({"from": [{"source": {"principals": ["cluster.local/ns/production/*"]}}]}));
    check(
        &istio_form,
        &[
            (get("/").peer(ORDER_SERVICE), "allow"),
            (get("/").peer("spiffe://cluster.local/ns/productionx/sa/a"), "403"),
            (get("/").peer("spiffe://other.local/ns/production/sa/a"), "403"),
        ],
    );
    let suffix_and_not = allow(json!({"from": [{"source": {
        "principals": ["*/sa/order-service"], "notPrincipals": ["*/ns/staging/sa/order-service"]}}]}));
    check(
        &suffix_and_not,
        &[
            (get("/").peer(ORDER_SERVICE), "allow"),
            (get("/").peer("spiffe://cluster.local/ns/staging/sa/order-service"), "403"),
        ],
    );
    let any_peer = allow(json!({"from": [{"source": {"principals": ["*"]}}]}));
    check(&any_peer, &[(get("/").peer("spiffe://x/y"), "allow"), (get("/"), "403")]);
    let namespaces = allow(json!({"from": [{"source": {"namespaces": ["production"], "notNamespaces": ["kube-*"]}}]}));
    check(
        &namespaces,
        &[
            (get("/").peer(ORDER_SERVICE), "allow"),
            (get("/").peer("spiffe://cluster.local/ns/kube-system/sa/x"), "403"),
            (get("/").peer("spiffe://cluster.local/sa/production"), "403"),
            (get("/").peer("https://production.example.com"), "403"),
        ],
    );
}

#[test]
fn source_ip_blocks_ipv4_and_ipv6() {
    let blocks = allow(json!({"from": [{"source": {
        "ipBlocks": ["10.0.0.0/8", "2001:db8::/32"], "notIpBlocks": ["10.9.0.0/16"]}}]}));
    check(
        &blocks,
        &[
            (get("/").ip("10.1.2.3"), "allow"),
            (get("/").ip("::ffff:10.1.2.3"), "allow"),
            (get("/").ip("2001:db8::7"), "allow"),
            (get("/").ip("10.9.0.1"), "403"),
            (get("/").ip("11.0.0.1"), "403"),
            (get("/").ip("2001:db9::1"), "403"),
        ],
    );
    let mut unknown = get("/");
    unknown.view.source_ip = None;
    check(&blocks, &[(unknown.clone(), "403")]);
    let not_only = allow(json!({"from": [{"source": {"notIpBlocks": ["192.0.2.0/24"]}}]}));
    check(&not_only, &[(get("/").ip("192.0.2.1"), "403"), (get("/").ip("198.51.100.1"), "allow"), (unknown, "allow")]);
}

#[test]
fn remote_ip_uses_the_trusted_xff_position() {
    let rule = json!({"from": [{"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]});
    let with_hops =
        |hops: u32| authz(json!({"xff_num_trusted_hops": hops, "policies": [{"name": "p", "rules": [rule]}]}));
    let (zero_hops, one_hop, two_hops) = (with_hops(0), with_hops(1), with_hops(2));
    // 0 hops: the peer address; a client talking straight to Envoy cannot spoof it via XFF.
    let spoofed = get("/").ip("10.0.0.1").header("x-forwarded-for", "203.0.113.9");
    check(&zero_hops, &[(spoofed.clone(), "403"), (get("/").ip("203.0.113.1"), "allow")]);
    check(&zero_hops, &[(get("/").ip("203.0.113.1").header("x-forwarded-for", "10.9.9.9"), "allow")]);
    // 1 hop: the rightmost entry (what the trusted proxy saw); entries left of it are ignored.
    check(&one_hop, &[(spoofed, "allow")]);
    let forged_left = get("/").ip("203.0.113.1").header("x-forwarded-for", "203.0.113.9, 198.51.100.7");
    check(&one_hop, &[(forged_left.clone(), "403")]);
    check(&two_hops, &[(forged_left, "allow")]);
    let split_headers =
        get("/").header("x-forwarded-for", "203.0.113.9").header("x-forwarded-for", "198.51.100.7:4433");
    check(&two_hops, &[(split_headers, "allow")]);
    // Fewer entries than trusted hops, or garbage at the position: no remote IP, and the peer
    // is never used instead.
    check(
        &one_hop,
        &[(get("/").ip("203.0.113.1"), "403"), (get("/").header("x-forwarded-for", "203.0.113.1, junk"), "403")],
    );
    check(&with_hops(5), &[(get("/").header("x-forwarded-for", "203.0.113.1, 1.1.1.1"), "403")]);
}

#[test]
fn unknown_remote_ip_fails_closed() {
    let policies = |action: &str, field: &str| {
        json!({"xff_num_trusted_hops": 1, "default_action": "allow", "policies": [{"name": "p", "action": action,
            "rules": [{"from": [{"source": {field: ["203.0.113.0/24"]}}]}]}]})
    };
    let short = get("/").ip("203.0.113.1");
    // An ALLOW on notRemoteIpBlocks would admit an absent value under Istio's rule; here it does not.
    check(&authz(policies("ALLOW", "notRemoteIpBlocks")), &[(short.clone(), "403")]);
    check(&authz(policies("ALLOW", "remoteIpBlocks")), &[(short.clone(), "403")]);
    // A DENY on either form catches the request whose client address is unknown.
    check(&authz(policies("DENY", "remoteIpBlocks")), &[(short.clone(), "403")]);
    check(&authz(policies("DENY", "notRemoteIpBlocks")), &[(short.clone(), "403")]);
    // Known addresses follow the lists.
    let known = |ip: &str| get("/").header("x-forwarded-for", ip);
    check(
        &authz(policies("DENY", "remoteIpBlocks")),
        &[(known("198.51.100.1"), "allow"), (known("203.0.113.1"), "403")],
    );
    let when = json!({"xff_num_trusted_hops": 1, "policies": [{"name": "p",
        "rules": [{"when": [{"key": "remote.ip", "notValues": ["203.0.113.0/24"]}]}]}]});
    check(&authz(when), &[(short, "403"), (known("198.51.100.1"), "allow"), (known("203.0.113.1"), "403")]);
}

#[test]
fn request_principals_and_401() {
    let policy = allow(json!({"from": [{"source": {"requestPrincipals": ["https://auth.example.com/*"]}}],
                              "to": [{"operation": {"paths": ["/api/*"]}}]}));
    check(
        &policy,
        &[(get("/api/x").user(), "allow"), (get("/api/x"), "401"), (get("/web"), "403"), (get("/web").user(), "403")],
    );
    let mut other = get("/api/x").user();
    if let Some(identity) = other.identity.as_mut() {
        identity.issuer = Some("https://evil.example.com".into());
    }
    check(&policy, &[(other, "403")]);
    // Istio's "require a JWT" idiom: DENY notRequestPrincipals ["*"].
    let require_jwt = authz(json!({"default_action": "allow", "policies": [
        {"name": "require-jwt", "action": "DENY", "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]}]}));
    check(&require_jwt, &[(get("/"), "401"), (get("/").user(), "allow")]);
    let api_key = Req {
        identity: Some(Identity { provider: "keys".into(), consumer: Some("acme".into()), ..Identity::default() }),
        ..get("/")
    };
    check(&require_jwt, &[(api_key, "allow")]);
}

#[test]
fn operations_methods_hosts_ports_paths() {
    let methods = allow(json!({"to": [{"operation": {"methods": ["GET", "HEAD"]}}]}));
    check(
        &methods,
        &[(req("GET", "/"), "allow"), (req("HEAD", "/"), "allow"), (req("get", "/"), "403"), (req("POST", "/"), "403")],
    );
    let not_methods = allow(json!({"to": [{"operation": {"notMethods": ["DELETE"]}}]}));
    check(&not_methods, &[(req("PATCH", "/"), "allow"), (req("DELETE", "/"), "403")]);
    let hosts = allow(
        json!({"to": [{"operation": {"hosts": ["api.example.com", "*.internal"], "notHosts": ["db.internal"]}}]}),
    );
    check(
        &hosts,
        &[
            (get("/"), "allow"),
            (get("/").host("API.Example.com:8443"), "allow"),
            (get("/").host("svc.internal"), "allow"),
            (get("/").host("db.internal"), "403"),
            (get("/").host("api.example.com.evil"), "403"),
            // A trailing dot is the same host, for a DENY as for an ALLOW.
            (get("/").host("api.example.com."), "allow"),
            (get("/").host("db.internal."), "403"),
            (get("/").host("db.internal.:8443"), "403"),
        ],
    );
    let ports = allow(json!({"to": [{"operation": {"ports": ["8443", "443"], "notPorts": ["9000"]}}]}));
    check(
        &ports,
        &[
            (get("/"), "allow"),
            (get("/").port(Some(9000)), "403"),
            (get("/").port(Some(80)), "403"),
            (get("/").port(None), "allow"),
            (get("/").port(None).host("api.example.com:9000"), "403"),
            (get("/").port(None).host("api.example.com:8443"), "allow"),
        ],
    );
}

#[test]
fn path_matchers_see_the_normalized_path() {
    let exact = allow(json!({"to": [{"operation": {"paths": ["/admin"]}}]}));
    check(
        &exact,
        &[
            (get("/admin"), "allow"),
            (get("/admin?x=1"), "allow"),
            (get("/public/../admin"), "allow"),
            (get("//admin"), "allow"),
            (get("/%61dmin"), "allow"),
            (get("/admin/"), "403"),
            (get("/Admin"), "403"),
        ],
    );
    let prefix = allow(json!({"to": [{"operation": {"paths": ["/api/v1/*"], "notPaths": ["/api/v1/internal/*"]}}]}));
    check(
        &prefix,
        &[
            (get("/api/v1/users"), "allow"),
            (get("/api/v1/internal/x"), "403"),
            (get("/api/v1/public/../internal/x"), "403"),
            (get("/api/v1/%69nternal/x"), "403"),
            (get("/api/v1//internal/x"), "403"),
            (get("/api/v2/users"), "403"),
        ],
    );
    let glob = allow(json!({"to": [{"operation": {"paths": [{"glob": "/users/*/orders/**"}]}}]}));
    check(
        &glob,
        &[
            (get("/users/42/orders/7"), "allow"),
            (get("/users/42/orders/7/items"), "allow"),
            (get("/users/42/x/orders/7"), "403"),
            (get("/users/42/orders"), "403"),
        ],
    );
    let regex = allow(json!({"to": [{"operation": {"paths": [{"regex": "/items/[0-9]+"}]}}]}));
    check(&regex, &[(get("/items/12"), "allow"), (get("/items/12/x"), "403"), (get("/items/ab"), "403")]);
    let template = allow(json!({"to": [{"operation": {"paths": ["/files/{*}/meta"]}}]}));
    check(&template, &[(get("/files/a/meta"), "allow"), (get("/files/a/b/meta"), "403")]);
}

#[test]
fn unsafe_paths_are_rejected_before_policies() {
    let open = authz(json!({"default_action": "allow"}));
    for path in
        ["/../etc/passwd", "/a%2fb", "/%252e%252e/", "/a\\b", "/a%00", "/%c0%ae%c0%ae/", "/a%zz", "/x/..;/admin"]
    {
        assert_eq!(result(&open, &get(path)), "400", "{path}");
    }
    let Verdict::Respond(reply) = open.verdict(&decide(&open, &get("/a%00"))) else { panic!("not denied") };
    assert_eq!(
        String::from_utf8_lossy(&reply.body),
        r#"{"error":"bad_request","message":"request path is not allowed"}"#
    );
    assert_eq!(reply.details, "palisade_authz_invalid_path");
}

#[test]
fn header_conditions() {
    let policy = allow(
        json!({"when": [{"key": "request.headers[X-Tenant]", "values": ["acme", "beta-*"], "notValues": ["beta-blocked"]}]}),
    );
    check(
        &policy,
        &[
            (get("/").header("x-tenant", "acme"), "allow"),
            (get("/").header("X-TENANT", "beta-1"), "allow"),
            (get("/").header("x-tenant", "beta-blocked"), "403"),
            (get("/").header("x-tenant", "acme").header("x-tenant", "beta-blocked"), "403"),
            (get("/").header("x-tenant", "other"), "403"),
            (get("/"), "403"),
        ],
    );
    let absent = allow(json!({"when": [{"key": "request.headers[x-debug]", "notValues": ["*"]}]}));
    check(&absent, &[(get("/"), "allow"), (get("/").header("x-debug", "1"), "403")]);
}

#[test]
fn claim_conditions() {
    let when = |condition: Value| allow(json!({"when": [condition]}));
    let groups = json!({"groups": ["dev", "ops"], "scope": "read write", "realm_access": {"roles": ["admin"]},
                        "tier": "gold-plus", "n": 42, "https://x.io/team": "red", "aud": ["api", "web"]});
    let user = || get("/").claims(groups.clone());
    let cases: Vec<(Value, bool)> = vec![
        (json!({"key": "request.auth.claims[tier]", "values": ["gold-plus"]}), true),
        (json!({"key": "request.auth.claims[tier]", "values": ["gold"]}), false),
        (json!({"key": "request.auth.claims[tier]", "values": ["gold*"]}), true),
        (json!({"key": "request.auth.claims[tier]", "values": [{"prefix": "gold"}]}), true),
        (json!({"key": "request.auth.claims[tier]", "values": [{"glob": "*-plus"}]}), true),
        (json!({"key": "request.auth.claims[tier]", "values": [{"regex": "gold-(plus|max)"}]}), true),
        (json!({"key": "request.auth.claims[tier]", "values": [{"regex": "gold"}]}), false),
        (json!({"key": "request.auth.claims[groups]", "values": ["ops", "x"]}), true),
        (json!({"key": "request.auth.claims[groups]", "allValues": ["dev", "ops"]}), true),
        (json!({"key": "request.auth.claims[groups]", "allValues": ["dev", "admin"]}), false),
        (json!({"key": "request.auth.claims[groups]", "notValues": ["admin"]}), true),
        (json!({"key": "request.auth.claims[groups]", "notValues": ["ops"]}), false),
        (json!({"key": "request.auth.claims[scope]", "values": ["write"]}), true),
        (json!({"key": "request.auth.claims[scope]", "allValues": ["read", "write"]}), true),
        (json!({"key": "request.auth.claims[scope]", "values": ["read write"]}), false),
        (json!({"key": "request.auth.claims[realm_access][roles]", "values": ["admin"]}), true),
        (json!({"key": "request.auth.claims[realm_access][roles]", "values": ["ops"]}), false),
        (json!({"key": "request.auth.claims[https://x.io/team]", "values": ["red"]}), true),
        (json!({"key": "request.auth.claims[n]", "values": ["42"]}), true),
        (json!({"key": "request.auth.claims[missing]", "values": ["*"]}), false),
        (json!({"key": "request.auth.claims[missing]", "notValues": ["x"]}), true),
        (json!({"key": "request.auth.principal", "values": ["https://auth.example.com/alice"]}), true),
        (json!({"key": "request.auth.audiences", "values": ["web"]}), true),
        (json!({"key": "request.auth.presenter", "values": ["*"]}), false),
    ];
    for (condition, expected) in cases {
        let outcome = result(&when(condition.clone()), &user());
        assert_eq!(outcome == "allow", expected, "{condition} -> {outcome}");
    }
    // No identity: claim conditions cannot hold, and an identity could change that: 401.
    check(&when(json!({"key": "request.auth.claims[groups]", "values": ["ops"]})), &[(get("/"), "401")]);
}

#[test]
fn connection_conditions_in_when() {
    let source_ip = allow(json!({"when": [{"key": "source.ip", "values": ["10.0.0.0/24"]}]}));
    check(&source_ip, &[(get("/").ip("10.0.0.9"), "allow"), (get("/").ip("10.0.1.9"), "403")]);
    let remote_ip = allow(json!({"when": [{"key": "remote.ip", "notValues": ["203.0.113.0/24"]}]}));
    check(
        &remote_ip,
        &[(get("/").ip("203.0.113.4").header("x-forwarded-for", "198.51.100.1"), "403"), (get("/"), "allow")],
    );
    let principal = allow(
        json!({"when": [{"key": "source.principal", "values": ["cluster.local/ns/production/sa/order-service"]}]}),
    );
    check(&principal, &[(get("/").peer(ORDER_SERVICE), "allow"), (get("/"), "403")]);
    let namespace = allow(json!({"when": [{"key": "source.namespace", "values": ["prod*"]}]}));
    check(&namespace, &[(get("/").peer(ORDER_SERVICE), "allow"), (get("/").peer("spiffe://c/ns/dev/sa/a"), "403")]);
}

#[test]
fn and_or_combination() {
    // Rules OR; within a rule from AND to AND when; from entries OR; fields of a source AND.
    let policy = authz(json!({"policies": [{"name": "p", "rules": [
        {"from": [{"source": {"principals": [ORDER_SERVICE], "ipBlocks": ["10.0.0.0/8"]}},
                  {"source": {"namespaces": ["billing"]}}],
         "to": [{"operation": {"methods": ["POST"], "paths": ["/api/v1/payments/*"]}}],
         "when": [{"key": "request.headers[x-env]", "values": ["prod"]}]},
        {"to": [{"operation": {"methods": ["GET"], "paths": ["/health"]}}]}
    ]}]}));
    let payment = || req("POST", "/api/v1/payments/42").header("x-env", "prod");
    check(
        &policy,
        &[
            (payment().peer(ORDER_SERVICE), "allow"),
            (payment().peer(ORDER_SERVICE).ip("192.168.0.1"), "403"),
            (payment().peer("spiffe://cluster.local/ns/billing/sa/x").ip("192.168.0.1"), "allow"),
            (req("POST", "/api/v1/payments/42").peer(ORDER_SERVICE), "403"),
            (req("PUT", "/api/v1/payments/42").header("x-env", "prod").peer(ORDER_SERVICE), "403"),
            (get("/health"), "allow"),
            (req("POST", "/health"), "403"),
        ],
    );
}

#[test]
fn evaluation_order_follows_istio() {
    let policies = |default: &str, with_allow: bool| {
        let mut list = vec![
            json!({"name": "audit-all", "action": "AUDIT", "rules": [{}]}),
            json!({"name": "block-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}),
        ];
        if with_allow {
            list.push(json!({"name": "allow-admin-and-api", "rules": [{"to": [{"operation": {"paths": ["/admin*", "/api/*"]}}]}]}));
        }
        authz(json!({"default_action": default, "policies": list}))
    };
    // (default, ALLOW policy present, path, expected)
    for (default, with_allow, path, expected) in [
        ("deny", true, "/admin", "403"),   // DENY wins over a matching ALLOW
        ("deny", true, "/api/x", "allow"), // ALLOW matches
        ("deny", true, "/web", "403"),     // ALLOW policies exist, none matches
        ("allow", true, "/web", "403"),    // ... whatever the default
        ("deny", false, "/web", "403"),    // no ALLOW policy: the default decides
        ("allow", false, "/web", "allow"), // Istio's behaviour
        ("allow", false, "/admin", "403"), // DENY still applies
    ] {
        assert_eq!(result(&policies(default, with_allow), &get(path)), expected, "{default} {with_allow} {path}");
    }
    let set = policies("deny", true);
    let decision = decide(&set, &get("/admin"));
    assert_eq!(
        decision.enforced,
        Outcome::Deny(Denial { reason: DenyReason::DenyPolicy, policy: Some(1), unauthenticated: false })
    );
    assert_eq!(decision.audits, [0], "AUDIT policies match whatever the decision");
    assert_eq!(decide(&set, &get("/api/x")).enforced, Outcome::Allow(Some(2)));
    assert_eq!(set.policy_name(2), "allow-admin-and-api");
    assert_eq!(
        decide(&set, &get("/web")).enforced,
        Outcome::Deny(Denial { reason: DenyReason::NoAllowMatch, policy: None, unauthenticated: false })
    );
    assert_eq!(
        decide(&policies("deny", false), &get("/web")).enforced,
        Outcome::Deny(Denial { reason: DenyReason::DefaultDeny, policy: None, unauthenticated: false })
    );
    // Empty rules never match; a rule with no conditions matches everything (as in Istio).
    let no_rules = authz(json!({"policies": [{"name": "nothing", "rules": []}]}));
    assert_eq!(result(&no_rules, &get("/")), "403");
}

#[test]
fn per_route_policy_sets() {
    let config = authz(json!({
        "policies": [{"name": "top", "rules": [{"to": [{"operation": {"paths": ["/top"]}}]}]}],
        "routes": [
            {"match": {"route_name": "payments"}, "policies": [{"name": "payments-writers", "rules": [
                {"from": [{"source": {"principals": [ORDER_SERVICE]}}]}]}]},
            {"match": {"path": {"prefix": "/public/"}}, "default_action": "allow"}
        ]
    }));
    check(
        &config,
        &[
            (get("/top"), "allow"),
            (get("/top").route("payments"), "403"),
            (get("/top").route("payments").peer(ORDER_SERVICE), "allow"),
            (get("/public/a"), "allow"),
            (get("/public/../other"), "403"),
            (get("/public/../top"), "allow"),
            (get("/other"), "403"),
        ],
    );
}

#[test]
fn shadow_policies_are_decided_but_not_enforced() {
    let config = authz(json!({"default_action": "allow", "policies": [
        {"name": "new-block", "action": "DENY", "shadow": true, "rules": [{"to": [{"operation": {"paths": ["/old/*"]}}]}]},
        {"name": "block-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}
    ]}));
    let decision = decide(&config, &get("/old/x"));
    assert_eq!(config.verdict(&decision), Verdict::Continue(Vec::new()));
    assert!(decision.shadow_denied());
    assert_eq!(decision.policy_hits().collect::<Vec<_>>(), [(0, PolicyCounter::ShadowDenied)]);
    let events = config.audit_events(&decision, &get("/old/x").view, None);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].decision, events[0].rule.as_deref(), events[0].status),
        (AuditDecision::ShadowDeny, Some("new-block"), Some(403))
    );
    let enforced = decide(&config, &get("/admin"));
    assert_eq!(enforced.policy_hits().collect::<Vec<_>>(), [(1, PolicyCounter::Denied)]);
    assert!(!enforced.shadow_denied());

    // A shadow ALLOW policy: trying default deny before switching it on.
    let trial = authz(json!({"default_action": "allow", "policies": [
        {"name": "api-only", "shadow": true, "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}]}));
    let api = decide(&trial, &get("/api/x"));
    assert_eq!(
        (api.enforced, api.policy_hits().collect::<Vec<_>>()),
        (Outcome::Allow(None), vec![(0, PolicyCounter::ShadowAllowed)])
    );
    let web = decide(&trial, &get("/web"));
    assert!(web.shadow_denied());
    assert_eq!(
        web.would_be,
        Outcome::Deny(Denial { reason: DenyReason::NoAllowMatch, policy: None, unauthenticated: false })
    );
    assert_eq!(result(&trial, &get("/web")), "allow");
}

#[test]
fn whole_filter_shadow_mode() {
    let config = authz(json!({"shadow": true, "policies": [
        {"name": "block-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}]}));
    assert!(config.is_shadow());
    for path in ["/admin", "/web", "/../x"] {
        let decision = decide(&config, &get(path));
        assert_eq!(decision.enforced, Outcome::Allow(None), "{path}");
        assert!(decision.shadow_denied(), "{path}");
        assert_eq!(result(&config, &get(path)), "allow");
    }
    let admin = decide(&config, &get("/admin"));
    assert_eq!(admin.policy_hits().collect::<Vec<_>>(), [(0, PolicyCounter::ShadowDenied)]);
    let events = config.audit_events(&decide(&config, &get("/../x")), &get("/../x").view, None);
    assert_eq!(
        (events[0].decision, events[0].reason.as_str(), events[0].status),
        (AuditDecision::ShadowDeny, "invalid_path", Some(400))
    );
}

#[test]
fn audit_events_name_policy_principal_method_and_path() {
    let config = authz(json!({"default_action": "allow", "policies": [
        {"name": "watch-exports", "action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/export*"]}}]}]},
        {"name": "no-delete", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]}]}));
    let r = req("DELETE", "/export/1?token=secret").user().header("authorization", "Bearer abc");
    let events = config.audit_events(&decide(&config, &r), &r.view, r.identity.as_ref());
    let lines: Vec<Value> = events.iter().map(|e| serde_json::from_str(&e.to_json_line()).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["decision"], "deny");
    assert_eq!(lines[0]["rule"], "no-delete");
    assert_eq!(lines[0]["reason"], "policy_denied");
    assert_eq!(lines[0]["status"], 403);
    assert_eq!(lines[0]["principal"], "https://auth.example.com/alice");
    assert_eq!(lines[0]["method"], "DELETE");
    assert_eq!(lines[0]["path"], "/export/1");
    assert_eq!(lines[1]["decision"], "audit");
    assert_eq!(lines[1]["rule"], "watch-exports");
    assert!(events.iter().all(|e| !e.to_json_line().contains("secret") && !e.to_json_line().contains("Bearer")));
    // Allowed requests that match no DENY or AUDIT policy write nothing.
    assert!(config.audit_events(&decide(&config, &get("/web")), &get("/web").view, None).is_empty());
}

#[test]
fn replies_are_configurable_and_reveal_no_policy() {
    let config = authz(json!({"policies": [{"name": "secret-policy-name", "rules": [
        {"from": [{"source": {"requestPrincipals": ["*"]}}], "to": [{"operation": {"paths": ["/api/*"]}}]}]}],
        "denied_response": {"status": 404, "code": "not_found", "message": "no such resource"}}));
    let Verdict::Respond(denied) = config.verdict(&decide(&config, &get("/web"))) else { panic!("allowed") };
    assert_eq!(denied.status, 404);
    assert_eq!(String::from_utf8_lossy(&denied.body), r#"{"error":"not_found","message":"no such resource"}"#);
    assert_eq!(denied.details, "palisade_authz_denied");
    let Verdict::Respond(unauthenticated) = config.verdict(&decide(&config, &get("/api/x"))) else { panic!("allowed") };
    assert_eq!(unauthenticated.status, 401);
    assert!(unauthenticated.headers.contains(&("www-authenticate".into(), "Bearer".into())));
    assert_eq!(
        String::from_utf8_lossy(&unauthenticated.body),
        r#"{"error":"unauthenticated","message":"authentication required"}"#
    );
    for reply in [denied, unauthenticated] {
        assert!(!String::from_utf8_lossy(&reply.body).contains("secret-policy-name"));
    }
}

#[test]
fn forwards_the_normalized_path_when_asked() {
    let config = authz(json!({"default_action": "allow", "path_normalization": {"forward_normalized": true}}));
    assert_eq!(
        config.verdict(&decide(&config, &get("/a//b/../c?x=%2e"))),
        Verdict::Continue(vec![HeaderOp::Set(":path".into(), "/a/c?x=%2e".into())])
    );
    assert_eq!(config.verdict(&decide(&config, &get("/a/c?x=1"))), Verdict::Continue(Vec::new()));
    let decode = authz(json!({"default_action": "allow", "path_normalization": {"escaped_slashes": "decode"}}));
    assert_eq!(result(&decode, &get("/a%2Fb")), "allow");
}

#[test]
fn counters_cover_every_policy_action() {
    use super::policy::Action;
    let config = authz(json!({"policies": [
        {"name": "a", "rules": [{}]}, {"name": "d", "action": "DENY"}, {"name": "u", "action": "AUDIT"}]}));
    let names: Vec<String> = config
        .policies()
        .flat_map(|(name, action)| {
            PolicyCounter::for_action(action).iter().map(move |c| format!("{name}.{}", c.name()))
        })
        .collect();
    assert_eq!(names, ["a.allowed", "a.shadow_allowed", "d.denied", "d.shadow_denied", "u.audited"]);
    assert_eq!(config.policies().map(|(_, a)| a).collect::<Vec<_>>(), [Action::Allow, Action::Deny, Action::Audit]);
}

#[test]
fn config_errors_name_the_field() {
    let p = |rule: Value| json!({"policies": [{"name": "p", "rules": [rule]}]});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"polices": []}), "polices: unknown field `polices`"),
        (
            json!({"policies": [{"name": "p", "action": "CUSTOM"}]}),
            "policies[0].action: unknown variant `CUSTOM`, expected one of `ALLOW`, `DENY`, `AUDIT`",
        ),
        (json!({"policies": [{"name": "bad.name"}]}), "policies[0].name: may contain only letters, digits, - and _"),
        (json!({"policies": [{"name": ""}]}), "policies[0].name: must be 1-64 characters"),
        (
            json!({"policies": [{"name": "a"}, {"name": "a"}]}),
            "policies[1].name: duplicate policy name (first at policies[0])",
        ),
        (
            json!({"policies": [{"name": "a"}], "routes": [{"match": {}, "policies": [{"name": "a"}]}]}),
            "routes[0].policies[0].name: duplicate policy name (first at policies[0])",
        ),
        (p(json!({"from": [{"source": {}}]})), "policies[0].rules[0].from[0].source: must set at least one field"),
        (p(json!({"to": [{"operation": {}}]})), "policies[0].rules[0].to[0].operation: must set at least one field"),
        (
            p(json!({"from": [{"source": {"ipBlocks": ["10.0.0.0/33"]}}]})),
            "policies[0].rules[0].from[0].source.ipBlocks[0]: prefix length must be 0-32 for IPv4",
        ),
        (
            p(json!({"from": [{"source": {"notRemoteIpBlocks": ["x"]}}]})),
            "policies[0].rules[0].from[0].source.notRemoteIpBlocks[0]: invalid IP address",
        ),
        (
            p(json!({"from": [{"source": {"serviceAccounts": ["x"]}}]})),
            "policies[0].rules[0].from[0].source.serviceAccounts: unknown field `serviceAccounts`",
        ),
        (
            p(json!({"to": [{"operation": {"ports": ["0"]}}]})),
            "policies[0].rules[0].to[0].operation.ports[0]: must be a port number 1-65535",
        ),
        (
            p(json!({"to": [{"operation": {"notPorts": ["+80"]}}]})),
            "policies[0].rules[0].to[0].operation.notPorts[0]: must be a port number 1-65535",
        ),
        (
            p(json!({"to": [{"operation": {"paths": ["api"]}}]})),
            "policies[0].rules[0].to[0].operation.paths[0]: must start with / or *",
        ),
        (
            p(json!({"to": [{"operation": {"notPaths": ["/a*b"]}}]})),
            "policies[0].rules[0].to[0].operation.notPaths[0]: `*` is allowed only at the start or the end",
        ),
        (
            p(json!({"to": [{"operation": {"paths": [{"regex": "("}]}}]})),
            "policies[0].rules[0].to[0].operation.paths[0]: invalid regex",
        ),
        (
            p(json!({"to": [{"operation": {"paths": [{"glob": "/a", "regex": "/b"}]}}]})),
            "policies[0].rules[0].to[0].operation.paths[0]: expected a string or an object with one key",
        ),
        (
            p(json!({"to": [{"operation": {"methods": [{"wildcard": "G*"}]}}]})),
            "policies[0].rules[0].to[0].operation.methods[0]: expected a string or an object",
        ),
        (
            p(json!({"when": [{"key": "request.auth.claims[groups]"}]})),
            "policies[0].rules[0].when[0]: must set values, notValues or allValues",
        ),
        (
            p(json!({"when": [{"key": "request.time", "values": ["x"]}]})),
            "policies[0].rules[0].when[0].key: unsupported key \"request.time\"",
        ),
        (
            p(json!({"when": [{"key": "request.auth.claims[]", "values": ["x"]}]})),
            "policies[0].rules[0].when[0].key: unsupported key",
        ),
        (
            p(json!({"when": [{"key": "source.ip", "values": [{"regex": "10\\..*"}]}]})),
            "policies[0].rules[0].when[0].values[0]: must be an IP or CIDR string",
        ),
        (
            p(json!({"when": [{"key": "source.ip", "allValues": ["10.0.0.1"]}]})),
            "policies[0].rules[0].when[0].allValues: does not apply to an IP key",
        ),
        (json!({"routes": [{"match": {"path": {"prefix": "x"}}}]}), "routes[0].match.path.prefix: must start with /"),
        (json!({"default_action": "maybe"}), "default_action: unknown variant `maybe`"),
        (json!({"denied_response": {"status": 200}}), "denied_response.status: must be 400-599"),
        (
            json!({"unauthenticated_response": {"code": "Not Allowed"}}),
            "unauthenticated_response.code: must be a snake_case code",
        ),
        (
            json!({"path_normalization": {"escaped_slashes": "keep"}}),
            "path_normalization.escaped_slashes: unknown variant `keep`",
        ),
        (json!({"xff_num_trusted_hops": -1}), "xff_num_trusted_hops: invalid value: integer `-1`"),
    ];
    for (config, expected) in cases {
        let err = Authz::from_json(config.to_string().as_bytes()).map(|_| ()).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{config}\n got: {err}\nwant: {expected}");
    }
}

#[test]
fn empty_config_denies_everything() {
    let config = Authz::from_json(b"").unwrap();
    assert_eq!(result(&config, &get("/")), "403");
}

#[test]
fn shipped_example_config_enforces_the_guide_policy() {
    let config = Authz::from_json(include_bytes!("../../../envoy-config/examples/authz.json")).unwrap();
    let pay = || req("POST", "/api/v1/payments/42");
    check(
        &config,
        &[
            (pay().peer(ORDER_SERVICE), "allow"),
            (pay().peer("spiffe://cluster.local/ns/production/sa/web"), "403"),
            (pay(), "403"),
            (req("GET", "/api/v1/payments/42").peer(ORDER_SERVICE), "403"),
            (req("POST", "/api/v1/payments/../admin").peer(ORDER_SERVICE), "403"),
            (req("POST", "/api/v1/payments/%2e%2e/x").peer(ORDER_SERVICE), "403"),
            (get("/healthz"), "allow"),
            (get("/api/v1/orders/7").claims(json!({"scope": "orders.read profile"})), "allow"),
            (get("/api/v1/orders/7").claims(json!({"scope": "profile"})), "403"),
            (get("/api/v1/orders/7"), "401"),
            (get("/internal/x").header("x-forwarded-for", "10.1.1.1, 203.0.113.7"), "403"),
        ],
    );
    // The shadow DENY rule: refund without the finance role passes but is counted.
    let refund = req("POST", "/api/v1/payments/42/refund").peer(ORDER_SERVICE).user();
    let decision = decide(&config, &refund);
    assert_eq!(result(&config, &refund), "allow");
    assert!(decision.shadow_denied());
}

#[test]
fn needs_name_only_the_facts_some_policy_reads() {
    let plain = allow(json!({"to": [{"operation": {"paths": ["/api/*"], "methods": ["GET"]}}],
                             "from": [{"source": {"requestPrincipals": ["*"]}}],
                             "when": [{"key": "request.headers[x-tenant]", "values": ["acme"]}]}));
    let none =
        Needs { source_ip: false, peer_principal: false, route_name: false, destination_port: false, identity: false };
    assert_eq!(plain.needs(), Needs { identity: true, ..none });
    let cases = [
        (json!({"to": [{"operation": {"paths": ["/api/*"]}}]}), none),
        (json!({"when": [{"key": "request.headers[x-tenant]", "values": ["acme"]}]}), none),
        (json!({"from": [{"source": {"notRequestPrincipals": ["*"]}}]}), Needs { identity: true, ..none }),
        (json!({"when": [{"key": "request.auth.claims[groups]", "values": ["a"]}]}), Needs { identity: true, ..none }),
        (json!({"when": [{"key": "request.auth.principal", "values": ["a"]}]}), Needs { identity: true, ..none }),
        (json!({"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}), Needs { source_ip: true, ..none }),
        (json!({"when": [{"key": "source.ip", "values": ["10.0.0.1"]}]}), Needs { source_ip: true, ..none }),
        (json!({"from": [{"source": {"notRemoteIpBlocks": ["10.0.0.0/8"]}}]}), Needs { source_ip: true, ..none }),
        (json!({"when": [{"key": "remote.ip", "values": ["10.0.0.1"]}]}), Needs { source_ip: true, ..none }),
        (json!({"from": [{"source": {"principals": ["a"]}}]}), Needs { peer_principal: true, ..none }),
        (json!({"from": [{"source": {"notNamespaces": ["a"]}}]}), Needs { peer_principal: true, ..none }),
        (json!({"when": [{"key": "source.namespace", "values": ["a"]}]}), Needs { peer_principal: true, ..none }),
        (json!({"when": [{"key": "source.principal", "values": ["a"]}]}), Needs { peer_principal: true, ..none }),
        (json!({"to": [{"operation": {"notPorts": ["8080"]}}]}), Needs { destination_port: true, ..none }),
    ];
    for (rule, expected) in cases {
        assert_eq!(allow(rule.clone()).needs(), expected, "{rule}");
    }
    // A trusted proxy moves the remote IP to x-forwarded-for: the peer address is not read.
    let behind_proxy = authz(json!({"xff_num_trusted_hops": 1, "policies": [{"name": "p", "action": "DENY",
        "rules": [{"from": [{"source": {"remoteIpBlocks": ["10.0.0.0/8"]}}]}]}]}));
    assert_eq!(behind_proxy.needs(), none);
    // Policies under routes count, and so does a route matched by name.
    let routed = authz(json!({"routes": [{"match": {"route_name": "r"}, "policies": [{"name": "p", "action": "AUDIT",
        "rules": [{"to": [{"operation": {"ports": ["443"]}}]}]}]}]}));
    assert_eq!(routed.needs(), Needs { route_name: true, destination_port: true, ..none });
}

#[test]
fn policies_that_need_no_identity_decide_alike_with_and_without_one() {
    // The filter skips reading filter state for these configs: the identity must not matter.
    let configs = [
        json!({"policies": [{"name": "ip", "action": "DENY", "rules": [{"from": [{"source": {"notIpBlocks": ["10.0.0.0/8"]}}]}]},
                            {"name": "api", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}]}),
        json!({"policies": [{"name": "tenant", "action": "ALLOW",
                             "rules": [{"when": [{"key": "request.headers[x-tenant]", "notValues": ["evil"]}]}]},
                            {"name": "audit", "action": "AUDIT", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]}]}),
        json!({"default_action": "allow", "policies": [{"name": "admin", "action": "DENY", "shadow": true,
                             "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]}]}),
    ];
    let requests = [
        get("/api/x"),
        get("/web"),
        get("/admin/x"),
        req("POST", "/api/x").header("x-tenant", "evil"),
        get("/api/x").ip("192.0.2.1"),
    ];
    for config in configs {
        let authz = authz(config.clone());
        assert!(!authz.needs().identity, "{config}");
        for r in &requests {
            for with in [r.clone().user(), r.clone().claims(json!({"groups": ["admin"], "scope": "all"}))] {
                assert_eq!(decide(&authz, &with), decide(&authz, r), "{config} {:?}", r.view);
            }
        }
    }
}

#[test]
fn writes_audit_exactly_when_there_are_audit_events() {
    let authz = authz(json!({"policies": [
        {"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]},
        {"name": "shadow", "action": "DENY", "shadow": true, "rules": [{"to": [{"operation": {"paths": ["/beta/*"]}}]}]},
        {"name": "audit-api", "action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/api/audited"]}}]}]},
        {"name": "api", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/api/*", "/beta/*"]}}]}]}
    ]}));
    for path in ["/api/x", "/api/audited", "/admin/x", "/beta/x", "/other", "/a/../../x"] {
        let r = get(path);
        let decision = decide(&authz, &r);
        let events = authz.audit_events(&decision, &r.view, r.identity.as_ref());
        assert_eq!(decision.writes_audit(), !events.is_empty(), "{path}");
    }
}

/// The README's recipe: a backend that honors method-override headers would run a DELETE that
/// a method rule never saw, so a DENY policy refuses those headers, whatever their value.
#[test]
fn method_override_headers_can_be_refused() {
    let authz = authz(json!({"policies": [
        {"name": "no-method-override", "action": "DENY", "rules": [
            {"when": [{"key": "request.headers[x-http-method-override]", "values": ["*"]}]},
            {"when": [{"key": "request.headers[x-http-method]", "values": ["*"]}]},
            {"when": [{"key": "request.headers[x-method-override]", "values": ["*"]}]}]},
        {"name": "read-only", "action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET", "POST"]}}]}]}
    ]}));
    check(
        &authz,
        &[
            (req("POST", "/orders/1"), "allow"),
            (req("DELETE", "/orders/1"), "403"),
            (req("POST", "/orders/1").header("x-http-method-override", "DELETE"), "403"),
            (req("POST", "/orders/1").header("X-HTTP-Method", "delete"), "403"),
            (req("POST", "/orders/1").header("x-method-override", ""), "403"),
        ],
    );
}
