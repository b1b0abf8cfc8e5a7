//! `make bench`: each Palisade filter on its common path on a real Envoy, next to Envoy's
//! native filters configured alike, and the deterministic cost (wasmtime fuel) of each filter.
//!
//! Method (issue #9): Envoy 1.40 from `.venv` with `--concurrency 1`, pinned to core 0, routes a
//! `direct_response` 200 (no upstream cost); wrk (one thread, a few connections, Lua scripts for
//! varying headers and bodies) pinned to core 1, on 127.0.0.1. Each case runs on its own Envoy:
//! one request checked for 200, a warm-up run, then a measured run bounded in time. Every case
//! runs once per round and the rounds interleave them, so drift of a loaded machine hits all
//! cases alike; figures are medians over rounds, relative to the baseline of the same round.
//!
//! - [`cases`]: the cases and their configs; [`tokens`]: keys and JWTs; [`load`]: Envoy + wrk +
//!   `/proc`; [`memory`]: one worker against five, to split a filter's RSS; [`fuel`]: the
//!   wasmtime part; [`report`]: medians, tables, targets.

pub mod cases;
pub mod fuel;
pub mod load;
pub mod memory;
pub mod report;
pub mod tokens;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

use cases::{Case, Inputs, BASELINE, BASELINE_POST, TRIVIAL};
use load::Load;
use report::{MemoryResults, Results};

/// Which parts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Envoy and fuel.
    Both,
    /// Only the fuel table (`--fuel`).
    FuelOnly,
    /// Only Envoy (`--no-fuel`).
    EnvoyOnly,
}

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds (`--rounds`, default 3).
    pub rounds: usize,
    /// wrk settings (`--duration` seconds, default 3; `--connections`, default 8).
    pub load: Load,
    /// `--case <substring>` (repeatable): run only matching cases (baselines and the trivial
    /// filter always run, as the figures are relative to them).
    pub filters: Vec<String>,
    /// `--quick`: one round of 1 s, for a smoke run.
    pub quick: bool,
    /// Which parts run.
    pub parts: Parts,
    /// Where the report goes (`--out`, default `docs/benchmarks.md`); written only by a run of
    /// every case and both parts.
    pub out: PathBuf,
    /// Requests per fuel case (`--fuel-requests`, default 3); more make a longer run to profile.
    pub fuel_requests: usize,
}

const USAGE: &str = "usage: bench [--rounds N] [--duration SECONDS] [--connections N] [--case SUBSTRING]... \
                     [--quick] [--fuel | --no-fuel] [--fuel-requests N] [--out FILE]";

impl Options {
    /// Parses `std::env::args`-style arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options> {
        let mut options = Options {
            rounds: 3,
            load: Load { duration: 3, warmup: 1, connections: 8 },
            filters: Vec::new(),
            quick: false,
            parts: Parts::Both,
            out: crate::e2e::workspace_root().join("docs/benchmarks.md"),
            fuel_requests: 3,
        };
        let mut args = args.into_iter();
        let mut rounds = None;
        let mut duration = None;
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value\n{USAGE}"));
            match arg.as_str() {
                "--rounds" => rounds = Some(value("--rounds")?.parse().context("--rounds: a number")?),
                "--duration" => duration = Some(value("--duration")?.parse().context("--duration: whole seconds")?),
                "--connections" => options.load.connections = value("--connections")?.parse()?,
                "--case" => options.filters.push(value("--case")?),
                "--out" => options.out = PathBuf::from(value("--out")?),
                "--quick" => options.quick = true,
                "--fuel-requests" => {
                    options.fuel_requests = value("--fuel-requests")?.parse().context("--fuel-requests: a number")?;
                }
                "--fuel" => options.parts = Parts::FuelOnly,
                "--no-fuel" => options.parts = Parts::EnvoyOnly,
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument `{other}`\n{USAGE}"),
            }
        }
        if options.quick {
            options.rounds = 1;
            options.load.duration = 1;
        }
        options.rounds = rounds.unwrap_or(options.rounds);
        options.load.duration = duration.unwrap_or(options.load.duration);
        if options.rounds == 0 || options.load.duration == 0 || options.fuel_requests == 0 {
            bail!("--rounds, --duration and --fuel-requests must be at least 1");
        }
        Ok(options)
    }

    fn selected(&self, case: &Case) -> bool {
        self.filters.is_empty()
            || [BASELINE, BASELINE_POST, TRIVIAL].contains(&case.name.as_str())
            || self.filters.iter().any(|f| case.name.contains(f.as_str()))
    }
}

/// Seconds a case run takes besides wrk: Envoy start (V8 compiles the modules), check, stop.
const START_STOP_SECS: u32 = 3;
/// Seconds the fuel part takes (cranelift compiles each module once more, with fuel).
const FUEL_SECS: u32 = 90;

/// Runs the bench; prints the tables and writes the report.
pub fn run(options: &Options) -> Result<()> {
    let root = crate::e2e::workspace_root();
    let dist = crate::e2e::dist_dir();
    let bundle = dist.join("gateway.wasm").is_file();
    if !bundle {
        println!("gateway bundle: skipped (dist/gateway.wasm is not built)");
    }
    let envoy = options.parts != Parts::FuelOnly;
    let fuel = options.parts != Parts::EnvoyOnly;
    let minted = Instant::now();
    let mut inputs = Inputs::new(&root, envoy)?;
    let mut cases: Vec<Case> = cases::all(&inputs, bundle)?.into_iter().filter(|c| options.selected(c)).collect();
    eprintln!("keys and tokens minted in {:.1} s", minted.elapsed().as_secs_f64());

    let per_run = options.load.warmup + options.load.duration + START_STOP_SECS;
    let memory_runs = if envoy { memory_cases(&cases).len() as u32 * options.rounds as u32 * 2 } else { 0 };
    let estimate = if envoy { cases.len() as u32 * options.rounds as u32 * per_run } else { 0 }
        + memory_runs * START_STOP_SECS
        + if fuel { FUEL_SECS } else { 0 };
    println!(
        "bench: {} cases x {} rounds x ({} s warm-up + {} s measured + ~{START_STOP_SECS} s start/stop) \
         + {memory_runs} memory starts{}: estimated {}m{:02}s",
        cases.len(),
        options.rounds,
        options.load.warmup,
        options.load.duration,
        if fuel { format!(" + ~{FUEL_SECS} s fuel") } else { String::new() },
        estimate / 60,
        estimate % 60
    );

    let mut envoy_md = String::new();
    if envoy {
        ensure_wrk()?;
        if cases.iter().any(|c| c.name.starts_with("native header_mutation") || c.name.starts_with("native lua")) {
            copy_security_headers(&mut inputs, bundle)?;
            cases = cases::all(&inputs, bundle)?.into_iter().filter(|c| options.selected(c)).collect();
        }
        let results = run_rounds(&cases, options)?;
        let summaries = report::summarize(&cases, &results);
        let memory_cases = memory_cases(&cases);
        let memory = report::memory_rows(&memory_cases, &run_memory(&memory_cases, options.rounds));
        let table = report::envoy_table(&summaries, options.load.connections);
        let memory_table = report::memory_table(&memory);
        let targets = report::targets_table(&summaries, &memory, &dist);
        println!("\n{table}\n### Memory\n\n{memory_table}\n### Targets\n\n{targets}");
        envoy_md = format!(
            "{}\n{table}\n{}\n{memory_table}\n### Targets (issue #9 and the filters' issues)\n\n{targets}",
            method(options),
            memory_method()
        );
    }
    let mut fuel_md = String::new();
    if fuel {
        let mut rows = Vec::new();
        let mut fuel_cases: Vec<Case> = cases::all(&inputs, bundle)?;
        fuel_cases.extend(cases::fuel_extra(&inputs));
        for case in fuel_cases.iter().filter(|c| c.fuel && options.selected(c)) {
            match fuel::measure(case, options.fuel_requests) {
                Ok(row) => rows.push(row),
                Err(e) => eprintln!("fuel: {}: {e:#}", case.name),
            }
        }
        let table = report::fuel_table(&rows);
        println!("\n### Fuel per request (wasmtime, deterministic)\n\n{table}");
        fuel_md = format!(
            "## Deterministic cost: wasmtime fuel per request\n\n\
             The same request through each filter in the test host (`tests/src/host`, wasmtime with \
             `consume_fuel`: about one unit per wasm instruction), request and response phases and \
             `on_log` included. First request: cold (caches empty); steady: the third identical \
             request. Crossings: calls from the filter to the host (proxy-wasm and WASI imports) and \
             from the host into the filter (callbacks, and the allocator the host calls to hand over \
             a header map or a property); in Envoy each costs about a microsecond, which fuel does \
             not show. Independent of the machine and its load; Envoy's V8 runs the same code, so a \
             change here is a change in work done.\n\n{table}"
        );
    }
    if options.filters.is_empty() && options.parts == Parts::Both {
        let doc = format!("# Benchmarks\n\n{}\n{envoy_md}\n{fuel_md}", header(options));
        if let Some(dir) = options.out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&options.out, doc).with_context(|| format!("writing {}", options.out.display()))?;
        println!("written to {}", options.out.display());
    } else {
        println!("(a subset ran: {} not written)", options.out.display());
    }
    Ok(())
}

fn ensure_wrk() -> Result<()> {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(_) => bail!("wrk not found: `apt-get install -y wrk` (make bench does it)"),
    }
}

/// The native security-headers equivalents set what the filter sets: read it from a real Envoy.
fn copy_security_headers(inputs: &mut Inputs, bundle: bool) -> Result<()> {
    let all = cases::all(inputs, bundle)?;
    let by_name = |name: &str| all.iter().find(|c| c.name == name).context("case missing");
    let with = load::response_headers(by_name("security-headers")?)?;
    let without = load::response_headers(by_name(BASELINE)?)?;
    let volatile = ["date", "content-length", "content-type"];
    inputs.headers_added = with
        .iter()
        .filter(|(k, v)| !volatile.contains(&k.as_str()) && !without.iter().any(|(k2, v2)| k2 == k && v2 == v))
        .cloned()
        .collect();
    inputs.headers_removed =
        without.iter().filter(|(k, _)| !with.iter().any(|(k2, _)| k2 == k)).map(|(k, _)| k.clone()).collect();
    eprintln!(
        "security-headers sets {} and removes {:?} on the bench request; the native cases do the same",
        inputs.headers_added.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "),
        inputs.headers_removed
    );
    Ok(())
}

fn run_rounds(cases: &[Case], options: &Options) -> Result<Results> {
    let scripts = std::env::temp_dir().join(format!("palisade-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scripts)?;
    let started = Instant::now();
    let mut results = Results::new();
    for round in 0..options.rounds {
        // Each round starts at another case, so no case always runs first or last.
        let offset = round * cases.len() / options.rounds;
        for i in 0..cases.len() {
            let case = &cases[(i + offset) % cases.len()];
            let sample = match load::run(case, options.load, &scripts) {
                Ok(sample) => {
                    println!(
                        "round {}/{} [{:>2}/{}] {:<40} {:>8.0} req/s {:>7.1} µs CPU/req  p50 {:>7.0} µs  p99 {:>7.0} µs  \
                         RSS {:>5.1} MiB{}",
                        round + 1,
                        options.rounds,
                        i + 1,
                        cases.len(),
                        case.name,
                        sample.rps,
                        sample.cpu_us,
                        sample.p50_us,
                        sample.p99_us,
                        sample.rss_kib as f64 / 1024.0,
                        if sample.non_2xx > 0 { format!("  {} non-2xx!", sample.non_2xx) } else { String::new() }
                    );
                    Some(sample)
                }
                Err(e) => {
                    println!("round {}/{} {}: FAILED: {e:#}", round + 1, options.rounds, case.name);
                    None
                }
            };
            results.entry(case.name.clone()).or_default().resize(round, None);
            results.entry(case.name.clone()).or_default().push(sample);
        }
    }
    let _ = std::fs::remove_dir_all(&scripts);
    eprintln!("Envoy part took {:.0} s", started.elapsed().as_secs_f64());
    Ok(results)
}

/// The baselines and the first case of each set of wasm modules (the memory part measures each
/// set once).
fn memory_cases(cases: &[Case]) -> Vec<Case> {
    let mut seen: Vec<Vec<&str>> = Vec::new();
    let mut out = Vec::new();
    for case in cases {
        let set = case.wasm_files();
        let baseline = [BASELINE, BASELINE_POST].contains(&case.name.as_str());
        let wasm_only = !set.is_empty() && set.len() == case.filters.len();
        if baseline || (wasm_only && !seen.contains(&set)) {
            seen.push(set);
            out.push(case.clone());
        }
    }
    out
}

/// Each memory case once per round (rounds interleave as in the load part); a failed start is
/// reported and leaves the case out of that round.
fn run_memory(cases: &[Case], rounds: usize) -> MemoryResults {
    let started = Instant::now();
    let mut results = MemoryResults::new();
    for round in 0..rounds {
        for case in cases {
            let measured = match memory::measure(case) {
                Ok(pair) => {
                    println!(
                        "memory {}/{rounds} {:<40} 1 worker: RSS {:>6.1} MiB, live {:>6.1} MiB; {} workers: RSS {:>6.1} MiB, \
                         live {:>6.1} MiB",
                        round + 1,
                        case.name,
                        memory::rss(&pair.one) / 1024.0,
                        memory::live(&pair.one) / 1024.0,
                        memory::WORKERS,
                        memory::rss(&pair.many) / 1024.0,
                        memory::live(&pair.many) / 1024.0,
                    );
                    Some(pair)
                }
                Err(e) => {
                    println!("memory {}/{rounds} {}: FAILED: {e:#}", round + 1, case.name);
                    None
                }
            };
            let entry = results.entry(case.name.clone()).or_default();
            entry.resize(round, None);
            entry.push(measured);
        }
    }
    eprintln!("memory part took {:.0} s", started.elapsed().as_secs_f64());
    results
}

fn memory_method() -> String {
    format!(
        "## Memory: one more VM, and loading a module\n\n\
         The RSS column above, with one worker, holds two costs. Envoy's V8 runs with Liftoff off \
         (proxy-wasm-cpp-host's `src/v8/v8.cc`), so each module is compiled whole by TurboFan when it \
         loads, once per filter and process: the code stays, and Envoy's allocator (tcmalloc) keeps much \
         of the compiler's freed memory; the first wasm filter also starts V8. Each worker then holds one \
         VM per filter. To split them, every case below ran on an Envoy with one worker and on one with \
         {workers}, each sent the case's first request {requests} times on new connections, then read \
         `VmRSS` and the live heap (tcmalloc `allocated`, admin `/memory`). **One more VM** = what the \
         {more} further workers added, minus what they add with no filter, per worker and wasm filter. \
         Medians over rounds.\n",
        workers = memory::WORKERS,
        requests = memory::REQUESTS,
        more = memory::WORKERS - 1,
    )
}

fn header(options: &Options) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or_else(|| "unknown CPU".to_string(), |l| l.trim_start_matches([' ', '\t', ':']).to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = read("/proc/meminfo")
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .map_or(String::new(), |kib| format!(", {:.1} GiB RAM", kib.parse::<f64>().unwrap_or(0.0) / 1048576.0));
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "Generated by `make bench` ({}) on {date}.\n\n\
         - Machine: {cpu}, {cores} cores{memory}, Linux {}\n\
         - Envoy: {}\n\
         - Rounds: {}, measured {} s per case per round after a {} s warm-up, {} connections{}\n",
        if options.quick { "`--quick`: a smoke run, figures not meaningful" } else { "full run" },
        read("/proc/sys/kernel/osrelease").trim(),
        load::envoy_version(),
        options.rounds,
        options.load.duration,
        options.load.warmup,
        options.load.connections,
        if options.quick { " (**quick run**)" } else { "" },
    )
}

fn method(options: &Options) -> String {
    format!(
        "## Envoy, side by side with its native filters\n\n\
         Method:\n\n\
         - One Envoy per case per round, `--concurrency 1`, pinned to core {envoy_core}; the route is a \
         `direct_response` 200 (no upstream cost). wrk 4.1 (Debian) `-t1 -c{connections}` pinned to core \
         {wrk_core}, on 127.0.0.1, Lua scripts for bodies and varying headers.\n\
         - Each run: one request checked for 200, a {warmup} s warm-up, {duration} s measured. The {rounds} \
         round(s) interleave every case; figures are medians, spread min–max over rounds.\n\
         - CPU = Envoy's utime + stime (`/proc/<pid>/stat`, all threads) over the measured run / requests; \
         **added** = minus the same round's baseline (`{BASELINE}` for header-only requests, \
         `{BASELINE_POST}` for the 4 KiB JSON body). RSS = Envoy's VmRSS after the run.\n\
         - JWT: `uncached` = cache off (`cache.enabled: false`; native: no `jwt_cache_config`), every request \
         verifies one token; `cached` = one token; `mix` = 1,000 tokens (500 ES256, 500 RS256) used 100 \
         times each, 10 interleaved at a time, so 1% of requests carry a new token (native: \
         `jwt_cache_size: 1024`).\n\
         - Native header cases set exactly what security-headers sets on the same request (read from a real \
         Envoy first). Authz: 20 policies (4 DENY, 16 ALLOW on paths, methods, headers, request \
         principals), the request matches only the last; native RBAC (DENY + ALLOW filters) is generated \
         from the same list, principals as `jwt_authn` metadata matchers.\n\
         - Rate limits never reject (10^9 tokens/s); 10k keys cycle through `x-client` (native: a wildcard \
         descriptor, a bucket per value, `max_dynamic_descriptors: 20000`).\n\
         - POST cases end with Envoy's `buffer` filter before the router (baseline included): otherwise the \
         direct response precedes the body and Envoy closes every connection.\n\
         - RSS: with one worker, a filter's RSS includes loading its module (next section).\n",
        envoy_core = load::ENVOY_CORE,
        wrk_core = load::WRK_CORE,
        connections = options.load.connections,
        warmup = options.load.warmup,
        duration = options.load.duration,
        rounds = options.rounds,
    )
}
