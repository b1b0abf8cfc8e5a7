//! The demo behind `make demo`: the echo upstream in-process, Envoy with `envoy-config/demo.yaml`
//! (the same file the tests validate), and a walkthrough of curl exchanges with their results.
//!
//! demo.yaml fixes the ports (listener 10000, admin 9901, echo 8080) so a reader can copy the curl
//! commands. With [`Ports::Free`] (the `--free-ports` flag, used by the tests) the demo loads the
//! same file, moves the admin and the listeners to free ports and points the `echo` cluster at the
//! echo's free port, so the check runs beside a running demo and in parallel with other tests.

pub mod steps;

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::Value;

use crate::e2e::{self, E2eError, EchoServer, Envoy, EnvoyOptions, Response};
use steps::Step;

/// The demo's Envoy config, relative to the workspace root.
pub const CONFIG: &str = "envoy-config/demo.yaml";
/// The cluster in demo.yaml that is the echo upstream.
const ECHO_CLUSTER: &str = "echo";

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
    /// demo.yaml has no `echo` cluster with a socket address.
    NoEchoCluster,
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
            DemoError::NoEchoCluster => write!(f, "{CONFIG}: no cluster `{ECHO_CLUSTER}` with a socket address"),
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

/// A running demo: stops Envoy (by PID) and the echo when dropped.
pub struct Demo {
    /// Envoy with demo.yaml.
    pub envoy: Envoy,
    /// The echo upstream.
    pub echo: EchoServer,
}

/// The outcome of one step.
#[derive(Debug)]
pub struct StepResult {
    /// The step's title.
    pub title: String,
    /// The expected status.
    pub expected: u16,
    /// The status received, `None` when the request got no response.
    pub status: Option<u16>,
}

impl StepResult {
    /// Whether the step got its expected status.
    pub fn passed(&self) -> bool {
        self.status == Some(self.expected)
    }
}

impl Demo {
    /// Starts the echo upstream and Envoy with demo.yaml, and waits until Envoy is ready.
    pub fn start(ports: Ports) -> Result<Demo, DemoError> {
        let path = e2e::workspace_root().join(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| DemoError::Read(path.clone(), e))?;
        let mut bootstrap: Value = serde_yaml_ng::from_str(&text).map_err(DemoError::Yaml)?;
        let options = EnvoyOptions::default();
        match ports {
            Ports::Fixed => {
                let port = echo_port(&mut bootstrap).and_then(|p| p.as_u64()).ok_or(DemoError::NoEchoCluster)?;
                let port = u16::try_from(port).map_err(|_| DemoError::NoEchoCluster)?;
                let echo = EchoServer::bind(port).map_err(|e| DemoError::Echo(port, e))?;
                let envoy = Envoy::start_file("demo", &path, &options)?;
                Ok(Demo { envoy, echo })
            }
            Ports::Free => {
                let echo = EchoServer::start().map_err(|e| DemoError::Echo(0, e))?;
                *echo_port(&mut bootstrap).ok_or(DemoError::NoEchoCluster)? = echo.port().into();
                free_ports(&mut bootstrap);
                let envoy = Envoy::start_bootstrap("demo", &bootstrap, &options)?;
                Ok(Demo { envoy, echo })
            }
        }
    }

    /// Runs the steps in order, printing each exchange to `out`; returns each step's outcome.
    pub fn walkthrough(&self, steps: &[Step], out: &mut impl Write) -> io::Result<Vec<StepResult>> {
        let mut results = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let addr = self.envoy.listener_addr(&step.listener).unwrap_or_else(|| self.envoy.addr());
            writeln!(out, "\n== {}. {}", i + 1, step.title)?;
            writeln!(out, "   {}", step.explain)?;
            writeln!(out, "   $ {}", step.request.curl(&format!("http://{addr}")))?;
            let status = match e2e::client::send(addr, &step.request) {
                Ok(response) => {
                    print_response(out, step, &response)?;
                    Some(response.status)
                }
                Err(err) => {
                    writeln!(out, "   no response: {err}")?;
                    None
                }
            };
            let result = StepResult { title: step.title.clone(), expected: step.expect_status, status };
            if !result.passed() {
                writeln!(out, "   MISMATCH: expected status {}", step.expect_status)?;
            }
            results.push(result);
        }
        Ok(results)
    }
}

fn print_response(out: &mut impl Write, step: &Step, response: &Response) -> io::Result<()> {
    writeln!(out, "   -> {} (expected {})", response.status, step.expect_status)?;
    for name in &step.show_headers {
        for value in response.header_all(name) {
            writeln!(out, "      {name}: {value}")?;
        }
    }
    match response.echoed() {
        Ok(echoed) => {
            writeln!(out, "   upstream saw: {} {}", echoed.method, echoed.path)?;
            for (name, value) in &echoed.headers {
                writeln!(out, "      {name}: {value}")?;
            }
            if let Some(body) = &echoed.body {
                writeln!(out, "      body: {body}")?;
            } else if let Some(body) = &echoed.body_base64 {
                writeln!(out, "      body (base64): {body}")?;
            }
        }
        Err(_) => {
            let text = response.text();
            let shown: String = if text.is_empty() { "(no body)".into() } else { text.chars().take(300).collect() };
            writeln!(out, "   answered before the upstream: {shown}")?;
        }
    }
    Ok(())
}

/// The echo cluster's endpoint port in a bootstrap.
fn echo_port(bootstrap: &mut Value) -> Option<&mut Value> {
    let clusters = bootstrap.pointer_mut("/static_resources/clusters")?.as_array_mut()?;
    let echo = clusters.iter_mut().find(|c| c["name"] == ECHO_CLUSTER)?;
    echo.pointer_mut("/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value")
}

/// Moves the admin interface and every listener to a free port (0: the kernel picks).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_rewrites_admin_listeners_and_echo() {
        let text = std::fs::read_to_string(e2e::workspace_root().join(CONFIG)).unwrap();
        let mut bootstrap: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(*echo_port(&mut bootstrap).unwrap(), 8080);
        *echo_port(&mut bootstrap).unwrap() = 1234.into();
        free_ports(&mut bootstrap);
        assert_eq!(bootstrap.pointer("/admin/address/socket_address/port_value").unwrap(), 0);
        let listeners = bootstrap.pointer("/static_resources/listeners").unwrap().as_array().unwrap();
        assert!(!listeners.is_empty());
        assert!(listeners.iter().all(|l| l.pointer("/address/socket_address/port_value").unwrap() == 0));
        assert_eq!(*echo_port(&mut bootstrap).unwrap(), 1234);
    }
}
