//! Deterministic cost per filter: the same common-path request through each filter in the
//! wasmtime test host with fuel metering on (about one unit per wasm instruction executed),
//! request and response phases and `on_log` included. The figures do not depend on the machine
//! or its load, so regressions show as numbers.

use std::time::SystemTime;

use anyhow::{anyhow, Result};

use super::cases::{Case, Filter, Req};
use crate::host::{self, Host, Plugin, Request, Response, Verdict};

/// Fuel of one case.
#[derive(Debug, Clone)]
pub struct FuelRow {
    /// The case.
    pub name: String,
    /// Plugins in the chain.
    pub plugins: usize,
    /// Fuel of the first request (cold: caches empty, lazy statics built).
    pub first: u64,
    /// Fuel of the third identical request (steady state: caches warm).
    pub steady: u64,
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

/// Loads the case's wasm filters with fuel on and sends its request three times.
pub fn measure(case: &Case) -> Result<FuelRow> {
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
    let mut outcome = String::new();
    for _ in 0..3 {
        let before = total(&plugins);
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
        host.advance(std::time::Duration::from_millis(10));
    }
    Ok(FuelRow {
        name: case.name.clone(),
        plugins: plugins.len(),
        first: spent.first().copied().unwrap_or(0),
        steady: spent.last().copied().unwrap_or(0),
        outcome,
    })
}
