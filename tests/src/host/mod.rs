//! A wasmtime proxy-wasm 0.2.1 host faithful to Envoy 1.40 (see
//! `/work/shared/notes/proxy-wasm-abi.md`), with a state-based API: send a request, then read
//! what happened.
//!
//! ```no_run
//! use palisade_tests::host::{Host, Request, Response, Verdict};
//!
//! # fn main() -> anyhow::Result<()> {
//! let host = Host::new();
//! let plugin = host
//!     .plugin("security-headers") // $PALISADE_DIST/security-headers.wasm
//!     .config(r#"{"preset": "strict"}"#)
//!     .env("KEY", "value")
//!     .load()?;
//! let mut exchange = host.chain(&[&plugin]).send(
//!     Request::get("/p")
//!         .header("origin", "https://app.example.com")
//!         .property(&["source", "address"], "10.0.0.1:1234"),
//! );
//! assert_eq!(exchange.verdict(), Verdict::Forwarded);
//! let upstream = exchange.upstream().expect("reached the upstream");
//! assert_eq!(upstream.header(":path").as_deref(), Some("/p"));
//! exchange.respond(Response::ok().header("server", "leaky").body("hi"))?;
//! let client = exchange.client().expect("response complete");
//! assert_eq!(client.status(), 200);
//! assert!(client.header("strict-transport-security").is_some());
//! assert_eq!(host.metric("palisade.security_headers.decorated"), Some(1));
//! # Ok(())
//! # }
//! ```
//!
//! - Each `.wasm` is compiled once per process ([`module_cache`]); each [`Plugin`] is a fresh
//!   store, and all state lives in a [`Host`] (clock, shared data, queues, stats, clusters), so
//!   tests run in parallel.
//! - Envoy's refusals are reproduced: imports Envoy lacks fail the load, only `proxy_log` (and
//!   some WASI) runs inside `_initialize`, request headers are gone after their phase, shared
//!   data CAS, unknown callout clusters. A trap marks the plugin broken (Envoy answers 503).
//! - [`traffic`] generates hostile requests and checks that a chain never traps on them.

pub mod abi;
mod callouts;
mod chain;
mod headers;
mod hostcalls;
mod memory;
mod message;
pub mod module_cache;
mod properties;
mod shared;
mod state;
pub mod traffic;
mod vm;
pub mod wasi;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};

pub use abi::{LogLevel, Status};
pub use callouts::{GrpcCall, GrpcReply, HttpCall, HttpReply};
pub use chain::{Chain, Exchange, Received, Stage, Verdict};
pub use headers::Headers;
pub use message::{PropertyValue, Request, Response};
pub use properties::{DEFAULT_DESTINATION, DEFAULT_SOURCE};
pub use state::{Crossings, LocalReply, LogEntry};
pub use vm::{LoadError, ROOT_CONTEXT_ID};

use state::HostShared;
use vm::{LoadSpec, Vm};
use wasi::TestClock;

/// 2026-01-01T00:00:00Z: where every host's clock starts.
pub const DEFAULT_TIME_UNIX_SECS: u64 = 1_767_225_600;

/// The directory holding `<name>.wasm`: `$PALISADE_DIST`, else `<workspace>/dist`.
pub fn dist_dir() -> PathBuf {
    match std::env::var_os("PALISADE_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("dist"),
    }
}

/// One simulated Envoy process: clock, shared data, queues, stats and clusters for its plugins.
#[derive(Clone)]
pub struct Host {
    shared: Rc<HostShared>,
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Host {
    /// A host with the clock at [`DEFAULT_TIME_UNIX_SECS`] and no clusters.
    pub fn new() -> Self {
        let shared = HostShared {
            clock: Rc::new(TestClock::new(DEFAULT_TIME_UNIX_SECS * 1_000_000_000)),
            data: RefCell::default(),
            queues: RefCell::default(),
            metrics: RefCell::default(),
            clusters: RefCell::default(),
            next_token: Cell::new(0),
            next_plugin: Cell::new(0),
            seed: Cell::new(0x5eed_0f9a_115a_de00),
            vms: RefCell::default(),
        };
        Self { shared: Rc::new(shared) }
    }

    /// A plugin `<name>.wasm` from [`dist_dir`].
    pub fn plugin(&self, name: &str) -> PluginBuilder {
        self.plugin_at(dist_dir().join(format!("{name}.wasm")), name)
    }

    /// A plugin from an explicit `.wasm` path, named `name`.
    pub fn plugin_at(&self, path: impl Into<PathBuf>, name: &str) -> PluginBuilder {
        PluginBuilder {
            host: self.clone(),
            spec: LoadSpec {
                path: path.into(),
                name: name.to_string(),
                root_id: String::new(),
                vm_id: String::new(),
                vm_config: Vec::new(),
                plugin_config: Vec::new(),
                env: Vec::new(),
                log_level: LogLevel::Info,
                fuel: false,
            },
        }
    }

    /// Plugins in `http_filters` order.
    pub fn chain<'a>(&self, plugins: &[&'a Plugin]) -> Chain<'a> {
        Chain::new(self.clone(), plugins)
    }

    /// Declares an upstream cluster callouts may target; others get BadArgument.
    pub fn add_cluster(&self, name: &str) -> &Self {
        self.shared.clusters.borrow_mut().insert(name.to_string());
        self
    }

    /// The clusters callouts may target.
    pub fn clusters(&self) -> BTreeSet<String> {
        self.shared.clusters.borrow().clone()
    }

    /// Sets the wall clock (`proxy_get_current_time_nanoseconds`, WASI realtime).
    pub fn set_time(&self, time: SystemTime) {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.shared.clock.set_realtime_ns(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Sets the wall clock in seconds since the epoch.
    pub fn set_time_unix(&self, secs: u64) {
        self.shared.clock.set_realtime_ns(secs.saturating_mul(1_000_000_000));
    }

    /// Moves the wall and monotonic clocks forward.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance_ns(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The wall clock.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.shared.clock.realtime_ns())
    }

    /// Seeds WASI `random_get` of plugins loaded afterwards.
    pub fn set_random_seed(&self, seed: u64) {
        self.shared.seed.set(seed);
    }

    /// A counter's or gauge's value by its name.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.shared.metrics.borrow().value(name)
    }

    /// The values recorded in a histogram.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        self.shared.metrics.borrow().histogram(name).map(<[u64]>::to_vec)
    }

    /// Shared data of a vm_id: (value, cas).
    pub fn shared_data(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared.data.borrow().get(vm_id, key.as_bytes())
    }

    /// Writes shared data as another VM would (unconditionally).
    pub fn set_shared_data(&self, vm_id: &str, key: &str, value: &[u8]) {
        self.shared.data.borrow_mut().set(vm_id, key.as_bytes(), value, 0);
    }

    /// Delivers pending `proxy_on_queue_ready` to every live plugin owning a queue.
    pub fn flush_queues(&self) {
        let vms: Vec<_> = {
            let mut vms = self.shared.vms.borrow_mut();
            vms.retain(|(_, weak)| weak.strong_count() > 0);
            vms.iter().filter_map(|(_, weak)| weak.upgrade()).collect()
        };
        for vm in vms {
            if let Ok(mut vm) = vm.try_borrow_mut() {
                // A trap here breaks that plugin; its next use reports it.
                let _ = vm.deliver_queue_ready();
            }
        }
    }
}

/// Configures and loads a [`Plugin`].
pub struct PluginBuilder {
    host: Host,
    spec: LoadSpec,
}

impl PluginBuilder {
    /// The plugin configuration (`proxy_on_configure`), usually JSON.
    pub fn config(mut self, config: impl AsRef<[u8]>) -> Self {
        self.spec.plugin_config = config.as_ref().to_vec();
        self
    }

    /// The VM configuration (`proxy_on_vm_start`).
    pub fn vm_config(mut self, config: impl AsRef<[u8]>) -> Self {
        self.spec.vm_config = config.as_ref().to_vec();
        self
    }

    /// An environment variable (`vm_config.environment_variables.key_values`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.spec.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The `vm_id`: plugins with the same vm_id share shared data and queues (default "").
    pub fn vm_id(mut self, vm_id: &str) -> Self {
        self.spec.vm_id = vm_id.to_string();
        self
    }

    /// The `root_id` (default "").
    pub fn root_id(mut self, root_id: &str) -> Self {
        self.spec.root_id = root_id.to_string();
        self
    }

    /// The plugin name (`plugin_name` property; default the module name).
    pub fn name(mut self, name: &str) -> Self {
        self.spec.name = name.to_string();
        self
    }

    /// What `proxy_get_log_level` answers (default Info). Every line is captured regardless.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.spec.log_level = level;
        self
    }

    /// Meters fuel (wasmtime `consume_fuel`, about one unit per wasm instruction) so a bench can
    /// read a deterministic cost with [`Plugin::fuel_consumed`]. Off by default: the module is
    /// compiled a second time, for a separate engine.
    pub fn fuel(mut self, on: bool) -> Self {
        self.spec.fuel = on;
        self
    }

    /// Loads as Envoy does; the error carries Envoy's message and the plugin's logs.
    pub fn load(self) -> Result<Plugin, LoadError> {
        let id = self.host.shared.next_plugin.get() + 1;
        self.host.shared.next_plugin.set(id);
        let vm = Vm::load(&self.spec, self.host.shared.clone(), id)?;
        let vm = Rc::new(RefCell::new(vm));
        self.host.shared.vms.borrow_mut().push((id, Rc::downgrade(&vm)));
        let plugin = Plugin { vm, host: self.host.clone(), name: self.spec.name };
        self.host.flush_queues();
        Ok(plugin)
    }
}

/// A loaded plugin: one VM with its root context configured.
pub struct Plugin {
    vm: Rc<RefCell<Vm>>,
    host: Host,
    name: String,
}

impl Plugin {
    /// The plugin name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one request through this plugin alone.
    pub fn send(&self, request: Request) -> Exchange<'_> {
        self.host.chain(&[self]).send(request)
    }

    /// Fuel this plugin has burnt since it was loaded (start included); `None` unless loaded
    /// with [`PluginBuilder::fuel`]. The difference across one request is its cost in fuel.
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.vm.borrow().fuel_consumed()
    }

    /// Crossings of the wasm boundary since the plugin was loaded (start included).
    pub fn crossings(&self) -> Crossings {
        self.vm.borrow().crossings()
    }

    /// Everything the plugin logged, in order.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.vm.borrow().store.data().logs.clone()
    }

    /// Whether some log line at `level` or above contains `text`.
    pub fn logged(&self, level: LogLevel, text: &str) -> bool {
        self.logs().iter().any(|e| e.level >= level && e.message.contains(text))
    }

    /// Forgets the captured logs.
    pub fn clear_logs(&self) {
        self.vm.borrow_mut().store.data_mut().logs.clear();
    }

    /// The trap that broke the VM, if one did.
    pub fn broken(&self) -> Option<String> {
        self.vm.borrow().broken.clone()
    }

    /// The tick period the root context set (0 = none).
    pub fn tick_period(&self) -> Duration {
        Duration::from_millis(u64::from(self.vm.borrow().store.data().tick_period_ms))
    }

    /// Fires `proxy_on_tick` on the root context.
    pub fn tick(&self) -> Result<()> {
        let root = ROOT_CONTEXT_ID as i32;
        let result = self.vm.borrow_mut().call::<i32, ()>("proxy_on_tick", ROOT_CONTEXT_ID, root);
        self.host.flush_queues();
        result.map(|_| ()).map_err(|m| anyhow!(m))
    }

    /// Pending HTTP callouts of every context of this plugin.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.vm.borrow().store.data().http_calls.values().cloned().collect()
    }

    /// Pending gRPC calls and streams of every context of this plugin.
    pub fn grpc_calls(&self) -> Vec<GrpcCall> {
        self.vm.borrow().store.data().grpc_calls.values().cloned().collect()
    }

    /// Answers a callout of the root context (use [`Exchange::answer_http_call`] for streams).
    pub fn answer_http_call(&self, token: u32, reply: HttpReply) -> Result<()> {
        let result = self.vm.borrow_mut().answer_http_call(token, reply);
        self.host.flush_queues();
        result.map_err(|m| anyhow!(m))
    }

    /// Answers a gRPC call of the root context.
    pub fn answer_grpc_call(&self, token: u32, reply: GrpcReply) -> Result<()> {
        let result = self.vm.borrow_mut().answer_grpc_call(token, reply);
        self.host.flush_queues();
        result.map_err(|m| anyhow!(m))
    }
}
