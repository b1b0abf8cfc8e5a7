//! The demo behind `make demo`: fresh keys, certificates and tokens ([`material`]), the echo
//! upstream in-process, Envoy with `envoy-config/demo.yaml` (the same file the tests validate and
//! Docker runs), and a walkthrough of curl exchanges with their results ([`steps`]).
//!
//! demo.yaml fixes the ports (main listener 10000, mTLS 10443, admin 9901, echo 8080) and names
//! the generated files relative to the repository root, so a reader can copy the curl commands.
//! With [`Ports::Free`] (the `--free-ports` flag, used by the tests) the demo loads the same file,
//! moves the admin and the listeners to free ports, points the `echo` cluster at the echo's free
//! port and the generated files at a folder of its own, so the check runs beside a running demo
//! and in parallel with other tests.

pub mod material;
pub mod steps;

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::e2e::{self, Body, E2eError, EchoServer, Envoy, EnvoyOptions, Response};
use material::{Material, MaterialError, FE_KEY_ENV, GENERATED};
use steps::{Check, Expect, Step, Target};

/// The demo's Envoy config, relative to the workspace root.
pub const CONFIG: &str = "envoy-config/demo.yaml";
/// The cluster in demo.yaml that is the echo upstream.
const ECHO_CLUSTER: &str = "echo";
/// The listeners the walkthrough talks to.
const MAIN_LISTENER: &str = "demo";
const MTLS_LISTENER: &str = "mtls";
/// jwt-authn's counter of JWKS fetches that succeeded.
const JWKS_FETCHED: &str = "wasmcustom.palisade.jwt_authn.jwks_fetch_ok";
/// How long the demo waits for jwt-authn's first JWKS fetch.
const JWKS_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Echo request headers not worth printing.
const QUIET_UPSTREAM_HEADERS: &[&str] = &["x-request-id", "x-envoy-expected-rq-timeout-ms", "content-length"];

/// Which ports the demo runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// The ports written in demo.yaml; Envoy runs the file as it is.
    Fixed,
    /// Free ports: demo.yaml with its admin, listener and echo ports replaced.
    Free,
}

/// Why the demo could not run.
#[derive(Debug)]
pub enum DemoError {
    /// demo.yaml could not be read.
    Read(PathBuf, io::Error),
    /// demo.yaml is not valid YAML.
    Yaml(serde_yaml_ng::Error),
    /// demo.yaml lacks something the demo needs.
    Config(&'static str),
    /// The keys, certificates or tokens could not be made.
    Material(MaterialError),
    /// The echo upstream could not bind its port.
    Echo(u16, io::Error),
    /// Envoy failed.
    Envoy(E2eError),
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Read(path, err) => write!(f, "reading {}: {err}", path.display()),
            DemoError::Yaml(err) => write!(f, "{CONFIG}: {err}"),
            DemoError::Config(what) => write!(f, "{CONFIG}: {what}"),
            DemoError::Material(err) => write!(f, "{err}"),
            DemoError::Echo(port, err) => {
                write!(f, "echo upstream on 127.0.0.1:{port}: {err} (is a demo already running? try --free-ports)")
            }
            DemoError::Envoy(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for DemoError {}

impl From<E2eError> for DemoError {
    fn from(err: E2eError) -> Self {
        DemoError::Envoy(err)
    }
}

impl From<MaterialError> for DemoError {
    fn from(err: MaterialError) -> Self {
        DemoError::Material(err)
    }
}

/// A running demo: stops Envoy (by PID) and the echo when dropped.
pub struct Demo {
    /// Envoy with demo.yaml.
    pub envoy: Envoy,
    /// The echo upstream.
    pub echo: EchoServer,
    /// The keys, certificates and tokens of this run.
    pub material: Material,
    /// A folder of this run's own (free ports), removed on drop.
    own_dir: Option<PathBuf>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The outcome of one step.
#[derive(Debug)]
pub struct StepResult {
    /// The step's title.
    pub title: String,
    /// What was expected.
    pub expected: Expect,
    /// The status received, `None` when the request got no response.
    pub status: Option<u16>,
    /// Checks that did not hold.
    pub failures: Vec<String>,
}

impl StepResult {
    /// Whether the step got its expected outcome and every check held.
    pub fn passed(&self) -> bool {
        let outcome = match self.expected {
            Expect::Status(status) => self.status == Some(status),
            Expect::NoResponse => self.status.is_none(),
        };
        outcome && self.failures.is_empty()
    }
}

/// Makes fresh material in envoy-config/demo/generated/ (for `demo --prepare` and Docker).
pub fn prepare() -> Result<Material, DemoError> {
    Ok(Material::generate(&e2e::workspace_root().join(GENERATED))?)
}

/// Makes sure demo.yaml can be validated: the generated files exist (made if missing, kept if
/// present) and Envoy, started from this process, gets the field-encryption key.
pub fn prepare_for_validation() -> Result<(), DemoError> {
    let material = Material::ensure(&e2e::workspace_root().join(GENERATED))?;
    set_env(&material);
    Ok(())
}

/// The listener addresses written in demo.yaml (`demo`, `mtls`).
pub fn fixed_addrs() -> Result<(SocketAddr, SocketAddr), DemoError> {
    let bootstrap = read_config()?;
    let addr = |name: &str| {
        let listeners = bootstrap.pointer("/static_resources/listeners")?.as_array()?;
        let listener = listeners.iter().find(|l| l["name"] == name)?;
        let socket = listener.pointer("/address/socket_address")?;
        let ip = socket["address"].as_str()?.parse().ok()?;
        Some(SocketAddr::new(ip, u16::try_from(socket["port_value"].as_u64()?).ok()?))
    };
    match (addr(MAIN_LISTENER), addr(MTLS_LISTENER)) {
        (Some(main), Some(mtls)) => Ok((main, mtls)),
        _ => Err(DemoError::Config("no listeners `demo` and `mtls` with socket addresses")),
    }
}

impl Demo {
    /// Makes fresh material, starts the echo upstream and Envoy with demo.yaml, and waits until
    /// Envoy is ready.
    pub fn start(ports: Ports) -> Result<Demo, DemoError> {
        let path = e2e::workspace_root().join(CONFIG);
        let mut bootstrap = read_config()?;
        let options = EnvoyOptions::default();
        match ports {
            Ports::Fixed => {
                let material = prepare()?;
                // Before any thread starts: Envoy inherits the key (demo.yaml's host_env_keys).
                set_env(&material);
                let port = echo_port(&mut bootstrap).and_then(|p| p.as_u64());
                let port = port
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or(DemoError::Config("no cluster `echo` with a socket address"))?;
                let echo = EchoServer::bind(port).map_err(|e| DemoError::Echo(port, e))?;
                let envoy = Envoy::start_file("demo", &path, &options)?;
                let demo = Demo { envoy, echo, material, own_dir: None };
                demo.wait_for_jwks()?;
                Ok(demo)
            }
            Ports::Free => {
                let own_dir = e2e::workspace_root().join(format!("target/palisade-e2e/demo-{}", std::process::id()));
                let material = Material::generate(&own_dir.join("generated"))?;
                set_env(&material);
                let echo = EchoServer::start().map_err(|e| DemoError::Echo(0, e))?;
                *echo_port(&mut bootstrap).ok_or(DemoError::Config("no cluster `echo` with a socket address"))? =
                    echo.port().into();
                free_ports(&mut bootstrap);
                move_generated(&mut bootstrap, &display_path(&material.dir));
                let envoy = Envoy::start_bootstrap("demo", &bootstrap, &options)?;
                let demo = Demo { envoy, echo, material, own_dir: Some(own_dir) };
                demo.wait_for_jwks()?;
                Ok(demo)
            }
        }
    }

    /// Waits (bounded) until jwt-authn has fetched the JWKS from Envoy's internal listener, so
    /// the first token of the walkthrough does not wait for keys. Envoy may serve its internal
    /// listener only after the filter's first attempt; jwt-authn retries every second.
    fn wait_for_jwks(&self) -> Result<(), DemoError> {
        let deadline = std::time::Instant::now() + JWKS_WAIT;
        while self.envoy.stats()?.counter(JWKS_FETCHED).unwrap_or(0) == 0 {
            if std::time::Instant::now() >= deadline {
                return Err(DemoError::Config("jwt-authn could not fetch the JWKS from the `jwks` listener"));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// The listener addresses (`demo`, `mtls`) of the running Envoy.
    pub fn addrs(&self) -> (SocketAddr, SocketAddr) {
        let main = self.envoy.listener_addr(MAIN_LISTENER).unwrap_or_else(|| self.envoy.addr());
        let mtls = self.envoy.listener_addr(MTLS_LISTENER).unwrap_or(main);
        (main, mtls)
    }

    /// Runs the steps in order, printing each exchange to `out`; returns each step's outcome.
    pub fn walkthrough(&self, steps: &[Step], out: &mut impl Write) -> io::Result<Vec<StepResult>> {
        let (main, mtls) = self.addrs();
        let mut results = Vec::new();
        let mut section = "";
        for (i, step) in steps.iter().enumerate() {
            if step.section != section {
                section = step.section;
                writeln!(out, "\n#### {section}")?;
            }
            writeln!(out, "\n== {}. {}", i + 1, step.title)?;
            writeln!(out, "   {}", step.explain)?;
            let command = curl_command(step, main, mtls, &self.material);
            writeln!(out, "   $ {}", command.display)?;
            let attempts = step.repeat_until.unwrap_or(1).max(1);
            let mut last = None;
            for attempt in 1..=attempts {
                last = Some(send(step, main, &command));
                let status = last.as_ref().and_then(|r| r.as_ref().ok()).map(|r| r.status);
                if attempts > 1 {
                    writeln!(out, "   attempt {attempt}: {}", status.map_or("no response".into(), |s| s.to_string()))?;
                }
                if matches!(step.expect, Expect::Status(s) if status == Some(s)) {
                    break;
                }
            }
            let (status, failures) = match last {
                Some(Ok(response)) => {
                    print_response(out, step, &response)?;
                    (Some(response.status), check(step, &response))
                }
                Some(Err(err)) => {
                    writeln!(out, "   -> no response (expected {}): {err}", step.expect)?;
                    (None, Vec::new())
                }
                None => (None, Vec::new()),
            };
            let result = StepResult { title: step.title.clone(), expected: step.expect, status, failures };
            if !result.passed() {
                writeln!(out, "   MISMATCH: expected {}", step.expect)?;
                for failure in &result.failures {
                    writeln!(out, "   MISMATCH: {failure}")?;
                }
            }
            results.push(result);
        }
        Ok(results)
    }
}

/// Prints the walkthrough's curl commands for the ports of demo.yaml (`demo --prepare`).
pub fn print_commands(material: &Material, out: &mut impl Write) -> Result<(), DemoError> {
    let (main, mtls) = fixed_addrs()?;
    let write_err = |e: io::Error| DemoError::Read(PathBuf::from("stdout"), e);
    let mut section = "";
    for (i, step) in steps::walkthrough(material).iter().enumerate() {
        if step.section != section {
            section = step.section;
            writeln!(out, "\n#### {section}").map_err(write_err)?;
        }
        let again = if step.repeat_until.is_some() { ", after repeating it" } else { "" };
        writeln!(out, "\n# {}. {} (expect {}{again})", i + 1, step.title, step.expect).map_err(write_err)?;
        writeln!(out, "{}", curl_command(step, main, mtls, material).display).map_err(write_err)?;
    }
    Ok(())
}

/// A step as a curl command: what is printed, and the arguments run for TLS steps.
struct CurlCommand {
    display: String,
    args: Vec<String>,
}

fn curl_command(step: &Step, main: SocketAddr, mtls: SocketAddr, material: &Material) -> CurlCommand {
    let request = &step.request;
    let mut display = vec!["curl".to_string(), "-si".to_string()];
    let mut args = vec!["-si".to_string(), "-S".to_string(), "--max-time".to_string(), "10".to_string()];
    let mut both = |display_arg: String, arg: String| {
        display.push(display_arg);
        args.push(arg);
    };
    let url = match &step.target {
        Target::Main => format!("http://{main}{}", request.path),
        Target::Mtls { client } => {
            let file = |name: &str| material.file(name);
            both("--cacert".into(), "--cacert".into());
            both(quote(&display_path(&file("ca.pem"))), path_arg(&file("ca.pem")));
            if let Some(client) = client {
                for (flag, ext) in [("--cert", "pem"), ("--key", "key")] {
                    let path = file(&format!("{client}.{ext}"));
                    both(flag.into(), flag.into());
                    both(quote(&display_path(&path)), path_arg(&path));
                }
            }
            format!("https://{mtls}{}", request.path)
        }
    };
    let has_body = !matches!(request.body, Body::Empty);
    if request.method != "GET" || has_body {
        both("-X".into(), "-X".into());
        both(request.method.clone(), request.method.clone());
    }
    both(quote(&url), url.clone());
    for (name, value) in &request.headers {
        both("-H".into(), "-H".into());
        both(quote(&format!("{name}: {value}")), format!("{name}: {value}"));
    }
    if let Some(token) = &step.token {
        both("-H".into(), "-H".into());
        both(
            format!("\"authorization: Bearer $(cat {})\"", display_path(&token.path)),
            format!("authorization: Bearer {}", token.value),
        );
    }
    let body = match &request.body {
        Body::Empty => None,
        Body::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Body::Chunked { chunks, .. } => Some(String::from_utf8_lossy(&chunks.concat()).into_owned()),
    };
    if let Some(body) = body {
        both("--data-binary".into(), "--data-binary".into());
        both(quote(&body), body);
    }
    CurlCommand { display: display.join(" "), args }
}

/// Sends a step's request once: plain HTTP with the runner's client, TLS with curl.
fn send(step: &Step, main: SocketAddr, command: &CurlCommand) -> Result<Response, String> {
    match step.target {
        Target::Main => {
            let mut request = step.request.clone();
            if let Some(token) = &step.token {
                request = request.header("authorization", &format!("Bearer {}", token.value));
            }
            e2e::client::send(main, &request).map_err(|e| e.to_string())
        }
        Target::Mtls { .. } => {
            let out = Command::new("curl")
                .args(&command.args)
                .current_dir(e2e::workspace_root())
                .output()
                .map_err(|e| format!("running curl: {e}"))?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(format!("curl exited with {}: {}", out.status, stderr.trim()));
            }
            parse_curl_output(&out.stdout)
        }
    }
}

/// Parses `curl -i` output (HTTP/1.1): status line, headers, body; skips `100 Continue`.
fn parse_curl_output(mut bytes: &[u8]) -> Result<Response, String> {
    loop {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or("curl output without a header block")?;
        let head = String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned();
        let rest = bytes.get(end + 4..).unwrap_or_default();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line from curl: {status_line}"))?;
        if (100..200).contains(&status) {
            bytes = rest;
            continue;
        }
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return Ok(Response { status, headers, body: rest.to_vec() });
    }
}

fn print_response(out: &mut impl Write, step: &Step, response: &Response) -> io::Result<()> {
    writeln!(out, "   -> {} (expected {})", response.status, step.expect)?;
    for name in &step.show_headers {
        for value in response.header_all(name) {
            writeln!(out, "      {name}: {value}")?;
        }
        let checked_absent = step.checks.iter().any(|c| matches!(c, Check::NoHeader(n) if n == name));
        if checked_absent && response.header(name).is_none() {
            writeln!(out, "      {name}: (removed)")?;
        }
    }
    match response.echoed() {
        Ok(echoed) => {
            writeln!(out, "   upstream saw: {} {}", echoed.method, echoed.path)?;
            for (name, value) in &echoed.headers {
                if !QUIET_UPSTREAM_HEADERS.iter().any(|q| name.eq_ignore_ascii_case(q)) {
                    writeln!(out, "      {name}: {value}")?;
                }
            }
            if let Some(body) = &echoed.body {
                writeln!(out, "      body: {body}")?;
            } else if let Some(body) = &echoed.body_base64 {
                writeln!(out, "      body (base64): {body}")?;
            }
        }
        Err(_) => {
            let text = response.text();
            let shown: String = if text.is_empty() { "(no body)".into() } else { text.chars().take(400).collect() };
            writeln!(out, "   body: {shown}")?;
        }
    }
    Ok(())
}

/// The checks of a step that do not hold for `response`.
fn check(step: &Step, response: &Response) -> Vec<String> {
    let json = response.json().ok();
    let echoed = response.echoed().ok();
    let upstream_json = echoed.as_ref().and_then(|e| serde_json::from_slice::<Value>(&e.body_bytes()).ok());
    step.checks
        .iter()
        .filter_map(|check| {
            let holds = match check {
                Check::Header(name) => response.header(name).is_some(),
                Check::NoHeader(name) => response.header(name).is_none(),
                Check::HeaderIs(name, value) => response.header(name) == Some(*value),
                Check::Json(pointer, value) => json.as_ref().and_then(|j| j.pointer(pointer)) == Some(value),
                Check::UpstreamEncrypted(pointer, plaintext) => {
                    let field = upstream_json.as_ref().and_then(|j| j.pointer(pointer)).and_then(Value::as_str);
                    let body = echoed.as_ref().map(|e| String::from_utf8_lossy(&e.body_bytes()).into_owned());
                    field.is_some_and(|f| f.starts_with("enc:")) && body.is_some_and(|b| !b.contains(plaintext))
                }
                Check::UpstreamHeader(name, value) => echoed.as_ref().and_then(|e| e.header(name)) == Some(*value),
                Check::UpstreamHeaderContains(name, text) => {
                    echoed.as_ref().and_then(|e| e.header(name)).is_some_and(|v| v.contains(text))
                }
            };
            (!holds).then(|| format!("{check:?} does not hold"))
        })
        .collect()
}

fn read_config() -> Result<Value, DemoError> {
    let path = e2e::workspace_root().join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| DemoError::Read(path, e))?;
    serde_yaml_ng::from_str(&text).map_err(DemoError::Yaml)
}

/// Hands the material's environment (the field-encryption key) to the Envoy this process starts.
fn set_env(material: &Material) {
    for (name, value) in &material.env {
        if name == FE_KEY_ENV {
            std::env::set_var(name, value);
        }
    }
}

/// A path as printed: relative to the workspace root (where the commands run) when inside it.
fn display_path(path: &Path) -> String {
    let root = e2e::workspace_root();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// Single-quotes for the shell, unless the text is plain.
fn quote(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The echo cluster's endpoint port in a bootstrap.
fn echo_port(bootstrap: &mut Value) -> Option<&mut Value> {
    let clusters = bootstrap.pointer_mut("/static_resources/clusters")?.as_array_mut()?;
    let echo = clusters.iter_mut().find(|c| c["name"] == ECHO_CLUSTER)?;
    echo.pointer_mut("/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value")
}

/// Moves the admin interface and every listener with a socket address to a free port (0: the
/// kernel picks). Internal listeners have no address and stay as they are.
fn free_ports(bootstrap: &mut Value) {
    if let Some(port) = bootstrap.pointer_mut("/admin/address/socket_address/port_value") {
        *port = 0.into();
    }
    let listeners = bootstrap.pointer_mut("/static_resources/listeners").and_then(Value::as_array_mut);
    for listener in listeners.into_iter().flatten() {
        if let Some(port) = listener.pointer_mut("/address/socket_address/port_value") {
            *port = 0.into();
        }
    }
}

/// Points every file of the generated folder that the bootstrap names at `dir` instead.
fn move_generated(value: &mut Value, dir: &str) {
    match value {
        Value::String(text) => {
            if let Some(file) = text.strip_prefix(&format!("{GENERATED}/")) {
                *text = format!("{dir}/{file}");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| move_generated(v, dir)),
        Value::Object(members) => members.values_mut().for_each(|v| move_generated(v, dir)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_rewrites_admin_listeners_echo_and_generated_files() {
        let mut bootstrap = read_config().unwrap();
        assert_eq!(*echo_port(&mut bootstrap).unwrap(), 8080);
        *echo_port(&mut bootstrap).unwrap() = 1234.into();
        free_ports(&mut bootstrap);
        move_generated(&mut bootstrap, "target/x");
        assert_eq!(bootstrap.pointer("/admin/address/socket_address/port_value").unwrap(), 0);
        let listeners = bootstrap.pointer("/static_resources/listeners").unwrap().as_array().unwrap();
        let bound: Vec<&Value> = listeners.iter().filter_map(|l| l.pointer("/address/socket_address")).collect();
        assert_eq!(bound.len(), 2, "demo and mtls");
        assert!(bound.iter().all(|s| s["port_value"] == 0));
        assert_eq!(*echo_port(&mut bootstrap).unwrap(), 1234);
        let text = bootstrap.to_string();
        assert!(!text.contains(GENERATED), "{text}");
        assert!(text.contains("\"target/x/server.pem\"") && text.contains("\"target/x/jwks.json\""));
    }

    #[test]
    fn fixed_addrs_are_the_files_ports() {
        let (main, mtls) = fixed_addrs().unwrap();
        assert_eq!(main.to_string(), "127.0.0.1:10000");
        assert_eq!(mtls.to_string(), "127.0.0.1:10443");
    }

    #[test]
    fn curl_output_is_parsed_past_100_continue() {
        let out = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n\r\n{}";
        let response = parse_curl_output(out).unwrap();
        assert_eq!(response.status, 403);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.body, b"{}");
    }

    fn echoed_response(body: &str, headers: &[(&str, &str)]) -> Response {
        let echoed = crate::echo::Echoed {
            method: "POST".into(),
            path: "/api/users".into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: Some(body.into()),
            body_base64: None,
        };
        Response { status: 200, headers: vec![], body: serde_json::to_vec(&echoed).unwrap() }
    }

    #[test]
    fn checks_fail_on_plaintext_upstream_and_on_wrong_headers() {
        let step = |checks: Vec<Check>| {
            let mut step = Step::new_for_tests();
            step.checks = checks;
            step
        };
        let encrypted = step(vec![Check::UpstreamEncrypted("/email", "a@example.com")]);
        let ciphertext = echoed_response(r#"{"email":"enc:d1:k:AAAA"}"#, &[]);
        assert!(check(&encrypted, &ciphertext).is_empty());
        let plaintext = echoed_response(r#"{"email":"a@example.com"}"#, &[]);
        assert_eq!(check(&encrypted, &plaintext).len(), 1);
        let leaked_elsewhere = echoed_response(r#"{"email":"enc:d1:k:AAAA","copy":"a@example.com"}"#, &[]);
        assert_eq!(check(&encrypted, &leaked_elsewhere).len(), 1);

        let headers = step(vec![
            Check::UpstreamHeader("x-palisade-tier", "premium"),
            Check::NoHeader("server"),
            Check::Header("retry-after"),
        ]);
        let mut response = echoed_response("{}", &[("x-palisade-tier", "authenticated")]);
        response.headers.push(("server".into(), "Apache".into()));
        assert_eq!(check(&headers, &response).len(), 3);
    }

    #[test]
    fn quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("--cacert"), "--cacert");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
