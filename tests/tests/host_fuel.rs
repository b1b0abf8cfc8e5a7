//! Fuel metering in the test host (the bench's deterministic cost): opt-in per plugin, off by
//! default, and it counts the work a request does.

use palisade_tests::host::{Host, Request, Response, Verdict};

#[test]
fn fuel_is_off_by_default_and_counts_each_request_when_asked() {
    let host = Host::new();
    let plain = host.plugin("trivial").load().unwrap();
    assert_eq!(plain.fuel_consumed(), None, "fuel is opt-in");

    let metered = host.plugin("trivial").fuel(true).load().unwrap();
    let after_load = metered.fuel_consumed().unwrap();
    assert!(after_load > 0, "starting the VM runs wasm code");

    let mut per_request = Vec::new();
    for _ in 0..3 {
        let before = metered.fuel_consumed().unwrap();
        let mut exchange = metered.send(Request::get("/x"));
        assert_eq!(exchange.verdict(), Verdict::Forwarded);
        exchange.respond(Response::ok()).unwrap();
        drop(exchange);
        per_request.push(metered.fuel_consumed().unwrap() - before);
    }
    assert!(per_request.iter().all(|&f| f > 0), "{per_request:?}");
    // The same request through the same code in the same state costs the same fuel.
    assert_eq!(per_request[1], per_request[2], "{per_request:?}");
}

#[test]
fn a_filter_doing_more_work_burns_more_fuel() {
    let host = Host::new();
    let trivial = host.plugin("trivial").fuel(true).load().unwrap();
    let headers = host.plugin("security-headers").config("{}").fuel(true).load().unwrap();
    let cost = |plugin: &palisade_tests::host::Plugin| {
        let before = plugin.fuel_consumed().unwrap();
        let mut exchange = plugin.send(Request::get("/x").header("origin", "https://a.example"));
        exchange.respond(Response::ok()).unwrap();
        drop(exchange);
        plugin.fuel_consumed().unwrap() - before
    };
    let (t, h) = (cost(&trivial), cost(&headers));
    assert!(h > t, "security-headers {h} vs trivial {t}");
}

#[test]
fn crossings_count_host_calls_and_callbacks_of_each_request() {
    let host = Host::new();
    let trivial = host.plugin("trivial").load().unwrap();
    let headers = host.plugin("security-headers").config("{}").load().unwrap();
    let crossed = |plugin: &palisade_tests::host::Plugin| {
        let before = plugin.crossings();
        let mut exchange = plugin.send(Request::get("/x"));
        exchange.respond(Response::ok()).unwrap();
        drop(exchange);
        let after = plugin.crossings();
        (after.host_calls - before.host_calls, after.guest_calls - before.guest_calls)
    };
    let (trivial_host, trivial_guest) = crossed(&trivial);
    assert_eq!(trivial_host, 0, "the trivial filter calls nothing");
    // Create, request headers, response headers, done, log, delete at least.
    assert!(trivial_guest >= 6, "{trivial_guest} callbacks");
    let (headers_host, headers_guest) = crossed(&headers);
    // Two header map reads (each also calls the guest allocator), writes and a counter.
    assert!(headers_host > 2, "{headers_host} host calls");
    assert_eq!(headers_guest, trivial_guest + 2, "two allocations for the two header maps");
}

#[test]
fn the_trivial_filter_reads_the_header_map_once_when_configured_to() {
    let host = Host::new();
    // (fuel, host calls, guest calls) of the second of two identical requests.
    let measure = |config: &str| {
        let plugin = host.plugin("trivial").config(config).fuel(true).load().unwrap();
        let mut last = (0, 0, 0);
        for _ in 0..2 {
            let (fuel, crossings) = (plugin.fuel_consumed().unwrap(), plugin.crossings());
            let mut exchange = plugin.send(Request::get("/x").header("x-a", "1").header("x-b", "2"));
            assert_eq!(exchange.verdict(), Verdict::Forwarded);
            exchange.respond(Response::ok()).unwrap();
            drop(exchange);
            let after = plugin.crossings();
            last = (
                plugin.fuel_consumed().unwrap() - fuel,
                after.host_calls - crossings.host_calls,
                after.guest_calls - crossings.guest_calls,
            );
        }
        last
    };
    let nothing = measure("{}");
    let decoded = measure("read_request_headers");
    let bytes = measure("read_request_header_bytes");
    assert_eq!(nothing.1, 0, "{nothing:?}");
    for read in [decoded, bytes] {
        // One proxy_get_header_map_pairs, and the host's call into the allocator for its buffer.
        assert_eq!((read.1, read.2), (1, nothing.2 + 1), "{read:?} vs {nothing:?}");
    }
    // The SDK's String per name and value costs instructions that the bytes alone do not.
    assert!(decoded.0 > bytes.0 && bytes.0 > nothing.0, "{decoded:?} {bytes:?} {nothing:?}");
}

#[test]
fn the_trivial_filter_reads_a_chunked_body_once_at_its_end_when_configured_to() {
    let host = Host::new();
    let body = "x".repeat(3000);
    let chunks: Vec<&[u8]> = body.as_bytes().chunks(1000).collect();
    // (host calls, guest calls) of the second of two identical requests, and what the
    // upstream received.
    let measure = |config: &str| {
        let plugin = host.plugin("trivial").config(config).load().unwrap();
        let mut last = (0, 0, None);
        for _ in 0..2 {
            let crossings = plugin.crossings();
            let mut exchange = plugin.send(Request::post("/x").header("x-a", "1").body_chunks(chunks.clone()));
            assert_eq!(exchange.verdict(), Verdict::Forwarded);
            let received = exchange.upstream().map(|u| u.body.clone());
            exchange.respond(Response::ok()).unwrap();
            drop(exchange);
            let after = plugin.crossings();
            last = (after.host_calls - crossings.host_calls, after.guest_calls - crossings.guest_calls, received);
        }
        last
    };
    let headers = measure("read_request_header_bytes");
    let whole = measure("read_request_body");
    assert_eq!(headers.2.as_deref(), Some(body.as_bytes()), "forwarded whole without reading it");
    assert_eq!(whole.2.as_deref(), Some(body.as_bytes()), "forwarded whole after buffering it");
    // One proxy_get_buffer_bytes of the whole body (and its allocation), not one per chunk.
    assert_eq!((whole.0, whole.1), (headers.0 + 1, headers.1 + 1), "{whole:?} vs {headers:?}");
}
