//! Smoke tests of the end-to-end runner on a real Envoy: what the upstream sees through Envoy,
//! direct responses, stats, stopping by PID, and loading a built Palisade filter.

use std::path::Path;
use std::time::Duration;

use palisade_tests::e2e::{
    Cluster, EchoServer, Envoy, EnvoyConfig, HttpFilter, Listener, PathMatch, Request, Route, WasmFilter,
};

/// Envoy with no filter (only the router) in front of the echo, plus a direct-response route.
fn plain_config(echo: &EchoServer) -> EnvoyConfig {
    EnvoyConfig::new().cluster(Cluster::new("echo", echo.addr())).listener(
        Listener::new("main")
            .route(Route::direct("teapot", PathMatch::exact("/teapot"), 418, "short and stout"))
            .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
    )
}

#[test]
fn upstream_sees_method_path_headers_and_body() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("upstream_sees_method_path_headers_and_body", &plain_config(&echo)).unwrap();

    let response = envoy
        .send(
            &Request::new("PUT", "/a/b?x=1&y=%20")
                .header("X-Custom", "one")
                .header("x-custom", "two")
                .header("content-type", "text/plain")
                .body("hello upstream"),
        )
        .unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let seen = response.echoed().unwrap();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.path, "/a/b?x=1&y=%20");
    assert_eq!(seen.header_all("x-custom"), vec!["one", "two"]);
    assert_eq!(seen.header("content-length"), Some("14"));
    assert_eq!(seen.header("x-envoy-expected-rq-timeout-ms"), Some("15000"));
    assert!(seen.header("x-request-id").is_some(), "Envoy adds x-request-id: {:?}", seen.headers);
    assert_eq!(seen.body.as_deref(), Some("hello upstream"));
}

#[test]
fn chunked_upload_reaches_upstream_whole() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("chunked_upload_reaches_upstream_whole", &plain_config(&echo)).unwrap();

    let chunks = ["first,", "second,", "third"];
    let response = envoy.send(&Request::new("POST", "/upload").chunked(chunks, Duration::from_millis(30))).unwrap();

    assert_eq!(response.status, 200);
    let seen = response.echoed().unwrap();
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen.header("content-length"), None);
    assert_eq!(seen.body.as_deref(), Some("first,second,third"));
}

#[test]
fn binary_body_is_reported_in_base64() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("binary_body_is_reported_in_base64", &plain_config(&echo)).unwrap();

    let response = envoy.send(&Request::post("/bin", vec![0xff, 0xfe, 0x00, 0x41])).unwrap();

    let seen = response.echoed().unwrap();
    assert_eq!(seen.body, None);
    assert_eq!(seen.body_base64.as_deref(), Some("//4AQQ=="));
    assert_eq!(seen.body_bytes(), vec![0xff, 0xfe, 0x00, 0x41]);
}

#[test]
fn direct_response_route_never_reaches_upstream() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("direct_response_route_never_reaches_upstream", &plain_config(&echo)).unwrap();

    let response = envoy.send(&Request::get("/teapot")).unwrap();

    assert_eq!(response.status, 418);
    assert_eq!(response.text(), "short and stout");
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.counter("cluster.echo.upstream_rq_total"), Some(0));
}

#[test]
fn stats_count_requests_and_keep_alive_works() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("stats_count_requests_and_keep_alive_works", &plain_config(&echo)).unwrap();

    let mut connection =
        palisade_tests::e2e::Connection::open(envoy.addr(), palisade_tests::e2e::client::DEFAULT_TIMEOUT).unwrap();
    for i in 0..3 {
        let response = connection.send(&Request::get(&format!("/n/{i}"))).unwrap();
        assert_eq!(response.echoed().unwrap().path, format!("/n/{i}"));
    }

    let stats = envoy.stats().unwrap();
    assert_eq!(stats.counter("http.main.downstream_rq_total"), Some(3));
    assert_eq!(stats.counter("http.main.downstream_cx_total"), Some(1));
    assert_eq!(stats.counter("cluster.echo.upstream_rq_200"), Some(3));
    assert!(stats.len() > 100, "expected Envoy's full stat set, got {}", stats.len());
}

#[test]
fn echo_control_headers_shape_the_reply() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("echo_control_headers_shape_the_reply", &plain_config(&echo)).unwrap();

    let response = envoy
        .send(
            &Request::post("/raw", r#"{"a":1}"#)
                .header("content-type", "application/json")
                .header("x-echo-status", "503")
                .header("x-echo-header", "x-powered-by: php")
                .header("x-echo-raw", "1"),
        )
        .unwrap();

    assert_eq!(response.status, 503);
    assert_eq!(response.header("x-powered-by"), Some("php"));
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.text(), r#"{"a":1}"#);
}

#[test]
fn envoy_is_stopped_by_pid_on_drop() {
    let echo = EchoServer::start().unwrap();
    let envoy = Envoy::start("envoy_is_stopped_by_pid_on_drop", &plain_config(&echo)).unwrap();
    let pid = envoy.pid();
    let addr = envoy.addr();
    let run_dir = envoy.run_dir().to_path_buf();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    drop(envoy);

    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "envoy pid {pid} still exists");
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    assert!(!run_dir.exists(), "the run folder is removed after a passing test");
}

#[test]
fn bad_config_fails_start_with_envoys_log() {
    let config = EnvoyConfig::new().listener(Listener::new("main").route(Route::to_cluster(
        "default",
        PathMatch::prefix("/"),
        "no-such-cluster",
    )));

    let err = match Envoy::start("bad_config_fails_start_with_envoys_log", &config) {
        Ok(_) => panic!("envoy started with a route to an unknown cluster"),
        Err(err) => err.to_string(),
    };

    assert!(err.contains("exited before it was ready"), "{err}");
    assert!(err.contains("unknown cluster 'no-such-cluster'"), "the error carries Envoy's log: {err}");
}

#[test]
fn native_filter_runs_before_the_router() {
    let echo = EchoServer::start().unwrap();
    let header_mutation = HttpFilter::native(
        "envoy.filters.http.header_mutation",
        serde_json::json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": { "request_mutations": [
                { "append": { "header": { "key": "x-native", "value": "yes" }, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" } },
            ] },
        }),
    );
    let config = EnvoyConfig::new().cluster(Cluster::new("echo", echo.addr())).listener(
        Listener::new("main").filter(header_mutation).route(Route::to_cluster(
            "default",
            PathMatch::prefix("/"),
            "echo",
        )),
    );
    let envoy = Envoy::start("native_filter_runs_before_the_router", &config).unwrap();

    let seen = envoy.send(&Request::get("/").header("x-native", "spoofed")).unwrap().echoed().unwrap();

    assert_eq!(seen.header_all("x-native"), vec!["yes"]);
}

#[test]
fn security_headers_wasm_loads_and_passes_requests() {
    let echo = EchoServer::start().unwrap();
    let config =
        EnvoyConfig::new().cluster(Cluster::new("echo", echo.addr())).listener(
            Listener::new("main")
                .filter(WasmFilter::palisade("security-headers", "{}").unwrap())
                .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
        );
    let envoy = Envoy::start("security_headers_wasm_loads_and_passes_requests", &config).unwrap();

    let response = envoy.send(&Request::get("/through/wasm").header("x-probe", "1")).unwrap();

    assert_eq!(response.status, 200, "{}", response.text());
    let seen = response.echoed().unwrap();
    assert_eq!(seen.path, "/through/wasm");
    assert_eq!(seen.header("x-probe"), Some("1"));
    let stats = envoy.stats().unwrap();
    assert_eq!(stats.counter("wasm.envoy.wasm.runtime.v8.created").map(|n| n > 0), Some(true), "a V8 VM was created");
    // The filter's own counter, read through the runner's wasmcustom helper.
    let decorated = "wasmcustom.palisade.security_headers.responses_decorated";
    assert_eq!(envoy.wait_for_counter(decorated, 1, Duration::from_secs(5)).unwrap(), Some(1));
    assert_eq!(envoy.stats().unwrap().wasmcustom("palisade.security_headers.responses_decorated"), Some(1));
}
