//! Every hostcall the proxy-wasm 0.2.5 SDK uses, through the probe filter (`tests/probe`), with
//! Envoy's answers and refusals. Each test drives one operation and asserts what is observable:
//! the verdict, what the upstream or client got, logs, metrics, shared data.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use palisade_tests::host::{
    dist_dir, traffic, GrpcReply, Host, HttpReply, LogLevel, Plugin, PluginBuilder, Request, Response, Stage, Verdict,
};

/// dist/probe.wasm (`make build`), else the cargo output of `-p palisade-probe`.
fn probe_path() -> PathBuf {
    let dist = dist_dir().join("probe.wasm");
    if dist.exists() {
        return dist;
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip1/release/palisade_probe.wasm");
    assert!(
        built.exists(),
        "probe.wasm missing: run `make build` or `cargo build --release --target wasm32-wasip1 -p palisade-probe`"
    );
    built
}

fn probe_builder(host: &Host, name: &str) -> PluginBuilder {
    host.plugin_at(probe_path(), name)
}

fn probe(host: &Host) -> Plugin {
    probe_builder(host, "probe").load().unwrap()
}

fn op(op: &str) -> Request {
    Request::get("/p").header("x-probe-op", op)
}

/// Sends one operation and returns the `x-probe-result` the upstream got.
fn result_of(plugin: &Plugin, request: Request) -> String {
    let exchange = plugin.send(request);
    assert_eq!(exchange.verdict(), Verdict::Forwarded, "logs: {:?}", plugin.logs());
    exchange.upstream().unwrap().header("x-probe-result").unwrap_or_default()
}

fn logged(plugin: &Plugin, text: &str) -> bool {
    plugin.logs().iter().any(|e| e.message.contains(text))
}

/// A module importing `module.name` (a function () -> i32) and exporting nothing else.
fn module_importing(module: &str, name: &str) -> PathBuf {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend_from_slice(&[0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f]); // type section: () -> i32
    let mut import = vec![0x01, module.len() as u8];
    import.extend_from_slice(module.as_bytes());
    import.push(name.len() as u8);
    import.extend_from_slice(name.as_bytes());
    import.extend_from_slice(&[0x00, 0x00]); // func, type 0
    wasm.push(0x02);
    wasm.push(import.len() as u8);
    wasm.extend_from_slice(&import);
    let path = std::env::temp_dir().join(format!("palisade-missing-{}-{module}-{name}.wasm", std::process::id()));
    std::fs::write(&path, wasm).unwrap();
    path
}

// ---- loading and lifecycle -------------------------------------------------------------

#[test]
fn lifecycle_runs_initialize_vm_start_and_configure() {
    let host = Host::new();
    let plugin = probe_builder(&host, "probe").vm_config("conf").config("some words").load().unwrap();
    assert!(logged(&plugin, "probe: initialize"));
    assert!(logged(&plugin, "vm_start size=4 config=conf"));
    assert!(logged(&plugin, "configure size=10"));
    let exchange = plugin.send(Request::get("/p"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    // Root context is 1, the first HTTP context 2 (observed in Envoy).
    assert!(exchange.logs().iter().all(|e| e.context_id == 2));
    assert!(logged(&plugin, "ctx=2 request_headers n=4 eos=true"));
}

#[test]
fn configure_false_fails_the_load_with_the_plugins_reason() {
    let host = Host::new();
    let error = probe_builder(&host, "probe").config("reject").load().err().unwrap();
    assert!(error.message.contains("rejected its configuration"), "{error}");
    assert!(error.to_string().contains("reject: not allowed"), "{error}");
}

#[test]
fn vm_start_false_fails_the_load() {
    let error = probe_builder(&Host::new(), "probe").vm_config("fail").load().err().unwrap();
    assert!(error.message.contains("failed to start"), "{error}");
}

#[test]
fn only_proxy_log_and_wasi_run_inside_initialize() {
    let host = Host::new();
    let error = probe_builder(&host, "probe").env("PROBE_INIT_OP", "get_property").load().err().unwrap();
    assert!(error.message.starts_with("Failed to initialize Wasm code"), "{error}");
    assert!(error.message.contains("restricted_callback"), "{error}");
    let error = probe_builder(&host, "probe").env("PROBE_INIT_OP", "shared_data").load().err().unwrap();
    assert!(error.message.contains("restricted_callback"), "{error}");
    // environ_get is allowed there.
    let plugin = probe_builder(&host, "probe").env("PROBE_INIT_OP", "env").env("PROBE_VALUE", "x1").load().unwrap();
    assert!(logged(&plugin, "init env=x1"));
}

#[test]
fn an_import_envoy_lacks_fails_the_load() {
    let host = Host::new();
    let path = module_importing("env", "proxy_this_does_not_exist");
    let error = host.plugin_at(&path, "bad").load().err().unwrap();
    assert_eq!(error.message, "Failed to load Wasm module due to a missing import: env.proxy_this_does_not_exist");
    let path = module_importing("wasi_snapshot_preview1", "sock_open");
    let error = host.plugin_at(&path, "bad").load().err().unwrap();
    assert_eq!(error.message, "Failed to load Wasm module due to a missing import: wasi_snapshot_preview1.sock_open");
}

#[test]
fn a_missing_module_file_is_a_clear_error() {
    let error = Host::new().plugin("no-such-filter").load().err().unwrap();
    assert!(error.message.contains("no-such-filter.wasm"), "{error}");
}

// ---- header maps -----------------------------------------------------------------------

#[test]
fn get_header_returns_the_first_value_case_insensitively() {
    let plugin = probe(&Host::new());
    let request = op("get-header").header("x-probe-arg", "X-A").header("x-a", "1").header("x-a", "2");
    assert_eq!(result_of(&plugin, request), "Some(\"1\")");
    assert_eq!(result_of(&plugin, op("get-header").header("x-probe-arg", "absent")), "None");
}

#[test]
fn header_values_may_be_any_bytes() {
    let plugin = probe(&Host::new());
    let request = op("get-header-bytes").header("x-probe-arg", "x-bin").header_bytes("x-bin", b"\xff\x00\xfe");
    assert_eq!(result_of(&plugin, request), "ff00fe");
}

#[test]
fn add_appends_lower_cased() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(op("add-header"));
    assert_eq!(exchange.upstream().unwrap().headers.get_all("x-added"), vec!["a", "b"]);
}

#[test]
fn replace_sets_a_single_value_and_remove_drops_all() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(op("replace-header").header("x-probe-arg", "x-r").header("x-r", "1").header("x-r", "2"));
    assert_eq!(exchange.upstream().unwrap().headers.get_all("x-r"), vec!["replaced"]);
    let exchange = plugin.send(op("remove-header").header("x-probe-arg", "x-r").header("x-r", "1").header("x-r", "2"));
    assert!(!exchange.upstream().unwrap().headers.contains("x-r"));
    let exchange = plugin.send(op("replace-header").header("x-probe-arg", "x-new"));
    assert_eq!(exchange.upstream().unwrap().header("x-new").as_deref(), Some("replaced"));
}

#[test]
fn set_pairs_replaces_the_whole_map() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(op("set-pairs").header("x-drop-me", "1").header("x-keep", "2"));
    let upstream = exchange.upstream().unwrap();
    assert!(!upstream.headers.contains("x-drop-me"));
    assert_eq!(upstream.header("x-keep").as_deref(), Some("2"));
    assert_eq!(upstream.header("x-set-pairs").as_deref(), Some("yes"));
}

#[test]
fn get_pairs_keeps_insertion_order() {
    let plugin = probe(&Host::new());
    let names = result_of(&plugin, op("get-pairs").header("x-z", "1").header("x-a", "2"));
    assert_eq!(names, ":method,:path,:authority,:scheme,x-probe-op,x-z,x-a,x-probe-chain");
}

#[test]
fn request_headers_are_refused_in_the_body_phase() {
    let host = Host::new();
    let plugin = probe(&host);
    let exchange = plugin.send(Request::post("/p").header("x-probe-op", "header-in-body").body("data"));
    let Verdict::Trapped { filter, message } = exchange.verdict() else { panic!("{:?}", exchange.verdict()) };
    assert_eq!(filter, "probe");
    assert!(message.contains("unexpected status: 2"), "{message}");
    assert_eq!(exchange.client().unwrap().status(), 503);
    // The VM stays broken: the next request fails too.
    assert!(plugin.broken().is_some());
    let next = plugin.send(Request::get("/again"));
    let Verdict::Trapped { message, .. } = next.verdict() else { panic!() };
    assert!(message.contains("broken"), "{message}");
}

#[test]
fn header_pairs_in_the_body_phase_read_as_empty() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(Request::post("/p").header("x-probe-op", "pairs-in-body").body("data"));
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert!(logged(&plugin, "pairs-in-body=0"));
}

#[test]
fn request_headers_are_refused_in_the_response_phase() {
    let plugin = probe(&Host::new());
    let mut exchange = plugin.send(op("request-header-in-response"));
    exchange.respond(Response::ok()).unwrap();
    assert!(matches!(exchange.verdict(), Verdict::Trapped { .. }));
}

#[test]
fn on_log_reads_request_and_response_headers() {
    let plugin = probe(&Host::new());
    let mut exchange = plugin.send(Request::get("/logged"));
    exchange.respond(Response::status(201)).unwrap();
    assert!(logged(&plugin, "on_log path=/logged status=201"));
}

#[test]
fn response_headers_can_be_changed_and_response_code_read() {
    let plugin = probe(&Host::new());
    let mut exchange = plugin.send(op("response-headers"));
    exchange.respond(Response::status(200).header("server", "leaky").header("x-replaced", "old")).unwrap();
    let client = exchange.client().unwrap();
    assert!(!client.headers.contains("server"));
    assert_eq!(client.header("x-replaced").as_deref(), Some("new"));
    assert!(logged(&plugin, "response code=c800000000000000"));
}

// ---- bodies and trailers ---------------------------------------------------------------

#[test]
fn paused_body_accumulates_like_envoy() {
    let plugin = probe(&Host::new());
    let request = Request::post("/p").header("x-probe-op", "buffer").body_chunks(["AAAAA", "BBB", ""]);
    let exchange = plugin.send(request);
    assert!(logged(&plugin, "request_body size=5 eos=false body=AAAAA"));
    assert!(logged(&plugin, "request_body size=8 eos=false body=AAAAABBB"));
    assert!(logged(&plugin, "request_body size=8 eos=true body=AAAAABBB"));
    assert_eq!(exchange.upstream().unwrap().body_text(), "[wasm]AAAAABBB");
}

#[test]
fn a_continued_body_flows_chunk_by_chunk() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(Request::post("/p").body_chunks(["ab", "cd"]));
    assert!(logged(&plugin, "request_body size=2 eos=false body=ab"));
    assert!(logged(&plugin, "request_body size=2 eos=true body=cd"));
    assert_eq!(exchange.upstream().unwrap().body_text(), "abcd");
}

#[test]
fn replacing_the_body_does_not_fix_content_length() {
    let plugin = probe(&Host::new());
    let exchange = plugin
        .send(Request::post("/p").header("x-probe-op", "replace-body").header("content-length", "4").body("abcd"));
    let upstream = exchange.upstream().unwrap();
    assert_eq!(upstream.body_text(), "replaced");
    assert_eq!(upstream.header("content-length").as_deref(), Some("4"));
    let exchange = plugin.send(
        Request::post("/p").header("x-probe-op", "remove-content-length").header("content-length", "4").body("abcd"),
    );
    assert!(!exchange.upstream().unwrap().headers.contains("content-length"));
}

#[test]
fn set_buffer_in_the_middle_is_bad_argument() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(Request::post("/p").header("x-probe-op", "body-bad-start").body("abcd"));
    let Verdict::Trapped { message, .. } = exchange.verdict() else { panic!("{:?}", exchange.verdict()) };
    assert!(message.contains("unexpected status: 2"), "{message}");
}

#[test]
fn response_body_can_be_rewritten_after_buffering() {
    let plugin = probe(&Host::new());
    let mut exchange = plugin.send(op("response-body"));
    exchange.respond(Response::ok().body_chunks(["hello ", "world"])).unwrap();
    assert_eq!(exchange.client().unwrap().body_text(), "HELLO WORLD");
}

#[test]
fn trailers_are_readable_and_writable_in_their_phase() {
    let plugin = probe(&Host::new());
    let mut exchange = plugin.send(Request::post("/p").body("x").trailer("x-trailer", "t1"));
    assert!(logged(&plugin, "request_trailers n=1 x-trailer=Some(\"t1\")"));
    let upstream = exchange.upstream().unwrap();
    assert_eq!(upstream.trailers.get("x-probe-trailer").as_deref(), Some("1"));
    assert_eq!(upstream.body_text(), "x");
    exchange.respond(Response::ok().body("b").trailer("grpc-status", "0")).unwrap();
    assert!(logged(&plugin, "response_trailers n=1"));
    assert_eq!(exchange.client().unwrap().trailers.get("grpc-status").as_deref(), Some("0"));
}

// ---- local replies ---------------------------------------------------------------------

#[test]
fn local_reply_runs_the_same_filters_response_callbacks() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(op("local-reply"));
    assert_eq!(exchange.verdict(), Verdict::LocalReply(418));
    assert!(exchange.upstream().is_none());
    let reply = exchange.local_reply().unwrap();
    assert_eq!(reply.body, b"teapot\n");
    assert_eq!(reply.headers.get("x-upper").as_deref(), Some("Yes"));
    assert_eq!(reply.grpc_status, None);
    let client = exchange.client().unwrap();
    assert_eq!(client.status(), 418);
    assert_eq!(client.header("content-length").as_deref(), Some("7"));
    assert_eq!(client.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(client.header("x-probe-seen").as_deref(), Some("probe"));
    assert_eq!(client.body_text(), "teapot\n");
}

#[test]
fn local_reply_stops_the_request_even_when_the_filter_continues() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(op("local-reply-continue"));
    assert_eq!(exchange.verdict(), Verdict::LocalReply(403));
    assert!(exchange.upstream().is_none());
    assert!(exchange.client().unwrap().body.is_empty());
}

#[test]
fn local_reply_in_the_body_phase() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(Request::post("/p").header("x-probe-op", "local-reply-in-body").body_chunks(["a", "b"]));
    assert_eq!(exchange.verdict(), Verdict::LocalReply(413));
    assert_eq!(exchange.client().unwrap().body_text(), "too big");
}

#[test]
fn local_reply_in_the_response_phase_replaces_the_response() {
    let plugin = probe(&Host::new());
    let mut exchange = plugin.send(op("response-local-reply"));
    exchange.respond(Response::ok().body("original")).unwrap();
    let client = exchange.client().unwrap();
    assert_eq!(client.status(), 502);
    assert_eq!(client.body_text(), "rewritten");
}

// ---- the chain -------------------------------------------------------------------------

#[test]
fn chain_runs_requests_forward_and_responses_backward() {
    let host = Host::new();
    let (a, b) = (probe_builder(&host, "a").load().unwrap(), probe_builder(&host, "b").load().unwrap());
    let mut exchange = host.chain(&[&a, &b]).send(Request::get("/p"));
    assert_eq!(exchange.upstream().unwrap().headers.get_all("x-probe-chain"), vec!["a", "b"]);
    exchange.respond(Response::ok()).unwrap();
    assert_eq!(exchange.client().unwrap().headers.get_all("x-probe-seen"), vec!["b", "a"]);
}

#[test]
fn local_reply_from_filter_n_runs_response_callbacks_of_n_and_before_only() {
    let host = Host::new();
    let a = probe_builder(&host, "a").load().unwrap();
    let b = probe_builder(&host, "b").config("op=local-reply").load().unwrap();
    let c = probe_builder(&host, "c").load().unwrap();
    let exchange = host.chain(&[&a, &b, &c]).send(Request::get("/p"));
    assert_eq!(exchange.verdict(), Verdict::LocalReply(418));
    assert_eq!(exchange.local_reply().unwrap().sent_by, "b");
    assert_eq!(exchange.client().unwrap().headers.get_all("x-probe-seen"), vec!["b", "a"]);
    assert!(!logged(&c, "request_headers"));
}

#[test]
fn filter_state_is_shared_between_filters_of_a_chain() {
    let host = Host::new();
    let writer = probe_builder(&host, "writer").config("op=set-property").load().unwrap();
    let reader = probe_builder(&host, "reader").config("op=read-filter-state").load().unwrap();
    let request = Request::get("/p").header("x-probe-arg", "palisade.identity").header("x-probe-value", "alice");
    let exchange = host.chain(&[&writer, &reader]).send(request);
    assert_eq!(exchange.upstream().unwrap().header("x-probe-result").as_deref(), Some("Some(\"alice\")"));
    assert_eq!(exchange.filter_state("palisade.identity"), Some(b"alice".to_vec()));
    // A new request starts with empty filter state.
    let exchange = host.chain(&[&reader]).send(Request::get("/p").header("x-probe-arg", "palisade.identity"));
    assert_eq!(exchange.upstream().unwrap().header("x-probe-result").as_deref(), Some("None"));
}

#[test]
fn a_pause_holds_the_chain_until_continued() {
    let host = Host::new();
    let a = probe_builder(&host, "a").config("op=pause").load().unwrap();
    let b = probe_builder(&host, "b").load().unwrap();
    let mut exchange = host.chain(&[&a, &b]).send(Request::post("/p").body("abc"));
    assert_eq!(exchange.verdict(), Verdict::Paused { filter: "a".into(), stage: Stage::RequestHeaders });
    assert!(!logged(&b, "request_headers"));
    exchange.continue_request().unwrap();
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().body_text(), "abc");
}

#[test]
fn close_stream_resets() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(op("close"));
    assert_eq!(exchange.verdict(), Verdict::Reset { filter: "probe".into() });
}

// ---- properties ------------------------------------------------------------------------

#[test]
fn properties_by_path_segments() {
    let plugin = probe(&Host::new());
    let prop = |path: &str, request: Request| {
        result_of(&plugin, request.header("x-probe-op", "property").header("x-probe-arg", path))
    };
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(prop("source/address", Request::get("/p")), hex("127.0.0.1:50000"));
    let from = Request::get("/p").property(&["source", "address"], "10.0.0.1:1234");
    assert_eq!(prop("source/address", from.clone()), hex("10.0.0.1:1234"));
    assert_eq!(prop("source/port", from), "d204000000000000");
    assert_eq!(prop("source.address", Request::get("/p")), "none");
    assert_eq!(prop("request/path", Request::get("/props?x=1")), hex("/props?x=1"));
    assert_eq!(prop("request/url_path", Request::get("/props?x=1")), hex("/props"));
    assert_eq!(prop("request/headers/user-agent", Request::get("/").header("user-agent", "ua")), hex("ua"));
    assert_eq!(prop("connection/uri_san_peer_certificate", Request::get("/")), "none");
    let mtls =
        Request::get("/").property(&["connection", "uri_san_peer_certificate"], "spiffe://cluster.local/ns/a/sa/b");
    assert_eq!(prop("connection/uri_san_peer_certificate", mtls), hex("spiffe://cluster.local/ns/a/sa/b"));
    assert_eq!(prop("connection/mtls", Request::get("/")), "00");
    assert_eq!(prop("xds/route_name", Request::get("/").property(&["xds", "route_name"], "r1")), hex("r1"));
    assert_eq!(prop("xds/route_name", Request::get("/")), "none");
    assert_eq!(prop("plugin_name", Request::get("/")), hex("probe"));
    assert_eq!(prop("request/time", Request::get("/")), hex_u64(1_767_225_600_000_000_000));
}

fn hex_u64(value: u64) -> String {
    value.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

// ---- shared data and queues ------------------------------------------------------------

#[test]
fn shared_data_cas_follows_envoy() {
    let host = Host::new();
    let plugin = probe_builder(&host, "probe").vm_id("vm1").load().unwrap();
    let set = |key: &str, value: &str, cas: Option<u32>| {
        let mut request = op("shared-set").header("x-probe-key", key).header("x-probe-value", value);
        if let Some(cas) = cas {
            request = request.header("x-probe-cas", &cas.to_string());
        }
        result_of(&plugin, request)
    };
    let get = |key: &str| result_of(&plugin, op("shared-get").header("x-probe-key", key));
    assert_eq!(set("k", "v1", None), "ok");
    assert_eq!(get("k"), "Some(\"v1\")/Some(1)");
    assert_eq!(set("k", "v2", Some(1001)), "CasMismatch");
    assert_eq!(set("k", "v2", Some(1)), "ok");
    assert_eq!(get("k"), "Some(\"v2\")/Some(2)");
    assert_eq!(set("new", "x", Some(12345)), "ok");
    assert_eq!(get("nokey"), "None/None");
    assert_eq!(host.shared_data("vm1", "k"), Some((b"v2".to_vec(), 2)));
    // Another vm_id does not see it; the same vm_id does.
    let other = probe_builder(&host, "other").vm_id("vm2").load().unwrap();
    assert_eq!(result_of(&other, op("shared-get").header("x-probe-key", "k")), "None/None");
    let same = probe_builder(&host, "same").vm_id("vm1").load().unwrap();
    assert_eq!(result_of(&same, op("shared-get").header("x-probe-key", "k")), "Some(\"v2\")/Some(2)");
}

#[test]
fn shared_queues_deliver_to_the_owning_root_context() {
    let host = Host::new();
    let owner = probe_builder(&host, "owner").vm_id("qvm").config("queue").load().unwrap();
    let producer = probe_builder(&host, "producer").vm_id("other").load().unwrap();
    let outcome = result_of(&producer, op("queue-enqueue").header("x-probe-key", "qvm").header("x-probe-arg", "item"));
    assert_eq!(outcome, "1:Ok(())");
    assert!(logged(&owner, "queue ready id=1 item=item"));
    assert_eq!(host.shared_data("qvm", "queue-got"), Some((b"item".to_vec(), 1)));
    assert_eq!(result_of(&producer, op("queue-enqueue").header("x-probe-key", "nope")), "unresolved");
}

#[test]
fn queue_register_dequeue_empty_and_unknown_token() {
    let plugin = probe(&Host::new());
    assert_eq!(result_of(&plugin, op("queue-register").header("x-probe-arg", "q9")), "1/Ok(None)/Err(NotFound)");
}

// ---- ticks, time, metrics, logs, WASI -------------------------------------------------

#[test]
fn ticks_fire_on_the_root_context() {
    let host = Host::new();
    let plugin = probe_builder(&host, "probe").config("tick=500").load().unwrap();
    assert_eq!(plugin.tick_period(), Duration::from_millis(500));
    plugin.tick().unwrap();
    plugin.tick().unwrap();
    assert_eq!(host.shared_data("", "ticks").map(|(v, _)| v), Some(b"2".to_vec()));
}

#[test]
fn the_clock_is_settable_for_proxy_and_wasi() {
    let host = Host::new();
    let plugin = probe(&host);
    host.set_time_unix(1_800_000_000);
    assert_eq!(result_of(&plugin, op("time")), "1800000000000000000/1800000000000000000");
    host.advance(Duration::from_secs(1));
    assert_eq!(result_of(&plugin, op("time")), "1800000001000000000/1800000001000000000");
}

#[test]
fn metrics_are_readable_by_name() {
    let host = Host::new();
    let plugin = probe(&host);
    assert_eq!(result_of(&plugin, op("metric")), "1/Err(BadArgument)/Err(NotFound)");
    result_of(&plugin, op("metric"));
    assert_eq!(host.metric("probe.requests"), Some(2));
    assert_eq!(host.metric("probe.gauge"), Some(42));
    assert_eq!(host.histogram("probe.latency"), Some(vec![7, 7]));
    assert_eq!(host.metric("absent"), None);
}

#[test]
fn logs_are_captured_with_levels() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(op("log-levels"));
    assert_eq!(exchange.upstream().unwrap().header("x-probe-result").as_deref(), Some("Ok(Info)"));
    let levels: Vec<LogLevel> =
        exchange.logs().iter().filter(|e| e.message.starts_with("probe: level")).map(|e| e.level).collect();
    assert_eq!(
        levels,
        vec![LogLevel::Trace, LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error, LogLevel::Critical]
    );
}

#[test]
fn stdout_and_stderr_become_info_and_error_logs() {
    let plugin = probe(&Host::new());
    plugin.send(op("wasi-stdout"));
    assert!(plugin.logs().iter().any(|e| e.level == LogLevel::Info && e.message == "to stdout"));
    assert!(plugin.logs().iter().any(|e| e.level == LogLevel::Error && e.message == "to stderr"));
}

#[test]
fn environment_variables_reach_the_filter() {
    let plugin = probe_builder(&Host::new(), "probe").env("PROBE_K", "secret").load().unwrap();
    assert_eq!(result_of(&plugin, op("env").header("x-probe-arg", "PROBE_K")), "secret");
    assert_eq!(result_of(&plugin, op("env").header("x-probe-arg", "HOME")), "unset");
}

#[test]
fn wasi_random_and_clocks_follow_envoy() {
    let plugin = probe(&Host::new());
    let random = result_of(&plugin, op("wasi-random").header("x-probe-arg", "16"));
    assert!(random.starts_with("0:") && random != "0:0000000000000000", "{random}");
    assert!(result_of(&plugin, op("wasi-random").header("x-probe-arg", "70000")).starts_with("28:"));
    assert_eq!(result_of(&plugin, op("wasi-clock").header("x-probe-arg", "2")), "58:0");
    assert_eq!(result_of(&plugin, op("wasi-clock").header("x-probe-arg", "0")), "0:1767225600000000000");
    assert!(result_of(&plugin, op("wasi-clock").header("x-probe-arg", "1")).starts_with("0:"));
}

#[test]
fn a_panic_traps_with_its_message_and_breaks_the_vm() {
    let plugin = probe(&Host::new());
    let exchange = plugin.send(op("panic"));
    let (filter, message) = exchange.trap().unwrap();
    assert_eq!(filter, "probe");
    assert!(message.contains("probe panic on purpose"), "{message}");
    assert!(plugin.broken().is_some());
}

#[test]
fn effective_context_and_foreign_functions_refuse_unknowns() {
    let plugin = probe(&Host::new());
    assert_eq!(result_of(&plugin, op("effective-context")), "Err(BadArgument)");
    assert_eq!(result_of(&plugin, op("foreign")), "Err(NotFound)");
    assert_eq!(result_of(&plugin, op("buffer-status")), "Ok(None)");
}

// ---- callouts --------------------------------------------------------------------------

#[test]
fn http_call_to_an_unknown_cluster_is_bad_argument() {
    let plugin = probe(&Host::new());
    assert_eq!(result_of(&plugin, op("http-call").header("x-probe-arg", "nowhere")), "dispatch-error:BadArgument");
}

#[test]
fn http_call_without_pseudo_headers_is_bad_argument() {
    let host = Host::new();
    host.add_cluster("authz");
    let plugin = probe(&host);
    assert_eq!(result_of(&plugin, op("http-call-no-path").header("x-probe-arg", "authz")), "Err(BadArgument)");
}

#[test]
fn http_call_answered_resumes_the_request() {
    let host = Host::new();
    host.add_cluster("authz");
    let plugin = probe(&host);
    let mut exchange = plugin.send(op("http-call").header("x-probe-arg", "authz"));
    assert_eq!(exchange.verdict(), Verdict::Paused { filter: "probe".into(), stage: Stage::RequestHeaders });
    let calls = exchange.http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.cluster, "authz");
    assert_eq!(call.headers.get(":path").as_deref(), Some("/check"));
    assert_eq!(call.body, b"ping");
    assert_eq!(call.trailers.get("t").as_deref(), Some("1"));
    assert_eq!(call.timeout_ms, 5000);
    exchange.answer_http_call(call.token, HttpReply::ok().body("pong").trailer("t", "x")).unwrap();
    assert_eq!(exchange.verdict(), Verdict::Forwarded);
    assert_eq!(exchange.upstream().unwrap().header("x-probe-result").as_deref(), Some("200:pong:x"));
    assert!(exchange.http_calls().is_empty());
}

#[test]
fn http_call_failure_and_timeout_report_reset() {
    let host = Host::new();
    host.add_cluster("authz");
    let plugin = probe(&host);
    for reply in [HttpReply::Reset, HttpReply::Timeout] {
        let mut exchange = plugin.send(op("http-call").header("x-probe-arg", "authz"));
        let token = exchange.http_calls()[0].token;
        exchange.answer_http_call(token, reply).unwrap();
        assert_eq!(exchange.upstream().unwrap().header("x-probe-result").as_deref(), Some("failed:11:reset"));
    }
}

#[test]
fn local_reply_from_a_callout_callback() {
    let host = Host::new();
    host.add_cluster("authz");
    let plugin = probe(&host);
    let mut exchange = plugin.send(op("http-call").header("x-probe-arg", "authz"));
    let token = exchange.http_calls()[0].token;
    exchange.answer_http_call(token, HttpReply::status(403)).unwrap();
    assert_eq!(exchange.verdict(), Verdict::LocalReply(403));
    let client = exchange.client().unwrap();
    assert_eq!(client.header("x-denied-by").as_deref(), Some("callout"));
    assert_eq!(client.header("x-probe-seen").as_deref(), Some("probe"));
}

#[test]
fn root_context_callouts_are_answered_through_the_plugin() {
    let host = Host::new();
    host.add_cluster("idp");
    let plugin = probe_builder(&host, "probe").config("root-callout=idp").load().unwrap();
    let calls = plugin.http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].headers.get(":path").as_deref(), Some("/jwks"));
    plugin.answer_http_call(calls[0].token, HttpReply::ok().body("keys")).unwrap();
    assert_eq!(host.shared_data("", "root-callout").map(|(v, _)| v), Some(b"keys".to_vec()));
}

#[test]
fn grpc_calls() {
    let host = Host::new();
    let plugin = probe(&host);
    assert_eq!(result_of(&plugin, op("grpc-call").header("x-probe-arg", "grpc-upstream")), "grpc-error:ParseFailure");
    host.add_cluster("grpc-upstream");
    let mut exchange = plugin.send(op("grpc-call").header("x-probe-arg", "grpc-upstream"));
    let calls = exchange.grpc_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].service.as_str(), calls[0].method.as_str()), ("pkg.Svc", "Check"));
    assert_eq!(calls[0].messages, vec![b"req".to_vec()]);
    let token = calls[0].token;
    exchange.answer_grpc_call(token, GrpcReply::message("resp")).unwrap();
    let expected = format!("grpc:{token}:0:resp:0:");
    assert_eq!(exchange.upstream().unwrap().header("x-probe-result"), Some(expected));
}

// ---- hostile traffic -------------------------------------------------------------------

#[test]
fn the_probe_never_traps_on_hostile_traffic() {
    let host = Host::new();
    let (a, b) = (probe_builder(&host, "a").load().unwrap(), probe_builder(&host, "b").load().unwrap());
    traffic::assert_never_traps(&host.chain(&[&a, &b]), 11, 150).unwrap();
}

#[test]
fn a_trap_on_hostile_traffic_is_reported_with_the_request() {
    let host = Host::new();
    let plugin = probe_builder(&host, "panicky").config("op=panic").load().unwrap();
    let error = traffic::assert_never_traps(&host.chain(&[&plugin]), 3, 10).unwrap_err().to_string();
    assert!(error.contains("plugin panicky trapped"), "{error}");
    assert!(error.contains("probe panic on purpose"), "{error}");
    assert!(error.contains("request: Request {"), "{error}");
}
