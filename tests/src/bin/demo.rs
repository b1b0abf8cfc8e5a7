//! `make demo`: starts the echo upstream and Envoy with envoy-config/demo.yaml, prints the
//! walkthrough, then runs until Ctrl-C. `--check` runs the walkthrough only and exits non-zero if
//! any step got another status than expected; `--free-ports` runs on free ports instead of the
//! file's (the tests use `--check --free-ports`).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use palisade_tests::demo::{steps, Demo, Ports};

const USAGE: &str = "usage: demo [--check] [--free-ports]";

fn main() -> ExitCode {
    let mut check = false;
    let mut ports = Ports::Fixed;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "--free-ports" => ports = Ports::Free,
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
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
    let envoy_url = demo.envoy.url("");
    println!(
        "Palisade demo: Envoy {envoy_url} (admin http://{}), echo upstream http://{}",
        demo.envoy.admin_addr(),
        demo.echo.addr()
    );
    let mut out = std::io::stdout().lock();
    let results = match demo.walkthrough(&steps::walkthrough(), &mut out) {
        Ok(results) => results,
        Err(err) => {
            eprintln!("demo: writing the walkthrough: {err}");
            return ExitCode::FAILURE;
        }
    };
    let failed = results.iter().filter(|r| !r.passed()).count();
    let _ =
        writeln!(out, "\nwalkthrough: {} of {} steps got their expected status", results.len() - failed, results.len());
    drop(out);
    if check {
        if failed > 0 {
            eprintln!("---- envoy log ----\n{}---- end of envoy log ----", demo.envoy.log());
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    println!("\nEnvoy keeps running: try the curl commands above, or your own against {envoy_url}/.");
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
