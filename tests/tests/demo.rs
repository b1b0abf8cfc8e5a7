//! `make demo`'s walkthrough passes: the demo binary in `--check` mode, on free ports (the same
//! envoy-config/demo.yaml with its admin, listener and echo ports moved), so it runs beside a
//! running demo and in parallel with other tests.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_walkthrough_gets_every_expected_status() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--check", "--free-ports"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());

    // Bounded: the demo starts Envoy (ready within 30 s) and sends a few requests.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());

    assert_eq!(status.map(|s| s.success()), Some(true), "demo --check failed ({status:?}):\n{out}\n{err}");
    assert!(out.contains("$ curl -si"), "the walkthrough prints curl commands:\n{out}");
    assert!(out.contains("upstream saw: GET /hello?lang=en"), "{out}");
    assert!(!out.contains("MISMATCH"), "{out}");
}
