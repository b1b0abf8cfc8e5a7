//! Runs one case on a real Envoy under wrk: Envoy (one worker) pinned to one core, wrk (one
//! thread, a few connections) pinned to the other, a warm-up run, then a measured run bounded
//! in time, with Envoy's CPU time (`/proc/<pid>/stat` utime + stime) read around it and its
//! RSS (`VmRSS`) after it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context as _, Result};

use super::cases::{Case, Filter, Req, Values, MIX_INTERLEAVE, MIX_USES};
use crate::e2e::{self, Envoy, EnvoyConfig, HttpFilter, Listener, PathMatch, Request, Route, WasmFilter};

/// The core Envoy runs on; wrk runs on the other one.
pub const ENVOY_CORE: usize = 0;
/// The core wrk runs on.
pub const WRK_CORE: usize = 1;

/// How wrk drives a case.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Seconds of the measured run (wrk takes whole seconds).
    pub duration: u32,
    /// Seconds of the warm-up run before it.
    pub warmup: u32,
    /// Open connections.
    pub connections: u32,
}

/// What one run of one case measured.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Completed requests of the measured run.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Envoy CPU time (user + system) per request, µs.
    pub cpu_us: f64,
    /// Latency percentiles, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Envoy's RSS after the run, KiB.
    pub rss_kib: u64,
    /// Responses other than 2xx/3xx (the case is then not on its common path).
    pub non_2xx: u64,
    /// Socket errors wrk reported.
    pub socket_errors: u64,
    /// Downstream connections Envoy accepted (warm-up and measured runs, and the check): about
    /// twice wrk's connections when keep-alive holds.
    pub connections: u64,
}

/// The Envoy configuration of a case: one worker, one listener, its filters, a direct 200.
pub fn envoy_config(case: &Case) -> Result<EnvoyConfig> {
    let mut listener = Listener::new("bench");
    for filter in &case.filters {
        listener = match filter {
            Filter::Wasm { file, config, env } => {
                let mut wasm = WasmFilter::palisade(file, config)?;
                for (k, v) in env {
                    wasm = wasm.env(k, v);
                }
                listener.filter(wasm)
            }
            Filter::Native { name, config } => listener.filter(HttpFilter::native(name, config.clone())),
        };
    }
    if case.request.body.is_some() {
        // Last before the router: without it the direct response goes out before the body is
        // read, and Envoy closes every HTTP/1.1 connection (`rq_response_before_rq_complete`),
        // so the baseline would measure connection setup. The filters under test still see the
        // body first, as in production.
        listener = listener.filter(HttpFilter::native(
            "envoy.filters.http.buffer",
            serde_json::json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": 1_048_576,
            }),
        ));
    }
    for (key, value) in &case.hcm {
        listener = listener.hcm_field(key, value.clone());
    }
    let listener = listener.route(Route::direct("bench", PathMatch::prefix("/"), 200, "ok"));
    Ok(EnvoyConfig::new().concurrency(1).log_level("warn", None).listener(listener))
}

/// The case's first request through the runner's client (to check the common path).
pub fn first_request(req: &Req) -> Request {
    let mut request = Request::new(req.method, &req.path);
    for (name, value) in req.first_headers() {
        request = request.header(&name, &value);
    }
    if let Some(body) = &req.body {
        request = request.body(body.as_bytes().to_vec());
    }
    request
}

/// Starts the case's Envoy, pins it, checks one request gets 200, warms up and measures.
pub fn run(case: &Case, load: Load, scripts: &Path) -> Result<Sample> {
    let envoy = Envoy::start(&format!("bench-{}", slug(&case.name)), &envoy_config(case)?)?;
    let pid = envoy.pid();
    check_is_envoy(pid)?;
    pin(pid, ENVOY_CORE)?;
    let response = envoy.send(&first_request(&case.request))?;
    if response.status != 200 {
        bail!("`{}`: the first request got {} instead of 200: {}", case.name, response.status, response.text());
    }
    let script = write_script(&case.request, scripts, &slug(&case.name))?;
    let url = envoy.url(path_only(&case.request.path));
    if load.warmup > 0 {
        wrk(&url, &script, load.warmup, load.connections, true)?;
    }
    let before = cpu_ticks(pid)?;
    let out = wrk(&url, &script, load.duration, load.connections, false)?;
    let after = cpu_ticks(pid)?;
    let rss_kib = rss_kib(pid)?;
    let connections = envoy.stats()?.counter("http.bench.downstream_cx_total").unwrap_or(0);
    drop(envoy);
    let mut sample = parse_wrk(&out).with_context(|| format!("wrk output of `{}`:\n{out}", case.name))?;
    let ticks = after.saturating_sub(before) as f64;
    sample.cpu_us = if sample.requests == 0 { 0.0 } else { ticks * 1e6 / clock_ticks() / sample.requests as f64 };
    sample.rss_kib = rss_kib;
    sample.connections = connections;
    Ok(sample)
}

/// Response headers of a case's first request on its own Envoy (to copy security-headers'
/// output into the native equivalents).
pub fn response_headers(case: &Case) -> Result<Vec<(String, String)>> {
    let envoy = Envoy::start(&format!("bench-headers-{}", slug(&case.name)), &envoy_config(case)?)?;
    let response = envoy.send(&first_request(&case.request))?;
    if response.status != 200 {
        bail!("`{}`: got {} instead of 200", case.name, response.status);
    }
    Ok(response.headers.clone())
}

/// Envoy's version line.
pub fn envoy_version() -> String {
    let Ok(binary) = e2e::envoy_binary() else { return "unknown".into() };
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_once("version:").map_or(text.trim(), |(_, v)| v.trim()).to_string()
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The launcher `exec`s Envoy, so the child's PID is Envoy's; make sure, since CPU is read there.
fn check_is_envoy(pid: u32) -> Result<()> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "envoy" {
        bail!("pid {pid} is `{}`, not envoy: CPU would be measured on the wrong process", comm.trim());
    }
    Ok(())
}

/// Pins every thread of `pid` to `core` (`taskset -a`).
fn pin(pid: u32, core: usize) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset -a -p -c {core} {pid} failed: {status}");
    }
    Ok(())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime of the whole process (every thread), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields.get(n - 3).and_then(|f| f.parse().ok()).ok_or_else(|| anyhow!("no field {n} in /proc/{pid}/stat"))
    };
    Ok(field(14)? + field(15)?)
}

/// Envoy's `VmRSS`, KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

fn wrk(url: &str, script: &Path, seconds: u32, connections: u32, warmup: bool) -> Result<String> {
    let mut command = Command::new("taskset");
    command
        .args(["-c", &WRK_CORE.to_string(), "wrk", "-t1", "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--timeout", "5s", "--latency", "-s"])
        .arg(script)
        .arg(url);
    if warmup {
        command.args(["--", "warmup"]);
    }
    let output = command.output().context("running wrk (`apt-get install -y wrk`)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!("wrk failed ({}): {}{}", output.status, text, String::from_utf8_lossy(&output.stderr));
    }
    Ok(text)
}

/// `123.45us`, `1.20ms`, `2.00s` in µs.
fn duration_us(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// Reads requests, req/s, p50, p99, non-2xx and socket errors from wrk's report.
pub fn parse_wrk(out: &str) -> Result<Sample> {
    let mut sample = Sample::default();
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => sample.p50_us = duration_us(v).unwrap_or(0.0),
            ["99%", v] => sample.p99_us = duration_us(v).unwrap_or(0.0),
            [n, "requests", "in", ..] => sample.requests = n.parse().unwrap_or(0),
            ["Requests/sec:", v] => sample.rps = v.parse().unwrap_or(0.0),
            ["Non-2xx", "or", "3xx", "responses:", n] => sample.non_2xx = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                sample.socket_errors = rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum();
            }
            _ => {}
        }
    }
    if sample.requests == 0 || sample.rps <= 0.0 {
        bail!("no requests completed");
    }
    Ok(sample)
}

fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            b => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

fn lua_list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| lua_string(v)).collect();
    format!("{{\n{}\n}}", items.join(",\n"))
}

/// The wrk script of a request: method, headers and body fixed; a varying header picked per
/// request (`request()` is only defined then, so static requests stay on wrk's fast path).
pub fn script(req: &Req) -> String {
    let mut lua = String::new();
    let _ = writeln!(lua, "wrk.method = {}", lua_string(req.method));
    let _ = writeln!(lua, "wrk.path = {}", lua_string(&req.path));
    for (name, value) in &req.headers {
        let _ = writeln!(lua, "wrk.headers[{}] = {}", lua_string(name), lua_string(value));
    }
    if let Some(body) = &req.body {
        let _ = writeln!(lua, "wrk.body = {}", lua_string(body));
    }
    let Some((name, prefix, values)) = &req.varying else { return lua };
    let set = format!("wrk.headers[{}] = {} .. v", lua_string(name), lua_string(prefix));
    match values {
        Values::One(v) => {
            let _ = writeln!(lua, "wrk.headers[{}] = {}", lua_string(name), lua_string(&format!("{prefix}{v}")));
        }
        Values::Numbered { stem, count } => {
            let _ = write!(
                lua,
                "local n = 0\nrequest = function()\n  local v = {} .. (n % {count})\n  n = n + 1\n  {set}\n  \
                 return wrk.format()\nend\n",
                lua_string(stem)
            );
        }
        Values::Mix { values, warm } => {
            let group = MIX_INTERLEAVE * MIX_USES;
            let _ = write!(
                lua,
                "local values = {}\nlocal warm = {}\nlocal warming = false\nlocal n = 0\n\
                 init = function(args) warming = args[1] == \"warmup\" end\n\
                 request = function()\n  local v\n  if warming then\n    v = warm[n % #warm + 1]\n  else\n    \
                 local i = (math.floor(n / {group}) * {MIX_INTERLEAVE} + n % {MIX_INTERLEAVE}) % #values\n    \
                 v = values[i + 1]\n  end\n  n = n + 1\n  {set}\n  return wrk.format()\nend\n",
                lua_list(values),
                lua_list(warm)
            );
        }
    }
    lua
}

fn write_script(req: &Req, dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, script(req)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_wrk_report() {
        let out = "Running 3s test @ http://127.0.0.1:1/\n  1 threads and 8 connections\n  Latency Distribution\n     \
                   50%  180.00us\n     75%  200.00us\n     90%  1.10ms\n     99%    2.50ms\n  \
                   30000 requests in 3.00s, 4.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  \
                   Non-2xx or 3xx responses: 7\nRequests/sec:  10000.50\nTransfer/sec:      1.33MB\n";
        let sample = parse_wrk(out).unwrap_or_default();
        assert_eq!(sample.requests, 30000);
        assert!((sample.rps - 10000.5).abs() < 1e-9);
        assert!((sample.p50_us - 180.0).abs() < 1e-9 && (sample.p99_us - 2500.0).abs() < 1e-9);
        assert_eq!((sample.non_2xx, sample.socket_errors), (7, 3));
    }

    #[test]
    fn lua_strings_escape_quotes_backslashes_and_control_bytes() {
        assert_eq!(lua_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\010d\"");
    }
}
