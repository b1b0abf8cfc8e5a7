//! The echo upstream as a process: `echo --port 8080` answers every request on 127.0.0.1:8080
//! with the request it received, as JSON (see `palisade_tests::echo`). Runs until SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use palisade_tests::echo::EchoServer;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match args.as_slice() {
        [] => Ok(8080),
        [flag, port] if flag == "--port" => port.parse::<u16>().map_err(|_| format!("not a port: {port}")),
        _ => Err("usage: echo [--port PORT]   (127.0.0.1 only; 0 picks a free port)".to_string()),
    };
    let port = match port {
        Ok(port) => port,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let server = match EchoServer::bind(port) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("echo: cannot listen on 127.0.0.1:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("echo upstream on http://{}", server.addr());
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(err) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("echo: cannot handle signal {signal}: {err}");
            return ExitCode::FAILURE;
        }
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    ExitCode::SUCCESS
}
