//! What inspecting a realistic 4 KiB JSON body costs the request-validation filter in wasm:
//! wasmtime fuel (about one unit per wasm instruction) per request, printed for the report
//! (`--nocapture`), never asserted. What is asserted is that the measured requests take the
//! path they are meant to: the clean order reaches the upstream whole, the same order with an
//! injection in one prose field is refused.
//!
//! `PALISADE_BASELINE_WASM=/path/to/request-validation.wasm` prints the same figures for another
//! build (e.g. one from before a change) next to `dist/`'s.
// Helpers outside `#[test]` fns unwrap too: a panic here is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use palisade_tests::host::{dist_dir, Host, Plugin, Request, Response, Verdict};

/// 3,996 bytes, 60 string values: names, emails, prose, prices, ids.
const ORDER: &str = include_str!("../../shared/tests/data/order_4k.json");

/// Every detector at its default locations, no schema: the cost of the injection checks.
const DETECTORS: &str = r#"{"routes":[{"content_types":["application/json"]}]}"#;

/// Fuel of each of three identical requests, and the exchange's outcome.
fn fuel(plugin: &Plugin, request: impl Fn() -> Request) -> (Vec<u64>, Verdict, Option<Vec<u8>>) {
    let mut spent = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let before = plugin.fuel_consumed().unwrap();
        let mut exchange = plugin.send(request());
        let verdict = exchange.verdict();
        let body = exchange.upstream().map(|u| u.body.clone());
        if verdict == Verdict::Forwarded {
            exchange.respond(Response::ok().body("ok")).unwrap();
        }
        drop(exchange);
        spent.push(plugin.fuel_consumed().unwrap() - before);
        last = Some((verdict, body));
    }
    let (verdict, body) = last.unwrap();
    (spent, verdict, body)
}

fn order() -> Request {
    Request::post("/api/orders").header("content-type", "application/json").body(ORDER)
}

fn report(label: &str, wasm: PathBuf) {
    let host = Host::new();
    let plugin = host.plugin_at(&wasm, "request-validation").config(DETECTORS).fuel(true).load().unwrap();
    let (body_fuel, verdict, upstream_body) = fuel(&plugin, order);
    assert_eq!(verdict, Verdict::Forwarded, "{label}: the clean order passes");
    assert_eq!(upstream_body.as_deref(), Some(ORDER.as_bytes()), "{label}: forwarded whole");
    let (get_fuel, verdict, _) = fuel(&plugin, || Request::get("/api/orders?page=2&sort=date"));
    assert_eq!(verdict, Verdict::Forwarded);
    let attack = ORDER.replace("Great kettle, slow delivery", "x' UNION SELECT password FROM users--");
    let (_, verdict, _) = fuel(&plugin, || {
        Request::post("/api/orders").header("content-type", "application/json").body(attack.as_bytes())
    });
    assert_eq!(verdict, Verdict::LocalReply(400), "{label}: the order with SQLi in a review title");
    println!(
        "{label}: 4 KiB order body {} fuel (first {}), header-only GET {} fuel, body minus GET {} fuel [{}]",
        body_fuel[2],
        body_fuel[0],
        get_fuel[2],
        body_fuel[2].saturating_sub(get_fuel[2]),
        wasm.display()
    );
}

#[test]
fn fuel_of_a_4k_json_body() {
    report("dist", dist_dir().join("request-validation.wasm"));
    if let Some(baseline) = std::env::var_os("PALISADE_BASELINE_WASM") {
        report("baseline", PathBuf::from(baseline));
    }
}
