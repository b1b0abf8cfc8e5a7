//! `make demo`'s gateway: the demo binary's `--check` walkthrough passes on free ports (the same
//! envoy-config/demo.yaml with its admin, listener and echo ports and its generated files moved,
//! so it runs beside a running demo and in parallel with other tests); demo.yaml passes
//! `envoy --mode validate`; the Docker compose file runs that same demo.yaml.

// Test helpers too may unwrap: a panic here is a failed test (clippy.toml allows it only in #[test]).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use palisade_tests::demo::material::{Material, FE_KEY_ENV, GENERATED};
use palisade_tests::demo::{self, CONFIG};
use palisade_tests::e2e::{validate, workspace_root};
use serde_json::Value;

const COMPOSE: &str = "envoy-config/docker-compose.yaml";

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(workspace_root().join(path)).unwrap()).unwrap()
}

/// The steps of a walkthrough transcript, split on their `== N. title` lines.
fn step<'a>(out: &'a str, title: &str) -> &'a str {
    let start = out.find(&format!(". {title}\n")).unwrap_or_else(|| panic!("no step `{title}` in:\n{out}"));
    let rest = &out[start..];
    let end = rest[1..].find("\n== ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[test]
fn demo_walkthrough_gets_every_expected_outcome() {
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

    // Bounded: the demo starts Envoy (ready within 30 s, JWKS within 20 s) and sends ~30 requests.
    let deadline = Instant::now() + Duration::from_secs(180);
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
    assert!(!out.contains("MISMATCH"), "{out}");
    assert!(out.contains("steps got their expected outcome"), "{out}");

    // The commands a reader copies: tokens read from their files, client certificates for mTLS.
    assert!(out.contains("$ curl -si"), "{out}");
    assert!(out.contains("\"authorization: Bearer $(cat target/palisade-e2e/demo-"), "{out}");
    let pays = step(&out, "The order-service pays");
    assert!(pays.contains("--cacert ") && pays.contains("/order-service.pem --key "), "{pays}");
    assert!(pays.contains("upstream saw: POST /api/v1/payments/42"), "{pays}");

    // The upstream saw ciphertexts, never alice's plaintext; she reads them back decrypted.
    let created = step(&out, "alice creates a user: the upstream sees ciphertext");
    assert!(created.contains("upstream saw: POST /api/users"), "{created}");
    assert!(created.contains(r#"body: {"email":"enc:d1:demo-users-1:"#), "{created}");
    assert!(created.contains(r#""name":"enc:v1:demo-users-1:"#), "{created}");
    let upstream_body = created.lines().find(|l| l.trim_start().starts_with("body:")).unwrap();
    assert!(!upstream_body.contains("alice@example.com"), "{created}");
    let read_back = step(&out, "alice reads the stored record back: decrypted");
    assert!(read_back.contains(r#""email":"alice@example.com""#), "{read_back}");
    let redacted = step(&out, "bob reads the same kind of record: redacted");
    let answer = redacted.lines().find(|l| l.trim_start().starts_with("body:")).unwrap();
    assert!(answer.contains(r#""email":"[redacted]""#) && !answer.contains("bob@example.com"), "{redacted}");

    // Limits, the wrong SAN, no certificate.
    assert!(step(&out, "alice runs out of her authenticated tier").contains("-> 429"), "{out}");
    assert!(step(&out, "Anonymous callers are limited per IP").contains("-> 429"), "{out}");
    assert!(step(&out, "Another workload of the mesh").contains("-> 403"), "{out}");
    assert!(
        step(&out, "No client certificate")
            .contains("-> no response (expected no response (handshake refused)): curl exited"),
        "{out}"
    );
}

#[test]
fn demo_yaml_passes_envoy_validate() {
    demo::prepare_for_validation().unwrap();
    validate(Path::new(CONFIG)).unwrap();
}

#[test]
fn docker_compose_runs_the_same_demo_yaml() {
    let compose = yaml(COMPOSE);
    let services = compose["services"].as_object().unwrap();
    let mut names: Vec<&String> = services.keys().collect();
    names.sort();
    assert_eq!(names, ["echo", "envoy"]);

    let envoy = &services["envoy"];
    let image = envoy["image"].as_str().unwrap();
    assert!(image.starts_with("envoyproxy/envoy:v1.40."), "{image}");
    let command: Vec<&str> = envoy["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let config = command.iter().position(|a| *a == "--config-path" || *a == "-c").map(|i| command[i + 1]);
    assert_eq!(config, Some(CONFIG), "{command:?}");

    // The repository root is mounted as the working directory, so demo.yaml's relative paths
    // (dist/*.wasm, envoy-config/demo/generated/*) resolve as they do natively.
    let compose_dir = workspace_root().join(COMPOSE).parent().unwrap().to_path_buf();
    for service in services.values() {
        let workdir = service["working_dir"].as_str().unwrap();
        let mounts: Vec<&str> = service["volumes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let root = mounts.iter().find_map(|m| m.strip_suffix(&format!(":{workdir}:ro"))).unwrap();
        assert_eq!(compose_dir.join(root).canonicalize().unwrap(), workspace_root().canonicalize().unwrap());
        // Host networking: demo.yaml's 127.0.0.1 addresses mean the same thing in both containers.
        assert_eq!(service["network_mode"], "host");
    }

    // The field-encryption key reaches Envoy from the file demo --prepare writes.
    let env_file = envoy["env_file"][0].as_str().unwrap();
    assert_eq!(compose_dir.join(env_file), workspace_root().join(GENERATED).join("demo.env"));
    let bootstrap = yaml(CONFIG);
    assert!(bootstrap.to_string().contains(&format!("\"host_env_keys\":[\"{FE_KEY_ENV}\"]")));

    // The echo listens where demo.yaml's echo cluster points.
    let echo_command: Vec<&str> =
        services["echo"]["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let clusters = bootstrap["static_resources"]["clusters"].as_array().unwrap();
    let echo = clusters.iter().find(|c| c["name"] == "echo").unwrap();
    let port = echo.pointer("/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value");
    assert_eq!(echo_command.last().map(|p| p.parse::<u64>().unwrap()), port.and_then(Value::as_u64));
    assert!(echo_command[0].ends_with("target/debug/echo"), "{echo_command:?}");
}

#[test]
fn prepared_commands_use_the_files_ports_and_generated_files() {
    let dir = workspace_root().join(format!("target/palisade-e2e/demo-prepare-{}", std::process::id()));
    let material = Material::generate(&dir).unwrap();
    let mut out = Vec::new();
    demo::print_commands(&material, &mut out).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let out = String::from_utf8(out).unwrap();

    assert!(out.contains("curl -si 'http://127.0.0.1:10000/public/hello?lang=en' -H 'origin: https://app.example.com'"));
    let prefix = format!("target/palisade-e2e/demo-prepare-{}", std::process::id());
    assert!(out.contains(&format!("\"authorization: Bearer $(cat {prefix}/tokens/alice.jwt)\"")), "{out}");
    assert!(
        out.contains(&format!(
            "curl -si --cacert {prefix}/ca.pem --cert {prefix}/order-service.pem --key {prefix}/order-service.key \
             -X POST https://127.0.0.1:10443/api/v1/payments/42"
        )),
        "{out}"
    );
    assert!(out.contains("(expect no response (handshake refused))"), "{out}");
}
