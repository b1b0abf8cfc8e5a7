//! Medians and spread over rounds, the Markdown tables, and the targets as ratios.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::cases::{Case, BASELINE, BASELINE_POST, BUNDLE_GET, BUNDLE_POST, TRIVIAL};
use super::fuel::FuelRow;
use super::load::Sample;
use super::memory::{self, Pair};

/// Every sample of a case, one per round (`None`: that run failed).
pub type Results = BTreeMap<String, Vec<Option<Sample>>>;

/// Memory footprints of a case, one per round (`None`: that start failed).
pub type MemoryResults = BTreeMap<String, Vec<Option<Pair>>>;

/// A case's rounds, each paired with its baseline's of the same round; rounds where either
/// failed are left out.
fn with_baseline<'a, T>(results: &'a BTreeMap<String, Vec<Option<T>>>, case: &Case) -> Vec<(&'a T, &'a T)> {
    let (Some(own), Some(base)) = (results.get(&case.name), results.get(case.baseline)) else { return Vec::new() };
    own.iter().zip(base).filter_map(|(c, b)| Some((c.as_ref()?, b.as_ref()?))).collect()
}

/// One case's memory, medians over rounds (see [`memory`]).
#[derive(Debug, Clone)]
pub struct MemoryRow {
    /// The case.
    pub name: String,
    /// Wasm filters in the case.
    pub filters: usize,
    /// RSS with one worker minus the baseline's, MiB.
    pub rss_added: f64,
    /// Live heap with one worker minus the baseline's, MiB.
    pub live_added: f64,
    /// RSS of one more VM (per further worker and filter), MiB: median, min, max.
    pub vm_rss: (f64, f64, f64),
    /// Live heap of one more VM, MiB.
    pub vm_live: f64,
}

/// Medians of each measured case against its baseline's footprint of the same round.
pub fn memory_rows(cases: &[Case], results: &MemoryResults) -> Vec<MemoryRow> {
    let mut rows = Vec::new();
    for case in cases {
        let n = case.wasm_filters();
        let pairs = with_baseline(results, case);
        if n == 0 || pairs.is_empty() {
            continue;
        }
        let each = |f: &dyn Fn(&Pair, &Pair) -> f64| pairs.iter().map(|(c, b)| f(c, b)).collect::<Vec<_>>();
        let mib = |f: &dyn Fn(&Pair, &Pair) -> f64| median(&each(f));
        let vm_rss = each(&|c, b| memory::per_worker_vm(c, b, n, memory::rss));
        let (lo, hi) = min_max(&vm_rss);
        rows.push(MemoryRow {
            name: case.name.clone(),
            filters: n,
            rss_added: mib(&|c, b| (memory::rss(&c.one) - memory::rss(&b.one)) / 1024.0),
            live_added: mib(&|c, b| (memory::live(&c.one) - memory::live(&b.one)) / 1024.0),
            vm_rss: (median(&vm_rss), lo, hi),
            vm_live: mib(&|c, b| memory::per_worker_vm(c, b, n, memory::live)),
        });
    }
    rows
}

/// The memory table.
pub fn memory_table(rows: &[MemoryRow]) -> String {
    let mut md = String::from(
        "| case | wasm filters | RSS added, 1 worker | live heap added, 1 worker | one more VM (per further worker and filter): RSS, median (min–max) | its live heap |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} MiB | {:.1} MiB | {:.2} MiB ({:.2} – {:.2}) | {:.2} MiB |",
            r.name, r.filters, r.rss_added, r.live_added, r.vm_rss.0, r.vm_rss.1, r.vm_rss.2, r.vm_live
        );
    }
    md
}

/// A case summarised over rounds, each figure relative to its baseline in the same round.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The case.
    pub name: String,
    /// Rounds with a sample of both the case and its baseline.
    pub rounds: usize,
    /// req/s ratio to the baseline: median.
    pub ratio: f64,
    /// Added CPU µs/request: median, min, max.
    pub added: (f64, f64, f64),
    /// Absolute CPU µs/request (median).
    pub cpu: f64,
    /// Absolute req/s (median).
    pub rps: f64,
    /// Median p50 and p99 latency, µs.
    pub p50: f64,
    /// p99.
    pub p99: f64,
    /// Median RSS, MiB, and RSS above the baseline's, MiB.
    pub rss_mib: f64,
    /// RSS minus the baseline's RSS (median), MiB.
    pub rss_added_mib: f64,
    /// Non-2xx responses and socket errors over all rounds.
    pub non_2xx: u64,
    /// Socket errors.
    pub socket_errors: u64,
    /// Wasm filters in the case.
    pub wasm_filters: usize,
    /// The case's `.wasm` files, joined (cases with the same set share an RSS target row).
    pub wasm_set: String,
    /// Most downstream connections Envoy accepted in one run (keep-alive check).
    pub connections: u64,
}

/// The median of a non-empty list (mean of the middle two for even lengths).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Summaries of every case that has at least one round with its baseline.
pub fn summarize(cases: &[Case], results: &Results) -> Vec<Summary> {
    let mut out = Vec::new();
    for case in cases {
        let pairs = with_baseline(results, case);
        if pairs.is_empty() {
            continue;
        }
        let of = |f: &dyn Fn(&Sample, &Sample) -> f64| pairs.iter().map(|(s, b)| f(s, b)).collect::<Vec<f64>>();
        let added = of(&|s, b| s.cpu_us - b.cpu_us);
        let (lo, hi) = min_max(&added);
        out.push(Summary {
            name: case.name.clone(),
            rounds: pairs.len(),
            ratio: median(&of(&|s, b| s.rps / b.rps)),
            added: (median(&added), lo, hi),
            cpu: median(&of(&|s, _| s.cpu_us)),
            rps: median(&of(&|s, _| s.rps)),
            p50: median(&of(&|s, _| s.p50_us)),
            p99: median(&of(&|s, _| s.p99_us)),
            rss_mib: median(&of(&|s, _| s.rss_kib as f64 / 1024.0)),
            rss_added_mib: median(&of(&|s, b| (s.rss_kib as f64 - b.rss_kib as f64) / 1024.0)),
            non_2xx: pairs.iter().map(|(s, _)| s.non_2xx).sum(),
            socket_errors: pairs.iter().map(|(s, _)| s.socket_errors).sum(),
            wasm_filters: case.wasm_filters(),
            wasm_set: case.wasm_files().join("+"),
            connections: pairs.iter().map(|(s, _)| s.connections).max().unwrap_or(0),
        });
    }
    out
}

fn latency(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// The main table; `connections`: wrk's connections (to flag runs where keep-alive broke).
pub fn envoy_table(summaries: &[Summary], connections: u32) -> String {
    let mut md = String::from(
        "| case | req/s vs baseline | added CPU µs/req, median (min–max) | p50 | p99 | RSS MiB | notes |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    for s in summaries {
        let baseline = s.name == BASELINE || s.name == BASELINE_POST;
        let (ratio, added) = if baseline {
            (format!("1.00 ({:.0} req/s)", s.rps), format!("0 (baseline: {:.1} µs/req)", s.cpu))
        } else {
            (format!("{:.2}", s.ratio), format!("{:.1} ({:.1}–{:.1})", s.added.0, s.added.1, s.added.2))
        };
        let mut notes = Vec::new();
        if s.non_2xx > 0 {
            notes.push(format!("{} non-2xx: NOT the common path", s.non_2xx));
        }
        if s.connections > 4 * u64::from(connections) + 2 {
            notes.push(format!("{} connections: keep-alive broken", s.connections));
        }
        if s.socket_errors > 0 {
            notes.push(format!("{} socket errors", s.socket_errors));
        }
        let _ = writeln!(
            md,
            "| {} | {ratio} | {added} | {} | {} | {:.1} | {} |",
            s.name,
            latency(s.p50),
            latency(s.p99),
            s.rss_mib,
            notes.join("; ")
        );
    }
    md
}

struct Target {
    what: String,
    measured: String,
    limit: String,
    pass: Option<bool>,
}

fn find<'a>(summaries: &'a [Summary], name: &str) -> Option<&'a Summary> {
    summaries.iter().find(|s| s.name == name)
}

/// The targets, each as a ratio or figure with pass/fail (`n/a` when a case is missing).
pub fn targets_table(summaries: &[Summary], memory: &[MemoryRow], dist: &Path) -> String {
    let mut targets = Vec::new();
    let mut ratio_target = |what: String, num: Option<&Summary>, den: Option<&Summary>, limit: f64| {
        let (measured, pass) = match (num, den) {
            (Some(n), Some(d)) if d.added.0 > 0.0 => {
                let r = n.added.0 / d.added.0;
                (format!("{r:.2}x ({:.1} / {:.1} µs)", n.added.0, d.added.0), Some(r <= limit))
            }
            _ => ("n/a".to_string(), None),
        };
        targets.push(Target { what, measured, limit: format!("≤ {limit}x"), pass });
    };
    let trivial = find(summaries, TRIVIAL);
    for name in [
        "security-headers",
        "jwt-authn cached",
        "authz 20 policies",
        "rate-limit 1 key",
        "rate-limit 10k keys",
        "request-validation GET",
        "request-validation POST 4 KiB",
        "field-encryption POST 4 KiB, 3 fields",
    ] {
        ratio_target(format!("{name}: CPU vs trivial wasm filter"), find(summaries, name), trivial, 1.5);
    }
    ratio_target(
        "jwt-authn mix 1000x100 vs native jwt_authn mix (cached)".into(),
        find(summaries, "jwt-authn mix 1000x100"),
        find(summaries, "native jwt_authn mix 1000x100"),
        1.2,
    );
    for alg in ["ES256", "RS256"] {
        ratio_target(
            format!("jwt-authn {alg} uncached vs native uncached"),
            find(summaries, &format!("jwt-authn {alg} uncached")),
            find(summaries, &format!("native jwt_authn {alg} uncached")),
            5.0,
        );
    }
    // Issue #9's bundle targets are about the common path (GET, cached JWT); the POST 4 KiB
    // row shows what the body layers add on top.
    let bundles = [("GET cached JWT", find(summaries, BUNDLE_GET)), ("POST 4 KiB", find(summaries, BUNDLE_POST))];
    for (request, bundle) in bundles {
        ratio_target(format!("gateway bundle, {request}: CPU vs trivial wasm filter"), bundle, trivial, 2.0);
    }
    let mut absolute = |what: &str, case: Option<&Summary>, limit: f64| {
        let (measured, pass) = match case {
            Some(c) => (format!("{:.1} µs", c.added.0), Some(c.added.0 <= limit)),
            None => ("n/a".into(), None),
        };
        targets.push(Target { what: what.into(), measured, limit: format!("≤ {limit} µs"), pass });
    };
    absolute("request-validation: 4 KiB JSON body, added CPU", find(summaries, "request-validation POST 4 KiB"), 20.0);
    absolute(
        "field-encryption: 3 fields of 4 KiB, added CPU",
        find(summaries, "field-encryption POST 4 KiB, 3 fields"),
        25.0,
    );
    for (request, bundle) in bundles {
        let what = format!("gateway bundle, {request}: throughput vs no filter");
        targets.push(match bundle {
            Some(b) => Target {
                what,
                measured: format!("{:.2}x", b.ratio),
                limit: "≥ 0.6x".into(),
                pass: Some(b.ratio >= 0.6),
            },
            None => Target {
                what,
                measured: if dist.join("gateway.wasm").is_file() {
                    "n/a (case not run)".into()
                } else {
                    "n/a (dist/gateway.wasm not built)".into()
                },
                limit: "≥ 0.6x".into(),
                pass: None,
            },
        });
    }
    for r in memory {
        targets.push(Target {
            what: format!("RSS of one more VM (each further worker), not the module load: `{}`", r.name),
            measured: format!("{:.2} MiB, max {:.2} (live heap {:.2} MiB)", r.vm_rss.0, r.vm_rss.2, r.vm_live),
            limit: "≤ 4 MiB".into(),
            pass: Some(r.vm_rss.2 <= 4.0),
        });
    }
    let mut seen = Vec::new();
    for s in summaries.iter().filter(|s| s.wasm_filters > 0) {
        if seen.contains(&s.wasm_set) {
            continue;
        }
        seen.push(s.wasm_set.clone());
        // With one worker this includes loading the module: V8's start-up for the first wasm
        // filter, TurboFan's code and the compiler memory the allocator keeps (see `memory`).
        let per_filter = s.rss_added_mib / s.wasm_filters as f64;
        targets.push(Target {
            what: format!(
                "RSS per filter VM, module load included: `{}` (RSS − baseline RSS) / {} filter(s), 1 worker",
                s.name, s.wasm_filters
            ),
            measured: format!("{per_filter:.1} MiB"),
            limit: "≤ 4 MiB".into(),
            pass: Some(per_filter <= 4.0),
        });
    }
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(dist)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let product = name.ends_with(".wasm") && name != "probe.wasm" && name != "trivial.wasm";
                    product.then(|| Some((name, e.metadata().ok()?.len()))).flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    for (name, bytes) in sizes {
        targets.push(Target {
            what: format!("size of dist/{name}"),
            measured: format!("{:.0} KB ({bytes} bytes)", bytes as f64 / 1000.0),
            limit: "≤ 300 KB".into(),
            pass: Some(bytes <= 300_000),
        });
    }
    let mut md = String::from("| target | measured | limit | result |\n|---|---:|---:|---|\n");
    for t in targets {
        let result = match t.pass {
            Some(true) => "pass",
            Some(false) => "**fail**",
            None => "n/a",
        };
        let _ = writeln!(md, "| {} | {} | {} | {result} |", t.what, t.measured, t.limit);
    }
    md
}

/// The fuel table.
pub fn fuel_table(rows: &[FuelRow]) -> String {
    let trivial = rows.iter().find(|r| r.name == TRIVIAL).map(|r| r.steady).filter(|&f| f > 0);
    let mut md = String::from(
        "| case | filters | fuel, first request | fuel/request, steady | steady vs trivial | host calls + guest calls, steady | outcome |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let ratio = trivial.map_or_else(|| "n/a".to_string(), |t| format!("{:.0}x", r.steady as f64 / t as f64));
        let c = r.crossings;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {ratio} | {} + {} | {} |",
            r.name, r.plugins, r.first, r.steady, c.host_calls, c.guest_calls, r.outcome
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
