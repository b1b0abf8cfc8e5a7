//! The authz filter under the wasmtime host: config rejection naming the field, Istio's
//! DENY / ALLOW / AUDIT order, default deny, 401 vs 403, the identity jwt-authn leaves in filter
//! state (tokens minted here with HS256), the mTLS peer principal property, path-normalization
//! bypass attempts, shadow mode counters, audit lines and hostile traffic.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use palisade_tests::host::{traffic, Host, LogLevel, Plugin, Request, Verdict, DEFAULT_TIME_UNIX_SECS};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

const ORDER_SERVICE: &str = "spiffe://cluster.local/ns/production/sa/order-service";

/// DENY before ALLOW, an AUDIT policy, an identity-conditioned ALLOW and a plain ALLOW.
const CONFIG: &str = r#"{
  "policies": [
    {"name": "no-delete", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]},
    {"name": "audit-admin", "action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]},
    {"name": "admins", "action": "ALLOW", "rules": [{
      "to": [{"operation": {"paths": ["/admin/*"]}}],
      "when": [{"key": "request.auth.claims[roles]", "values": ["admin"]}]}]},
    {"name": "public", "action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET", "DELETE"], "paths": ["/public/*"]}}]}]}
  ]
}"#;

/// The guide's policy: only order-service may POST /api/v1/payments/*.
const PAYMENTS: &str = r#"{
  "policies": [{
    "name": "service-access", "action": "ALLOW",
    "rules": [{
      "from": [{"source": {"principals": ["cluster.local/ns/production/sa/order-service"]}}],
      "to": [{"operation": {"methods": ["POST"], "paths": ["/api/v1/payments/*"]}}]
    }]
  }]
}"#;

const SECRET: &[u8] = b"palisade-authz-host-test-hs256-secret!";

fn authz(host: &Host, config: &str) -> Plugin {
    host.plugin("authz").config(config).load().unwrap()
}

fn identity(claims: Value) -> String {
    json!({"provider": "internal", "issuer": "https://internal.example.com", "subject": "alice", "claims": claims})
        .to_string()
}

fn reply_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

/// The audit events (JSON lines) the plugin logged, oldest first.
fn audit_events(plugin: &Plugin) -> Vec<Value> {
    plugin
        .logs()
        .iter()
        .filter(|entry| entry.level == LogLevel::Info && entry.message.contains(r#""filter":"authz""#))
        .map(|entry| serde_json::from_str(&entry.message[entry.message.find('{').unwrap()..]).unwrap())
        .collect()
}

fn status(plugin: &Plugin, request: Request) -> u16 {
    match plugin.send(request).verdict() {
        Verdict::Forwarded => 200,
        Verdict::LocalReply(status) => status,
        other => panic!("unexpected verdict {other:?}"),
    }
}

/// An HS256 JWT for jwt-authn's `internal` provider.
fn token(claims: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","kid":"internal-1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(format!("{header}.{payload}").as_bytes()));
    format!("{header}.{payload}.{signature}")
}

/// HMAC-SHA256 with `SECRET`, computed by the `openssl` CLI (in the base packages), so the
/// tests crate needs no crypto dependency.
fn hmac_sha256(message: &[u8]) -> Vec<u8> {
    let key: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt", &format!("hexkey:{key}"), "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success() && output.stdout.len() == 32, "openssl dgst failed");
    output.stdout
}

fn jwt_authn(host: &Host) -> Plugin {
    let config = r#"{
      "providers": {"internal": {
        "issuer": "https://internal.example.com", "algorithms": ["HS256"],
        "hmac_secret": {"env": "PALISADE_JWT_HS256_SECRET", "encoding": "base64url", "kid": "internal-1"},
        "from_headers": [{"name": "x-internal-token"}]}},
      "rules": [{"match": {"path": {"prefix": "/"}}, "requires": "allow_missing"}]
    }"#;
    host.plugin("jwt-authn")
        .config(config)
        .env("PALISADE_JWT_HS256_SECRET", &URL_SAFE_NO_PAD.encode(SECRET))
        .load()
        .unwrap()
}

#[test]
fn config_rejection_names_the_field() {
    let host = Host::new();
    let cases = [
        (
            r#"{"policies": [{"name": "p", "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/33"]}}]}]}]}"#,
            "policies[0].rules[0].from[0].source.ipBlocks[0]",
        ),
        (r#"{"policies": [{"name": "p", "action": "CUSTOM"}]}"#, "policies[0].action"),
        (r#"{"policies": [{"name": "a"}, {"name": "a"}]}"#, "policies[1].name"),
        (
            r#"{"policies": [{"name": "p", "rules": [{"to": [{"operation": {"paths": [{"regex": "("}]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation.paths[0]",
        ),
        (r#"{"default_action": "maybe"}"#, "default_action"),
        (r#"{"xff_num_trusted_hops": -1}"#, "xff_num_trusted_hops"),
        ("not json", "authz"),
    ];
    for (config, field) in cases {
        let error = host.plugin("authz").config(config).load().err().unwrap_or_else(|| panic!("{config} loaded"));
        assert!(error.to_string().contains(field), "{config}: {error}");
    }
    // A valid config loads.
    authz(&host, CONFIG);
}

#[test]
fn deny_then_allow_then_default_with_audit_lines() {
    let host = Host::new();
    let plugin = authz(&host, CONFIG);

    let exchange = plugin.send(Request::get("/public/page?x=1").property(&["source", "address"], "10.0.0.5:4000"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().headers.get(":path").as_deref(), Some("/public/page?x=1"));
    assert_eq!(host.metric("palisade.authz.policy.public.allowed"), Some(1));

    // A matching DENY wins over a matching ALLOW.
    let exchange = plugin.send(
        Request::new("DELETE", "/public/page")
            .header("x-request-id", "r-1")
            .property(&["source", "address"], "10.0.0.5:4000"),
    );
    let reply = exchange.local_reply().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.details, "palisade_authz_denied");
    assert_eq!(reply_json(&reply.body), json!({"error": "forbidden", "message": "access denied"}));
    assert!(!String::from_utf8_lossy(&reply.body).contains("no-delete"), "replies never name a policy");
    assert_eq!(host.metric("palisade.authz.policy.no-delete.denied"), Some(1));
    assert_eq!(host.metric("palisade.authz.policy.public.allowed"), Some(1));

    // ALLOW policies exist and none matches: 403, not the upstream.
    assert_eq!(status(&plugin, Request::get("/private")), 403);

    let events = audit_events(&plugin);
    assert_eq!(events.len(), 2, "{events:?}");
    let deny = &events[0];
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["reason"], "policy_denied");
    assert_eq!(deny["rule"], "no-delete");
    assert_eq!(deny["status"], 403);
    assert_eq!(deny["method"], "DELETE");
    assert_eq!(deny["path"], "/public/page");
    assert_eq!(deny["request_id"], "r-1");
    assert_eq!(events[1]["reason"], "no_allow_policy_matched");
    assert!(events[1].get("rule").is_none_or(Value::is_null));

    // AUDIT never changes the decision, and is logged on allow and deny alike.
    let admin = identity(json!({"roles": ["admin"]}));
    let allowed = plugin.send(Request::get("/admin/users").property(&["palisade.identity"], admin.as_str()));
    assert_eq!(allowed.verdict(), Verdict::Forwarded);
    let user = identity(json!({"roles": ["user"]}));
    assert_eq!(status(&plugin, Request::get("/admin/users").property(&["palisade.identity"], user.as_str())), 403);
    let events = audit_events(&plugin);
    let audits: Vec<&Value> = events.iter().filter(|e| e["decision"] == "audit").collect();
    assert_eq!(audits.len(), 2);
    assert_eq!(audits[0]["rule"], "audit-admin");
    assert_eq!(audits[0]["reason"], "audit_policy");
    assert_eq!(audits[0]["principal"], "https://internal.example.com/alice");
    assert_eq!(host.metric("palisade.authz.policy.audit-admin.audited"), Some(2));
    assert_eq!(host.metric("palisade.authz.audited"), Some(2));
    assert_eq!(host.metric("palisade.authz.policy.admins.allowed"), Some(1));
    assert_eq!(host.metric("palisade.authz.allowed"), Some(2));
    assert_eq!(host.metric("palisade.authz.denied"), Some(3));
    // Nothing secret in the audit lines: no claim other than the principal.
    assert!(plugin.logs().iter().all(|entry| !entry.message.contains("roles")));
}

#[test]
fn identity_is_read_only_when_a_policy_tests_it_or_for_an_audit_line() {
    let host = Host::new();
    let by_path = r#"{"policies": [
      {"name": "admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]},
      {"name": "api", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/api/*", "/admin/*"]}}]}]}
    ]}"#;
    let plugin = authz(&host, by_path);
    // Allowed: no policy tests the identity, so a malformed one is not even read.
    assert_eq!(status(&plugin, Request::get("/api/x").property(&["palisade.identity"], "{not json")), 200);
    assert_eq!(host.metric("palisade.authz.identity_malformed"), Some(0));
    // Denied: the audit line still names the caller.
    let alice = identity(json!({}));
    assert_eq!(status(&plugin, Request::get("/admin/x").property(&["palisade.identity"], alice.as_str())), 403);
    let audits = audit_events(&plugin);
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0]["principal"], "https://internal.example.com/alice");
    // A policy that tests it reads it on every request.
    let plugin = authz(&host, CONFIG);
    assert_eq!(status(&plugin, Request::get("/admin/users").property(&["palisade.identity"], "{not json")), 401);
    assert_eq!(host.metric("palisade.authz.identity_malformed"), Some(1));
}

#[test]
fn unauthenticated_gets_401_and_a_failed_condition_403() {
    let host = Host::new();
    let plugin = authz(&host, CONFIG);
    let exchange = plugin.send(Request::get("/admin/users"));
    let reply = exchange.local_reply().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.details, "palisade_authz_unauthenticated");
    assert_eq!(reply.headers.get("www-authenticate").as_deref(), Some("Bearer"));
    assert_eq!(reply_json(&reply.body), json!({"error": "unauthenticated", "message": "authentication required"}));
    // No identity could make /private pass: 403, not 401.
    assert_eq!(status(&plugin, Request::get("/private")), 403);
    // With an identity that lacks the role: 403.
    let user = identity(json!({"roles": ["user"]}));
    assert_eq!(status(&plugin, Request::get("/admin/users").property(&["palisade.identity"], user.as_str())), 403);
    // An unreadable identity is no identity (and counted).
    assert_eq!(status(&plugin, Request::get("/admin/users").property(&["palisade.identity"], "{not json")), 401);
    assert_eq!(host.metric("palisade.authz.identity_malformed"), Some(1));
    assert_eq!(host.metric("palisade.authz.unauthenticated"), Some(2));
    assert_eq!(host.metric("palisade.authz.denied"), Some(4));
}

#[test]
fn default_deny_unless_the_config_says_allow() {
    let host = Host::new();
    let empty = authz(&host, "{}");
    let reply = empty.send(Request::get("/anything")).local_reply().cloned().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(audit_events(&empty)[0]["reason"], "default_deny");
    // Only a DENY policy: requests it does not match still fall to the default.
    let deny_only = authz(
        &host,
        r#"{"policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/x"]}}]}]}]}"#,
    );
    assert_eq!(status(&deny_only, Request::get("/y")), 403);
    let open = authz(
        &host,
        r#"{"default_action": "allow", "policies": [{"name": "d", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/x"]}}]}]}]}"#,
    );
    assert_eq!(status(&open, Request::get("/y")), 200);
    assert_eq!(status(&open, Request::get("/x")), 403);
    // A policy with no rules matches nothing.
    let no_rules = authz(&host, r#"{"default_action": "allow", "policies": [{"name": "a", "rules": []}]}"#);
    assert_eq!(status(&no_rules, Request::get("/y")), 403);
}

#[test]
fn identity_from_jwt_authn_through_filter_state() {
    let host = Host::new();
    let jwt = jwt_authn(&host);
    let config = r#"{"policies": [
      {"name": "admins", "action": "ALLOW", "rules": [{
        "from": [{"source": {"requestPrincipals": ["https://internal.example.com/*"]}}],
        "to": [{"operation": {"paths": ["/admin/*"]}}],
        "when": [{"key": "request.auth.claims[roles]", "values": ["admin"]},
                 {"key": "request.auth.claims[scope]", "allValues": ["users.read", "users.write"]},
                 {"key": "request.auth.claims[org][tier]", "values": ["gold"]}]}]},
      {"name": "readers", "action": "ALLOW", "rules": [{
        "to": [{"operation": {"methods": ["GET"], "paths": ["/reports/*"]}}],
        "when": [{"key": "request.auth.claims[scope]", "values": ["reports.read"]}]}]}
    ]}"#;
    let az = authz(&host, config);
    let chain = host.chain(&[&jwt, &az]);
    let exp = DEFAULT_TIME_UNIX_SECS + 3600;
    let claims = |roles: Value, scope: &str| {
        json!({"iss": "https://internal.example.com", "sub": "alice", "exp": exp, "iat": DEFAULT_TIME_UNIX_SECS,
               "roles": roles, "scope": scope, "org": {"tier": "gold"}})
    };
    let send = |token: Option<String>, path: &str| {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header("x-internal-token", &token);
        }
        chain.send(request)
    };
    let admin = token(claims(json!(["admin", "ops"]), "users.read users.write reports.read"));
    let exchange = send(Some(admin.clone()), "/admin/users");
    assert_eq!(exchange.verdict(), Verdict::Forwarded, "{:?}", exchange.logs());
    assert!(exchange.filter_state("palisade.identity").is_some());
    assert_eq!(send(Some(admin), "/reports/q1").verdict(), Verdict::Forwarded);
    // all-of: one scope missing.
    let partial = token(claims(json!(["admin"]), "users.read reports.read"));
    assert_eq!(send(Some(partial.clone()), "/admin/users").local_reply().unwrap().status, 403);
    assert_eq!(send(Some(partial), "/reports/q1").verdict(), Verdict::Forwarded);
    // Role missing: 403 from authz.
    let user = token(claims(json!(["user"]), "users.read users.write"));
    let exchange = send(Some(user), "/admin/users");
    let reply = exchange.local_reply().unwrap();
    assert_eq!((reply.status, reply.sent_by.as_str()), (403, "authz"));
    // No token: jwt-authn lets it through (allow_missing), authz asks for authentication.
    let exchange = send(None, "/admin/users");
    let reply = exchange.local_reply().unwrap();
    assert_eq!((reply.status, reply.sent_by.as_str()), (401, "authz"));
    // A forged token never reaches authz: jwt-authn rejects it.
    let mut forged = token(claims(json!(["admin"]), "users.read users.write"));
    forged.push('x');
    let exchange = send(Some(forged), "/admin/users");
    let reply = exchange.local_reply().unwrap();
    assert_eq!((reply.status, reply.sent_by.as_str()), (401, "jwt-authn"));
    // A client cannot smuggle an identity in a header that looks like the filter state.
    let exchange =
        chain.send(Request::get("/admin/users").header("palisade.identity", &identity(json!({"roles": ["admin"]}))));
    assert_eq!(exchange.local_reply().unwrap().status, 401);
    assert_eq!(host.metric("palisade.authz.policy.admins.allowed"), Some(1));
    assert_eq!(host.metric("palisade.authz.policy.readers.allowed"), Some(2));
}

#[test]
fn mtls_peer_principal_property() {
    let host = Host::new();
    let plugin = authz(&host, PAYMENTS);
    let from = |peer: Option<&str>, method: &str, path: &str| {
        let mut request = Request::new(method, path).property(&["source", "address"], "10.1.2.3:5000");
        if let Some(peer) = peer {
            request = request.property(&["connection", "uri_san_peer_certificate"], peer);
        }
        status(&plugin, request)
    };
    assert_eq!(from(Some(ORDER_SERVICE), "POST", "/api/v1/payments/42"), 200);
    assert_eq!(from(Some(ORDER_SERVICE), "GET", "/api/v1/payments/42"), 403);
    assert_eq!(from(Some(ORDER_SERVICE), "POST", "/api/v1/refunds/42"), 403);
    assert_eq!(from(Some("spiffe://cluster.local/ns/production/sa/billing"), "POST", "/api/v1/payments/42"), 403);
    assert_eq!(from(Some("spiffe://cluster.local/ns/staging/sa/order-service"), "POST", "/api/v1/payments/42"), 403);
    // A suffix on the SAN is not the same workload.
    assert_eq!(from(Some(&format!("{ORDER_SERVICE}-evil")), "POST", "/api/v1/payments/42"), 403);
    // No client certificate: 403 (no identity condition, so not 401).
    assert_eq!(from(None, "POST", "/api/v1/payments/42"), 403);
    assert_eq!(from(Some(""), "POST", "/api/v1/payments/42"), 403);
    // A header naming the principal changes nothing.
    let spoof = Request::post("/api/v1/payments/42")
        .body("{}")
        .header("x-forwarded-client-cert", &format!("URI={ORDER_SERVICE}"));
    assert_eq!(status(&plugin, spoof), 403);
    // Path tricks around the payments prefix.
    assert_eq!(from(Some(ORDER_SERVICE), "POST", "/api/v1/payments/../admin"), 403);
    assert_eq!(from(Some(ORDER_SERVICE), "POST", "/api//v1/payments/42"), 200, "// merges");
    assert_eq!(host.metric("palisade.authz.policy.service-access.allowed"), Some(2));

    // Namespaces and wildcards on the peer.
    let namespaces = authz(
        &host,
        r#"{"policies": [{"name": "prod", "rules": [{"from": [{"source": {"namespaces": ["production"], "notPrincipals": ["*/sa/billing"]}}]}]}]}"#,
    );
    let peer = |p: &str| Request::get("/").property(&["connection", "uri_san_peer_certificate"], p);
    assert_eq!(status(&namespaces, peer(ORDER_SERVICE)), 200);
    assert_eq!(status(&namespaces, peer("spiffe://cluster.local/ns/production/sa/billing")), 403);
    assert_eq!(status(&namespaces, peer("spiffe://cluster.local/ns/dev/sa/order-service")), 403);
}

#[test]
fn path_normalization_bypass_attempts_are_denied() {
    let host = Host::new();
    // Everything is allowed except /admin/*, which is denied: a bypass would let it through.
    let deny_admin = authz(
        &host,
        r#"{"default_action": "allow", "path_normalization": {"forward_normalized": true},
            "policies": [{"name": "no-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin", "/admin/*"]}}]}]}]}"#,
    );
    // Only /public/* is allowed.
    let allow_public = authz(
        &host,
        r#"{"policies": [{"name": "pub", "rules": [{"to": [{"operation": {"paths": ["/public/*"]}}]}]}]}"#,
    );
    let normalized_to_admin = [
        "/admin/x",
        "/public/../admin/x",
        "//admin/x",
        "/./admin/x",
        "/%61dmin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/admin/x",
        "/public/.%2e/admin/x",
        "/admin/./x",
        "/public/./../admin",
        "/admin",
        "/admin?x=/public/",
    ];
    for path in normalized_to_admin {
        assert_eq!(status(&deny_admin, Request::get(path)), 403, "{path}");
        assert_eq!(status(&allow_public, Request::get(path)), 403, "{path}");
    }
    let unsafe_paths = [
        "/../admin/x",
        "/public/../../admin",
        "/%2e%2e/admin",
        "/public%2f..%2fadmin",
        "/admin%2Fx",
        "/public/%252e%252e/admin",
        "/public/%c0%ae%c0%ae/admin",
        "/public/..%5cadmin",
        "/public/..\\admin",
        "/admin%00.html",
        "/public/..;/admin",
        "/public/%u002e%u002e/admin",
        "/public/%0d%0aadmin",
    ];
    for path in unsafe_paths {
        let exchange = deny_admin.send(Request::get(path));
        let reply = exchange.local_reply().unwrap_or_else(|| panic!("{path} passed"));
        assert_eq!(reply.status, 400, "{path}");
        assert_eq!(reply.details, "palisade_authz_invalid_path");
        assert_eq!(status(&allow_public, Request::get(path)), 400, "{path}");
    }
    assert_eq!(host.metric("palisade.authz.invalid_path"), Some(2 * unsafe_paths.len() as i64));
    // Allowed paths reach the upstream normalized (forward_normalized), query kept.
    let exchange = deny_admin.send(Request::get("/public/a/../b//c?q=%2e%2e"));
    assert_eq!(exchange.upstream().unwrap().headers.get(":path").as_deref(), Some("/public/b/c?q=%2e%2e"));
    assert_eq!(status(&allow_public, Request::get("/public/./x")), 200);
}

#[test]
fn shadow_policies_and_shadow_filter_count_without_enforcing() {
    let host = Host::new();
    let config = r#"{"default_action": "allow", "policies": [
      {"name": "no-export", "action": "DENY", "shadow": true, "rules": [{"to": [{"operation": {"paths": ["/export/*"]}}]}]},
      {"name": "no-delete", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]}
    ]}"#;
    let plugin = authz(&host, config);
    assert_eq!(status(&plugin, Request::get("/export/1")), 200);
    assert_eq!(status(&plugin, Request::get("/export/2")), 200);
    assert_eq!(status(&plugin, Request::new("DELETE", "/x")), 403);
    assert_eq!(host.metric("palisade.authz.policy.no-export.shadow_denied"), Some(2));
    assert_eq!(host.metric("palisade.authz.policy.no-export.denied"), Some(0));
    assert_eq!(host.metric("palisade.authz.shadow_denied"), Some(2));
    assert_eq!(host.metric("palisade.authz.allowed"), Some(2));
    assert_eq!(host.metric("palisade.authz.denied"), Some(1));
    let events = audit_events(&plugin);
    let shadow: Vec<&Value> = events.iter().filter(|e| e["decision"] == "shadow_deny").collect();
    assert_eq!(shadow.len(), 2);
    assert_eq!(shadow[0]["rule"], "no-export");
    assert_eq!(shadow[0]["path"], "/export/1");

    // A shadow ALLOW: would-be decisions of default deny are counted, requests pass.
    let host = Host::new();
    let plugin = authz(
        &host,
        r#"{"policies": [{"name": "readers", "shadow": true, "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}], "default_action": "allow"}"#,
    );
    assert_eq!(status(&plugin, Request::get("/a")), 200);
    assert_eq!(status(&plugin, Request::post("/a").body("x")), 200);
    assert_eq!(host.metric("palisade.authz.policy.readers.shadow_allowed"), Some(1));
    assert_eq!(host.metric("palisade.authz.shadow_denied"), Some(1));

    // Whole-filter shadow: nothing is stopped, not even an invalid path, but all is counted.
    let host = Host::new();
    let shadow_all = format!(r#"{{"shadow": true, {}"#, &CONFIG.trim_start()[1..]);
    let plugin = authz(&host, &shadow_all);
    for request in [Request::new("DELETE", "/public/x"), Request::get("/private"), Request::get("/../etc/passwd")] {
        assert_eq!(plugin.send(request).verdict(), Verdict::Forwarded);
    }
    assert_eq!(host.metric("palisade.authz.denied"), Some(0));
    assert_eq!(host.metric("palisade.authz.allowed"), Some(3));
    assert_eq!(host.metric("palisade.authz.shadow_denied"), Some(3));
    let reasons: Vec<String> = audit_events(&plugin)
        .iter()
        .filter(|e| e["decision"] == "shadow_deny")
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["policy_denied", "no_allow_policy_matched", "invalid_path"]);
}

#[test]
fn remote_ip_uses_the_shared_trusted_hop_rule() {
    let host = Host::new();
    let policy = |hops: u32| {
        format!(
            r#"{{"xff_num_trusted_hops": {hops}, "policies": [{{"name": "office", "rules": [{{"from": [{{"source": {{"remoteIpBlocks": ["203.0.113.0/24", "2001:db8::/32"]}}}}]}}]}}]}}"#
        )
    };
    let (zero, one) = (authz(&host, &policy(0)), authz(&host, &policy(1)));
    let request = |peer: &str, xff: Option<&str>| {
        let request = Request::get("/").property(&["source", "address"], peer);
        match xff {
            Some(xff) => request.header("x-forwarded-for", xff),
            None => request,
        }
    };
    // 0 hops: the peer; a client talking straight to Envoy cannot spoof its address.
    assert_eq!(status(&zero, request("198.51.100.1:1000", Some("203.0.113.7"))), 403);
    assert_eq!(status(&zero, request("203.0.113.7:1000", Some("198.51.100.1"))), 200);
    assert_eq!(status(&zero, request("[2001:db8::5]:1000", None)), 200);
    // 1 hop: the rightmost entry; anything the client wrote left of it is ignored.
    assert_eq!(status(&one, request("10.0.0.1:1000", Some("198.51.100.1, 203.0.113.7"))), 200);
    assert_eq!(status(&one, request("10.0.0.1:1000", Some("203.0.113.7, 198.51.100.1"))), 403);
    // Short header: unknown, never the peer (fails closed).
    assert_eq!(status(&one, request("203.0.113.7:1000", None)), 403);
}

#[test]
fn hostile_traffic_never_traps() {
    let host = Host::new();
    let jwt = jwt_authn(&host);
    let plugin = authz(&host, CONFIG);
    let payments = authz(&host, PAYMENTS);
    traffic::assert_never_traps(&host.chain(&[&plugin]), 7, 300).unwrap();
    traffic::assert_never_traps(&host.chain(&[&jwt, &plugin]), 11, 200).unwrap();
    traffic::assert_never_traps(&host.chain(&[&payments]), 13, 200).unwrap();
    assert_eq!((plugin.broken(), payments.broken()), (None, None));
}
