//! `make demo`: makes fresh keys, certificates and tokens, starts the echo upstream and Envoy with
//! envoy-config/demo.yaml, prints the walkthrough, then runs until Ctrl-C. `--check` runs the
//! walkthrough only and exits non-zero if any step got another outcome than expected or a check
//! failed; `--free-ports` runs on free ports instead of the file's (the tests use
//! `--check --free-ports`); `--prepare` only makes the material in envoy-config/demo/generated/
//! and prints the curl commands (for the Docker demo, envoy-config/docker-compose.yaml).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use palisade_tests::demo::{self, steps, Demo, Ports};

const USAGE: &str = "usage: demo [--check] [--free-ports] | demo --prepare";

fn main() -> ExitCode {
    let mut check = false;
    let mut prepare = false;
    let mut ports = Ports::Fixed;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "--free-ports" => ports = Ports::Free,
            "--prepare" => prepare = true,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if prepare {
        return if check || ports == Ports::Free {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        } else {
            prepare_only()
        };
    }
    // Handle Ctrl-C from the start, so Envoy is always stopped by PID on the way out.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(err) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("demo: cannot handle signal {signal}: {err}");
            return ExitCode::FAILURE;
        }
    }
    let mut demo = match Demo::start(ports) {
        Ok(demo) => demo,
        Err(err) => {
            eprintln!("demo: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (main, mtls) = demo.addrs();
    let envoy_url = format!("http://{main}");
    println!(
        "Palisade demo: Envoy {envoy_url} and https://{mtls} (mTLS), admin http://{}, echo upstream http://{}",
        demo.envoy.admin_addr(),
        demo.echo.addr()
    );
    println!("Keys, certificates and tokens of this run: {}", relative(&demo.material.dir));
    println!("Run the commands from the repository root (they read the tokens and certificates there).");
    let mut out = std::io::stdout().lock();
    let results = match demo.walkthrough(&steps::walkthrough(&demo.material), &mut out) {
        Ok(results) => results,
        Err(err) => {
            eprintln!("demo: writing the walkthrough: {err}");
            return ExitCode::FAILURE;
        }
    };
    let failed = results.iter().filter(|r| !r.passed()).count();
    let _ = writeln!(
        out,
        "\nwalkthrough: {} of {} steps got their expected outcome",
        results.len() - failed,
        results.len()
    );
    drop(out);
    if check {
        if failed > 0 {
            eprintln!("---- envoy log ----\n{}---- end of envoy log ----", demo.envoy.log());
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    println!("\nEnvoy keeps running: try the curl commands above from the repository root, or your own.");
    println!("Stats: curl -s http://{}/stats | grep wasmcustom. Press Ctrl-C to stop.", demo.envoy.admin_addr());
    while !stop.load(Ordering::SeqCst) {
        if let Some(status) = demo.envoy.exited() {
            eprintln!("demo: envoy exited ({status}); its log:\n{}", demo.envoy.log());
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nstopping Envoy (pid {})", demo.envoy.pid());
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `--prepare`: fresh material for the Docker demo, and the commands to try against it.
fn prepare_only() -> ExitCode {
    let material = match demo::prepare() {
        Ok(material) => material,
        Err(err) => {
            eprintln!("demo: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("Keys, certificates and tokens: {} (fresh; tokens valid 12 h)", relative(&material.dir));
    println!("Start the gateway (needs dist/*.wasm and target/debug/echo: `make demo-prepare` builds both):");
    println!("  docker compose -f envoy-config/docker-compose.yaml up");
    println!("Then, from the repository root:");
    let mut out = std::io::stdout().lock();
    if let Err(err) = demo::print_commands(&material, &mut out) {
        eprintln!("demo: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A path relative to the repository root (where the printed commands run), when inside it.
fn relative(path: &std::path::Path) -> String {
    let root = palisade_tests::e2e::workspace_root();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}
