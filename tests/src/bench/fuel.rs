//! Deterministic cost per filter: the same common-path request through each filter in the
//! wasmtime test host with fuel metering on (about one unit per wasm instruction executed),
//! request and response phases and `on_log` included. The figures do not depend on the machine
//! or its load, so regressions show as numbers.

use std::time::SystemTime;

use anyhow::{anyhow, Result};

use super::cases::{Case, Filter, Req};
use crate::host::{self, Crossings, Host, Plugin, Request, Response, Verdict};

/// Fuel of one case.
#[derive(Debug, Clone)]
pub struct FuelRow {
    /// The case.
    pub name: String,
    /// Plugins in the chain.
    pub plugins: usize,
    /// Fuel of the first request (cold: caches empty, lazy statics built).
    pub first: u64,
    /// Fuel of the last of the identical requests, the third by default (steady state: caches
    /// warm).
    pub steady: u64,
    /// Crossings of the wasm boundary in the steady request: in Envoy these, not the
    /// instructions, dominate a light filter's CPU.
    pub crossings: Crossings,
    /// What happened to the request (`forwarded, 200` on the common path).
    pub outcome: String,
}

fn host_request(req: &Req) -> Request {
    let mut request = Request::new(req.method, &req.path);
    for (name, value) in req.first_headers() {
        request = request.header(&name, &value);
    }
    if let Some(body) = &req.body {
        request = request.body(body.as_bytes());
    }
    request
}

fn total(plugins: &[Plugin]) -> u64 {
    plugins.iter().filter_map(Plugin::fuel_consumed).sum()
}

fn crossings(plugins: &[Plugin]) -> Crossings {
    plugins.iter().map(Plugin::crossings).fold(Crossings::default(), |a, b| Crossings {
        host_calls: a.host_calls + b.host_calls,
        guest_calls: a.guest_calls + b.guest_calls,
    })
}

/// Loads the case's wasm filters with fuel on and sends its request `requests` times (the
/// steady figures are the last one's: three suffice; many make a profile).
pub fn measure(case: &Case, requests: usize) -> Result<FuelRow> {
    let host = Host::new();
    host.set_time(SystemTime::now());
    let mut plugins = Vec::new();
    for filter in &case.filters {
        let Filter::Wasm { file, config, env } = filter else {
            return Err(anyhow!("`{}` has a native filter: no fuel", case.name));
        };
        let mut builder =
            host.plugin_at(host::dist_dir().join(format!("{file}.wasm")), file).config(config).vm_id(file);
        for (k, v) in env {
            builder = builder.env(k, v);
        }
        plugins.push(builder.fuel(true).load().map_err(|e| anyhow!("loading {file}: {e}"))?);
    }
    let refs: Vec<&Plugin> = plugins.iter().collect();
    let chain = host.chain(&refs);
    let mut spent = Vec::new();
    let mut steady_crossings = Crossings::default();
    let mut outcome = String::new();
    for _ in 0..requests {
        let before = total(&plugins);
        let crossed = crossings(&plugins);
        let mut exchange = chain.send(host_request(&case.request));
        outcome = match exchange.verdict() {
            Verdict::Forwarded => {
                exchange.respond(Response::ok().header("content-type", "text/plain").body("ok"))?;
                let status = exchange.client().map(|c| c.status()).unwrap_or(0);
                format!("forwarded, {status}")
            }
            other => format!("**{other:?}**: not the common path"),
        };
        drop(exchange);
        spent.push(total(&plugins) - before);
        let now = crossings(&plugins);
        steady_crossings = Crossings {
            host_calls: now.host_calls - crossed.host_calls,
            guest_calls: now.guest_calls - crossed.guest_calls,
        };
        host.advance(std::time::Duration::from_millis(10));
    }
    Ok(FuelRow {
        name: case.name.clone(),
        plugins: plugins.len(),
        first: spent.first().copied().unwrap_or(0),
        steady: spent.last().copied().unwrap_or(0),
        crossings: steady_crossings,
        outcome,
    })
}
