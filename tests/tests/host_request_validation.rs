//! The request-validation filter under the wasmtime host: config rejection, bodies in several
//! chunks and with trailers, oversized bodies (413, never forwarded in part), invalid JSON,
//! schema errors, SQLi/XSS in every location, traversal, CSRF, shadow mode, metrics, audit
//! lines, and hostile traffic.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use palisade_tests::host::{traffic, Exchange, Host, LogLevel, Plugin, Request, Response, Verdict};

const CONFIG: &str = r#"{
  "routes": [
    {
      "match": {"path": {"prefix": "/api/orders"}},
      "limits": {"methods": ["GET", "POST"], "max_body_bytes": 256},
      "content_types": ["application/json"],
      "json": {"max_depth": 4},
      "schema": {
        "type": "object", "required": ["sku", "qty"], "additionalProperties": false,
        "properties": {
          "sku": {"type": "string", "pattern": "^[A-Z0-9-]{3,32}$"},
          "qty": {"type": "integer", "minimum": 1, "maximum": 99},
          "note": {"type": "string"},
          "meta": {"type": "object"}
        }
      },
      "injection": {"headers": ["user-agent"], "allow": ["json:/note"]},
      "csrf": {"allowed_origins": ["https://shop.example.com"]}
    },
    {"match": {"path": {"prefix": "/shadow"}}, "mode": "shadow",
     "limits": {"max_body_bytes": 64}, "content_types": ["application/json"]},
    {"match": {}, "limits": {"max_body_bytes": 1024}}
  ]
}"#;

const ORDER: &str = r#"{"sku":"AB-123","qty":2,"note":"O'Brien's <b>gift</b>"}"#;

fn load(host: &Host) -> Plugin {
    host.plugin("request-validation").config(CONFIG).load().unwrap()
}

fn post_json(path: &str) -> Request {
    Request::post(path).header("content-type", "application/json")
}

/// The local reply's status and parsed JSON body; fails if the request was not answered locally.
fn rejected(exchange: &Exchange<'_>) -> (u16, serde_json::Value) {
    let reply = exchange.local_reply().unwrap_or_else(|| panic!("not rejected: {:?}", exchange.verdict()));
    let partial = exchange.upstream().is_some_and(|u| !u.body.is_empty() || !u.trailers.is_empty() || u.complete);
    assert!(!partial, "rejected but forwarded: {:?}", exchange.upstream());
    assert_eq!(reply.headers.get("content-type").as_deref(), Some("application/json"));
    (reply.status, serde_json::from_slice(&reply.body).unwrap())
}

/// A body-phase rejection: the headers went on (the headers phase continued, as proxy-wasm
/// filters must to see the body), but no body byte, no trailer and no end of stream did.
fn assert_no_body_forwarded(exchange: &Exchange<'_>) {
    let upstream = exchange.upstream().unwrap();
    assert!(upstream.body.is_empty() && upstream.trailers.is_empty() && !upstream.complete, "{upstream:?}");
}

fn assert_rule(exchange: &Exchange<'_>, status: u16, rule: &str) -> serde_json::Value {
    let (got, body) = rejected(exchange);
    assert_eq!((got, body["error"].as_str()), (status, Some(rule)), "{body}");
    assert_eq!(exchange.local_reply().unwrap().details, format!("palisade_validation_{rule}"));
    body
}

#[test]
fn a_bad_config_is_rejected_naming_the_field() {
    let host = Host::new();
    let cases = [
        (r#"{"routes":[{"limits":{"max_body_bytes":0}}]}"#, "routes[0].limits.max_body_bytes"),
        (r#"{"routes":[{},{"schema":{"type":"strin"}}]}"#, "routes[1].schema.type"),
        (r#"{"routes":[{"injection":{"sqli":["path"]}}]}"#, "routes[0].injection.sqli[0]"),
        (r#"{"routes":[{"csrf":{"token":{"cookie":"sid","secret_env":"NOPE"}}}]}"#, "routes[0].csrf.token.secret_env"),
        (r#"{"mode":"audit"}"#, "mode"),
    ];
    for (config, field) in cases {
        let Err(err) = host.plugin("request-validation").config(config).load() else {
            panic!("{config} loaded");
        };
        assert!(err.logs.iter().any(|e| e.level >= LogLevel::Warn && e.message.contains(field)), "{config}: {err}");
    }
}

#[test]
fn a_json_body_in_several_chunks_is_checked_whole_and_forwarded_whole() {
    let host = Host::new();
    let plugin = load(&host);
    let (a, b) = ORDER.split_at(9);
    let (b, c) = b.split_at(11);
    let mut exchange = plugin.send(post_json("/api/orders").body_chunks([a, b, c]));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    let upstream = exchange.upstream().unwrap();
    assert_eq!(upstream.body_text(), ORDER);
    assert!(upstream.complete);
    exchange.respond(Response::ok().body("done")).unwrap();
    assert_eq!(exchange.client().unwrap().status(), 200);

    // Split inside a string value: a payload spanning chunk boundaries is still seen.
    let sqli = r#"{"sku":"AB-123","qty":2,"meta":{"by":"1' OR '1'='1' --"}}"#;
    let chunks: Vec<&[u8]> = sqli.as_bytes().chunks(7).collect();
    let exchange = plugin.send(post_json("/api/orders").body_chunks(chunks));
    let body = assert_rule(&exchange, 400, "sqli");
    assert_eq!(body["errors"], serde_json::json!(["/meta/by"]));
    assert!(!body.to_string().contains("OR"), "payload echoed: {body}");
}

#[test]
fn oversized_bodies_get_413_and_are_never_forwarded_in_part() {
    let host = Host::new();
    let plugin = load(&host);
    // 100 + 100 + 100 > 256: rejected at the third chunk, nothing reaches the upstream.
    let chunk = "x".repeat(100);
    let exchange = plugin.send(
        post_json("/api/orders")
            .property(&["source", "address"], "10.9.8.7:5555")
            .body_chunks([&chunk, &chunk, &chunk, &chunk]),
    );
    assert_rule(&exchange, 413, "body_too_large");
    assert_no_body_forwarded(&exchange);
    // The connection properties the headers phase skipped are read for the body's audit line.
    let audit = exchange.logs().into_iter().find(|e| e.message.contains("\"audit\"")).unwrap().message;
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    assert_eq!((audit["rule"].as_str(), audit["source"].as_str()), (Some("body_too_large"), Some("10.9.8.7")));

    // Exactly at the limit passes the size check (and then fails JSON parsing, not the limit).
    let at_limit = "y".repeat(256);
    assert_rule(
        &plugin.send(post_json("/api/orders").body_chunks([&at_limit[..128], &at_limit[128..]])),
        400,
        "invalid_json",
    );

    // A content-length over the limit is refused before any body arrives.
    let exchange = plugin.send(post_json("/api/orders").header("content-length", "257").body("z"));
    assert_rule(&exchange, 413, "body_too_large");
    assert!(exchange.upstream().is_none());

    // The catch-all route's 1024-byte limit applies to any media type.
    let big = "b".repeat(600);
    let exchange = plugin.send(Request::post("/upload").header("content-type", "text/plain").body_chunks([&big, &big]));
    assert_rule(&exchange, 413, "body_too_large");
    assert_eq!(host.metric("palisade.request_validation.body_too_large.rejected"), Some(3));
}

#[test]
fn invalid_utf8_and_non_json_bodies_with_a_json_content_type_are_invalid_json() {
    let host = Host::new();
    let plugin = load(&host);
    let bad_utf8: &[u8] = b"{\"sku\":\"AB-1\xff\xfe\",\"qty\":1}";
    assert_rule(&plugin.send(post_json("/api/orders").body(bad_utf8)), 400, "invalid_json");
    for body in ["sku=AB-123&qty=2", "{\"sku\":\"AB-123\",", "[1,2]]", "<xml/>", "{\"a\":1}{\"b\":2}"] {
        let exchange = plugin.send(post_json("/api/orders").body_chunks([&body[..1], &body[1..]]));
        let reply = assert_rule(&exchange, 400, "invalid_json");
        assert!(!reply.to_string().contains(&body[1..]), "{reply}");
    }
    // `+json` media types are JSON too, so the catch-all route scans them.
    assert_rule(
        &plugin.send(Request::post("/other").header("content-type", "application/problem+json").body("{nope")),
        400,
        "invalid_json",
    );
    // The schema route refuses other media types with 415, before reading the body.
    let exchange = plugin.send(Request::post("/api/orders").header("content-type", "text/plain").body(ORDER));
    assert_rule(&exchange, 415, "unsupported_content_type");
    assert_eq!(host.metric("palisade.request_validation.invalid_json.rejected"), Some(7));
}

#[test]
fn schema_and_json_limit_errors_name_paths_without_echoing_values() {
    let host = Host::new();
    let plugin = load(&host);
    let body = r#"{"sku":"secret-value-lower","qty":1000,"extra":"hidden-extra"}"#;
    let reply = assert_rule(&plugin.send(post_json("/api/orders").body(body)), 400, "schema_violation");
    let errors: Vec<String> = serde_json::from_value(reply["errors"].clone()).unwrap();
    assert!(errors.contains(&"/sku: pattern".to_string()), "{errors:?}");
    assert!(errors.contains(&"/qty: maximum".to_string()), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("additionalProperties")), "{errors:?}");
    let text = reply.to_string();
    for value in ["secret-value-lower", "1000", "hidden-extra"] {
        assert!(!text.contains(value), "{value} echoed in {text}");
    }
    let missing = assert_rule(&plugin.send(post_json("/api/orders").body(r#"{"qty":1}"#)), 400, "schema_violation");
    assert!(
        missing["errors"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains("required")),
        "{missing}"
    );

    let deep = r#"{"sku":"AB-123","qty":1,"meta":{"a":{"b":{"c":{}}}}}"#;
    let reply = assert_rule(&plugin.send(post_json("/api/orders").body(deep)), 400, "json_limit");
    assert_eq!(reply["errors"], serde_json::json!(["/meta/a/b/c: max_depth"]));
}

#[test]
fn sqli_and_xss_are_found_in_query_form_json_cookie_and_header() {
    let host = Host::new();
    let plugin = load(&host);
    let sqli = "1' OR '1'='1' --";
    let xss = "<script>alert(1)</script>";
    let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let cases = [
        (Request::get(&format!("/api/orders?id={}", enc(sqli))), "sqli", "query.id"),
        (Request::get(&format!("/search?q={}", enc(xss))), "xss", "query.q"),
        (
            Request::post("/form")
                .header("content-type", "application/x-www-form-urlencoded")
                .body_chunks(["name=O%27Brien&pass".to_string(), format!("word={}", enc(sqli))]),
            "sqli",
            "form.password",
        ),
        (
            post_json("/api/orders").body(format!(r#"{{"sku":"AB-123","qty":1,"meta":{{"x":"{xss}"}}}}"#)),
            "xss",
            "/meta/x",
        ),
        (Request::get("/api/orders").header("cookie", &format!("theme=dark; sid={}", enc(sqli))), "sqli", "cookie.sid"),
        (Request::get("/api/orders").header("user-agent", xss), "xss", "header.user-agent"),
    ];
    for (request, rule, location) in cases {
        let exchange = plugin.send(request);
        let body = assert_rule(&exchange, 400, rule);
        assert_eq!(body["errors"], serde_json::json!([location]), "{rule}");
        let text = body.to_string();
        assert!(!text.contains("alert") && !text.contains("'1'"), "payload echoed: {text}");
    }
    assert_eq!(host.metric("palisade.request_validation.sqli.rejected"), Some(3));
    assert_eq!(host.metric("palisade.request_validation.xss.rejected"), Some(3));

    // Benign look-alikes pass, and the allow-listed /note may carry markup.
    for request in [
        Request::get("/search?q=O%27Brien&q2=select+the+union+of+sets"),
        Request::get("/api/orders").header("cookie", "name=O%27Brien"),
        post_json("/api/orders").body(ORDER),
        post_json("/api/orders").body(format!(r#"{{"sku":"AB-123","qty":1,"note":"{xss}"}}"#)),
    ] {
        let exchange = plugin.send(request.clone());
        assert_eq!(exchange.verdict(), Verdict::Forwarded, "{request:?}: {:?}", exchange.local_reply());
    }
}

#[test]
fn multipart_fields_are_checked_and_a_loose_multipart_body_is_refused() {
    let host = Host::new();
    let plugin = load(&host);
    let boundary = "----palisadeBoundary0gW";
    let multipart = |body: String| {
        Request::post("/upload")
            .header("content-type", &format!("multipart/form-data; boundary={boundary}"))
            .body_chunks([body[..body.len() / 2].to_string(), body[body.len() / 2..].to_string()])
    };
    let field = |name: &str, value: &str| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let end = format!("--{boundary}--\r\n");
    // Switching a form to multipart does not skip the checks.
    let sqli = multipart(field("name", "O'Brien") + &field("password", "1' OR '1'='1' --") + &end);
    let body = assert_rule(&plugin.send(sqli), 400, "sqli");
    assert_eq!(body["errors"], serde_json::json!(["form.password"]));
    assert!(!body.to_string().contains("'1'"), "payload echoed: {body}");
    // A file's bytes are not scanned; a benign form passes whole.
    let file = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"cv.txt\"\r\n\r\n<script>alert(1)</script>\r\n"
    );
    let good = field("name", "O'Brien") + &file + &end;
    let exchange = plugin.send(multipart(good.clone()));
    assert_eq!(exchange.verdict(), Verdict::Forwarded, "{:?}", exchange.local_reply());
    assert_eq!(exchange.upstream().unwrap().body, good.as_bytes());
    // What does not parse strictly is refused, never forwarded.
    let folded = format!("--{boundary}\r\nContent-Disposition: form-data;\r\n name=\"password\"\r\n\r\nx\r\n{end}");
    let exchange = plugin.send(multipart(folded));
    assert_rule(&exchange, 400, "invalid_multipart");
    assert_no_body_forwarded(&exchange);
    assert_eq!(host.metric("palisade.request_validation.invalid_multipart.rejected"), Some(1));
}

#[test]
fn path_traversal_in_any_encoding_and_null_bytes_are_refused() {
    let host = Host::new();
    let plugin = load(&host);
    for path in [
        "/files/../etc/passwd",
        "/files/%2e%2e%2fetc/passwd",
        "/files/..%2fetc",
        "/files/%252e%252e%252fetc",
        "/files/..%5cwindows",
        "/files/a%00.png",
        "/files?name=..%2F..%2Fetc%2Fpasswd",
        "/files?name=%252e%252e%252fetc",
    ] {
        let exchange = plugin.send(Request::get(path));
        assert_rule(&exchange, 400, "path_traversal");
    }
    let form = Request::post("/files").header("content-type", "application/x-www-form-urlencoded").body("f=..%2fx");
    assert_rule(&plugin.send(form), 400, "path_traversal");
    assert_eq!(plugin.send(Request::get("/files/a..b/c.txt?v=1..2")).verdict(), Verdict::Forwarded);
    // CR/LF in a header value.
    let crlf = plugin.send(Request::get("/files").header_bytes("x-note", b"a\r\nset-cookie: x=1"));
    assert_rule(&crlf, 400, "crlf");
}

#[test]
fn csrf_checks_origin_referer_and_sec_fetch_site_on_unsafe_methods() {
    let host = Host::new();
    let plugin = load(&host);
    let order = || post_json("/api/orders").body(ORDER);
    let cases = [
        (order().header("origin", "https://evil.example"), Some("csrf_origin")),
        (order().header("origin", "null"), Some("csrf_origin")),
        (order().header("referer", "https://evil.example/page"), Some("csrf_origin")),
        (order().header("sec-fetch-site", "cross-site").header("origin", "https://evil.example"), Some("csrf_origin")),
        (order().header("origin", "https://shop.example.com"), None),
        (order().header("origin", "https://SHOP.example.com:443"), None),
        (order().header("referer", "https://shop.example.com/cart"), None),
        (order().header("origin", "https://example.com"), None), // the request's own host
        (order().header("sec-fetch-site", "same-origin"), None),
        (order(), None), // non-browser clients send neither
        (Request::get("/api/orders").header("origin", "https://evil.example"), None), // safe method
    ];
    for (request, rule) in cases {
        let exchange = plugin.send(request.clone());
        match rule {
            Some(rule) => {
                assert_rule(&exchange, 403, rule);
            }
            None => assert_eq!(exchange.verdict(), Verdict::Forwarded, "{request:?}: {:?}", exchange.local_reply()),
        }
    }
    assert_eq!(host.metric("palisade.request_validation.csrf_origin.rejected"), Some(4));
}

#[test]
fn limits_method_and_audit_line() {
    let host = Host::new();
    let plugin = load(&host);
    let exchange = plugin.send(
        Request::new("DELETE", "/api/orders/7?token=secret")
            .header("x-request-id", "req-42")
            .property(&["source", "address"], "10.1.2.3:4444"),
    );
    assert_rule(&exchange, 405, "method_not_allowed");
    assert_eq!(exchange.local_reply().unwrap().headers.get("allow").as_deref(), Some("GET, POST"));
    let line = exchange
        .logs()
        .into_iter()
        .find(|e| e.level == LogLevel::Info && e.message.contains("\"audit\""))
        .unwrap()
        .message;
    let audit: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(audit["filter"], "request-validation");
    assert_eq!(audit["decision"], "deny");
    assert_eq!(audit["rule"], "method_not_allowed");
    assert_eq!(audit["status"], 405);
    assert_eq!(audit["request_id"], "req-42");
    assert_eq!(audit["source"], "10.1.2.3");
    assert!(!line.contains("secret"), "query in audit: {line}");

    let long_path = format!("/x/{}", "a".repeat(2048));
    assert_rule(&plugin.send(Request::get(&long_path)), 414, "path_too_long");
    let many = (0..101).fold(Request::get("/x"), |r, i| r.header(&format!("x-h{i}"), "1"));
    assert_rule(&plugin.send(many), 431, "too_many_headers");
}

#[test]
fn shadow_mode_counts_and_logs_but_forwards() {
    let host = Host::new();
    let plugin = load(&host);
    let sqli = "/shadow/q?id=1%27%20OR%20%271%27%3D%271%27%20--";
    let mut exchange =
        plugin.send(Request::post(sqli).header("content-type", "text/plain").body_chunks(["{not", " json"]));
    assert_eq!(exchange.verdict(), Verdict::Forwarded, "{:?}", exchange.local_reply());
    assert_eq!(exchange.upstream().unwrap().body_text(), "{not json");
    exchange.respond(Response::ok()).unwrap();
    assert_eq!(host.metric("palisade.request_validation.sqli.shadow"), Some(1));
    assert_eq!(host.metric("palisade.request_validation.unsupported_content_type.shadow"), Some(1));
    assert_eq!(host.metric("palisade.request_validation.sqli.rejected"), Some(0));
    let decisions: Vec<String> = exchange
        .logs()
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.message).ok())
        .filter(|a| a["audit"] == "palisade")
        .map(|a| {
            assert!(a.get("status").is_none(), "{a}");
            format!("{}:{}", a["decision"].as_str().unwrap(), a["rule"].as_str().unwrap())
        })
        .collect();
    assert_eq!(decisions, ["shadow_deny:unsupported_content_type", "shadow_deny:sqli"]);

    // A shadowed oversized body passes whole, unchecked.
    let big = "{\"a\":\"".to_string() + &"z".repeat(100) + "\"}";
    let exchange = plugin.send(post_json("/shadow/up").body_chunks([&big[..50], &big[50..]]));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().body_text(), big);
    assert_eq!(host.metric("palisade.request_validation.body_too_large.shadow"), Some(1));
    // Announced by content-length: counted once (headers phase), not again for the body.
    let announced = post_json("/shadow/up").header("content-length", &big.len().to_string());
    let exchange = plugin.send(announced.body_chunks([&big[..50], &big[50..]]));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().body_text(), big);
    assert_eq!(host.metric("palisade.request_validation.body_too_large.shadow"), Some(2));
    assert_eq!(host.metric("palisade.request_validation.body_too_large.rejected"), Some(0));
}

#[test]
fn a_body_followed_by_trailers_is_checked_when_the_trailers_arrive() {
    let host = Host::new();
    let plugin = load(&host);
    let (a, b) = ORDER.split_at(20);
    let exchange = plugin.send(post_json("/api/orders").body_chunks([a, b]).trailer("x-checksum", "abc"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded, "{:?}", exchange.local_reply());
    let upstream = exchange.upstream().unwrap();
    assert_eq!(upstream.body_text(), ORDER);
    assert_eq!(upstream.trailers.get("x-checksum").as_deref(), Some("abc"));
    assert!(upstream.complete);

    // The schema still applies: the verdict comes at the trailers, and nothing is forwarded.
    let bad = r#"{"sku":"AB-123","qty":0}"#;
    let exchange = plugin.send(post_json("/api/orders").body_chunks([&bad[..10], &bad[10..]]).trailer("x-t", "1"));
    let body = assert_rule(&exchange, 400, "schema_violation");
    assert_eq!(body["errors"], serde_json::json!(["/qty: minimum"]));
    assert_no_body_forwarded(&exchange);
    let sqli = "id=1%27%20OR%20%271%27%3D%271%27%20--";
    let form = Request::post("/form").header("content-type", "application/x-www-form-urlencoded");
    assert_rule(&plugin.send(form.body_chunks([&sqli[..5], &sqli[5..]]).trailer("x-t", "1")), 400, "sqli");

    // Oversized before the trailers: 413 at once, the trailers never reach the upstream.
    let chunk = "q".repeat(200);
    let exchange = plugin.send(post_json("/api/orders").body_chunks([&chunk, &chunk]).trailer("x-t", "1"));
    assert_rule(&exchange, 413, "body_too_large");
    assert_no_body_forwarded(&exchange);
    // In shadow mode the trailers path forwards a bad body with its trailers.
    let exchange = plugin.send(post_json("/shadow/t").body_chunks(["{\"a\":", "tru"]).trailer("x-t", "1"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().trailers.get("x-t").as_deref(), Some("1"));
    assert_eq!(host.metric("palisade.request_validation.invalid_json.shadow"), Some(1));
}

#[test]
fn hostile_traffic_never_traps() {
    let host = Host::new();
    let plugin = load(&host);
    traffic::assert_never_traps(&host.chain(&[&plugin]), 5, 400).unwrap();
    let shadow = host
        .plugin("request-validation")
        .config(r#"{"mode":"shadow","routes":[{"schema":{"type":"object"},"csrf":{}}]}"#)
        .load()
        .unwrap();
    traffic::assert_never_traps(&host.chain(&[&shadow]), 6, 400).unwrap();
}
