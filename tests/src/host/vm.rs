//! One plugin VM: loading with Envoy's checks and start sequence, calling its callbacks, and
//! marking it broken after a trap (Envoy keeps answering 503).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::rc::Rc;

use wasmtime::{CallHook, Instance, Linker, Store, WasmParams, WasmResults};

use super::abi::LogLevel;
use super::callouts::{GrpcReply, HttpReply};
use super::headers::Headers;
use super::hostcalls;
use super::module_cache;
use super::state::{CalloutData, Crossings, HostShared, LogEntry, Stream, VmState};
use super::wasi::{self, Clock, Phase, WasiMode, WasiState};

/// The root context id Envoy gives the first root context of a VM.
pub const ROOT_CONTEXT_ID: u32 = 1;

/// Why a plugin failed to load, with the logs it wrote before failing.
#[derive(Debug, Clone)]
pub struct LoadError {
    /// Envoy-style message, e.g. "Failed to load Wasm module due to a missing import: env.x".
    pub message: String,
    /// Everything the plugin logged before it failed (its reason for rejecting a config).
    pub logs: Vec<LogEntry>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        for entry in &self.logs {
            write!(f, "\n  [{:?}] {}", entry.level, entry.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// What a plugin is loaded with.
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    pub path: PathBuf,
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub vm_config: Vec<u8>,
    pub plugin_config: Vec<u8>,
    pub env: Vec<(String, String)>,
    pub log_level: LogLevel,
    /// Meter fuel (wasmtime `consume_fuel`): a separate engine, for benches only.
    pub fuel: bool,
}

/// A live VM with its root context.
pub(crate) struct Vm {
    pub store: Store<VmState>,
    instance: Instance,
    pub broken: Option<String>,
    next_context: u32,
}

impl Vm {
    /// Loads like Envoy: import check, `_initialize` (restricted), allocator check, root context,
    /// `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn load(spec: &LoadSpec, host: Rc<HostShared>, id: u64) -> Result<Vm, LoadError> {
        let fail = |message: String| LoadError { message, logs: Vec::new() };
        let (engine, module) = if spec.fuel {
            (module_cache::fuel_engine(), module_cache::fuel_module(&spec.path))
        } else {
            (module_cache::engine(), module_cache::module(&spec.path))
        };
        let module = module.map_err(|e| fail(format!("{e:#}")))?;
        for import in module.imports() {
            let known = match import.module() {
                "env" => hostcalls::ENVOY_FUNCTIONS.contains(&import.name()),
                m if wasi::MODULES.contains(&m) => wasi::ENVOY_FUNCTIONS.contains(&import.name()),
                _ => false,
            };
            if !known {
                return Err(fail(format!(
                    "Failed to load Wasm module due to a missing import: {}.{}",
                    import.module(),
                    import.name()
                )));
            }
        }
        if module.get_export("proxy_abi_version_0_2_1").is_none() {
            return Err(fail("Wasm module has no supported ABI version (proxy_abi_version_0_2_1)".into()));
        }
        let mut wasi = WasiState::new(WasiMode::Envoy, Clock::Test(host.clock.clone()), host.seed.get() ^ id);
        wasi.env = spec.env.clone();
        let state = VmState {
            wasi,
            host,
            id,
            name: spec.name.clone(),
            root_id: spec.root_id.clone(),
            vm_id: spec.vm_id.clone(),
            vm_config: spec.vm_config.clone(),
            plugin_config: spec.plugin_config.clone(),
            log_level: spec.log_level,
            logs: Vec::new(),
            root_context: ROOT_CONTEXT_ID,
            current_context: 0,
            streams: BTreeMap::new(),
            tick_period_ms: 0,
            http_calls: BTreeMap::new(),
            grpc_calls: BTreeMap::new(),
            callout: None,
            status: (0, Vec::new()),
            done_called: false,
            crossings: Crossings::default(),
        };
        let mut store = Store::new(engine, state);
        store.call_hook(|mut store, hook| {
            let crossings = &mut store.data_mut().crossings;
            match hook {
                CallHook::CallingHost => crossings.host_calls += 1,
                CallHook::CallingWasm => crossings.guest_calls += 1,
                CallHook::ReturningFromHost | CallHook::ReturningFromWasm => {}
            }
            Ok(())
        });
        if spec.fuel {
            store.set_fuel(u64::MAX).map_err(|e| fail(format!("setting fuel: {e:?}")))?;
        }
        let mut linker = Linker::new(engine);
        let linked = wasi::add_to_linker(&mut linker).and_then(|()| hostcalls::add_to_linker(&mut linker));
        linked.map_err(|e| fail(format!("linking the host: {e:?}")))?;
        let instance = linker.instantiate(&mut store, &module).map_err(|e| {
            fail(format!("Failed to load Wasm module due to a missing import: import type mismatch: {e:?}"))
        })?;
        let mut vm = Vm { store, instance, broken: None, next_context: ROOT_CONTEXT_ID + 1 };
        let with_logs = |vm: &Vm, message: String| LoadError { message, logs: vm.store.data().logs.clone() };

        vm.store.data_mut().wasi.phase = Phase::Initialize;
        let started = vm.start_functions();
        vm.store.data_mut().wasi.phase = Phase::Normal;
        if let Err(message) = started {
            return Err(with_logs(&vm, format!("Failed to initialize Wasm code: {message}")));
        }
        if vm.instance.get_export(&mut vm.store, "malloc").is_none()
            && vm.instance.get_export(&mut vm.store, "proxy_on_memory_allocate").is_none()
        {
            return Err(with_logs(&vm, "Wasm module is missing malloc/proxy_on_memory_allocate".into()));
        }
        let vm_config_len = vm.store.data().vm_config.len() as i32;
        let plugin_config_len = vm.store.data().plugin_config.len() as i32;
        let root = ROOT_CONTEXT_ID as i32;
        let steps = vm
            .call::<(i32, i32), ()>("proxy_on_context_create", ROOT_CONTEXT_ID, (root, 0))
            .and_then(|_| vm.call::<(i32, i32), i32>("proxy_on_vm_start", ROOT_CONTEXT_ID, (root, vm_config_len)));
        match steps {
            Ok(Some(0)) => {
                return Err(with_logs(
                    &vm,
                    format!("Plugin {} failed to start: proxy_on_vm_start returned false", spec.name),
                ))
            }
            Ok(_) => {}
            Err(message) => return Err(with_logs(&vm, format!("Plugin {} failed to start: {message}", spec.name))),
        }
        match vm.call::<(i32, i32), i32>("proxy_on_configure", ROOT_CONTEXT_ID, (root, plugin_config_len)) {
            Ok(Some(0)) => Err(with_logs(
                &vm,
                format!("Plugin {} rejected its configuration: proxy_on_configure returned false", spec.name),
            )),
            Ok(_) => Ok(vm),
            Err(message) => Err(with_logs(&vm, format!("Plugin {} failed to configure: {message}", spec.name))),
        }
    }

    /// Fuel burnt so far (about one unit per wasm instruction); `None` unless loaded with fuel.
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.store.get_fuel().ok().map(|left| u64::MAX - left)
    }

    /// Crossings of the wasm boundary so far.
    pub fn crossings(&self) -> Crossings {
        self.store.data().crossings
    }

    /// cpp-host: `_initialize` (then `main`/`__main_void`) if exported, else `_start`.
    fn start_functions(&mut self) -> Result<(), String> {
        if self.instance.get_export(&mut self.store, "_initialize").is_some() {
            self.call::<(), ()>("_initialize", 0, ())?;
            if self.instance.get_export(&mut self.store, "main").is_some() {
                self.call::<(i32, i32), i32>("main", 0, (0, 0))?;
            } else if self.instance.get_export(&mut self.store, "__main_void").is_some() {
                self.call::<(), i32>("__main_void", 0, ())?;
            }
        } else if self.instance.get_export(&mut self.store, "_start").is_some() {
            self.call::<(), ()>("_start", 0, ())?;
        }
        Ok(())
    }

    /// Calls an exported callback as `context`; `Ok(None)` when the module does not export it.
    /// A trap breaks the VM and returns its message (with the panic message the SDK logged).
    pub fn call<P: WasmParams, Ret: WasmResults>(
        &mut self,
        export: &str,
        context: u32,
        params: P,
    ) -> Result<Option<Ret>, String> {
        if let Some(reason) = &self.broken {
            return Err(format!("the VM is broken by an earlier trap: {reason}"));
        }
        let Some(func) = self.instance.get_func(&mut self.store, export) else { return Ok(None) };
        let typed =
            func.typed::<P, Ret>(&self.store).map_err(|e| format!("{export} has an unexpected signature: {e:?}"))?;
        let logs_before = self.store.data().logs.len();
        let previous = self.store.data().current_context;
        self.store.data_mut().current_context = context;
        let result = typed.call(&mut self.store, params);
        self.store.data_mut().current_context = previous;
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                let panics: Vec<String> = self.store.data().logs[logs_before..]
                    .iter()
                    .filter(|e| e.level >= LogLevel::Error)
                    .map(|e| e.message.clone())
                    .collect();
                let mut message = format!("{export} trapped: {error:?}");
                if !panics.is_empty() {
                    message = format!("{message}\nguest log before the trap: {}", panics.join(" | "));
                }
                self.broken = Some(message.clone());
                Err(message)
            }
        }
    }

    /// Creates an HTTP context bound to `slot` of `stream`.
    pub fn create_http_context(&mut self, stream: Rc<RefCell<Stream>>, slot: usize) -> Result<u32, String> {
        let id = self.next_context;
        self.next_context += 1;
        self.store.data_mut().streams.insert(id, (stream, slot));
        self.call::<(i32, i32), ()>("proxy_on_context_create", id, (id as i32, ROOT_CONTEXT_ID as i32))?;
        Ok(id)
    }

    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`, then forgets the context.
    pub fn finish_http_context(&mut self, id: u32) -> Result<(), String> {
        let result = self
            .call::<i32, i32>("proxy_on_done", id, id as i32)
            .and_then(|_| self.call::<i32, ()>("proxy_on_log", id, id as i32))
            .and_then(|_| self.call::<i32, ()>("proxy_on_delete", id, id as i32));
        self.store.data_mut().streams.remove(&id);
        result.map(|_| ())
    }

    /// Delivers an answer to an HTTP callout.
    pub fn answer_http_call(&mut self, token: u32, reply: HttpReply) -> Result<(), String> {
        let call = self
            .store
            .data_mut()
            .http_calls
            .remove(&token)
            .ok_or_else(|| format!("no pending HTTP call with token {token}"))?;
        let counts = match reply {
            HttpReply::Response { headers, body, trailers } => {
                let data = CalloutData {
                    headers: Headers::from_pairs(headers),
                    body,
                    trailers: Headers::from_pairs(trailers),
                };
                let counts = (data.headers.len() as i32, data.body.len() as i32, data.trailers.len() as i32);
                let state = self.store.data_mut();
                state.callout = Some(data);
                state.status = (0, Vec::new());
                counts
            }
            HttpReply::Reset | HttpReply::Timeout => {
                let state = self.store.data_mut();
                state.callout = None;
                state.status = (super::abi::Status::BrokenConnection as u32, b"reset".to_vec());
                (0, 0, 0)
            }
        };
        let ctx = call.context_id;
        let result = self.call::<(i32, i32, i32, i32, i32), ()>(
            "proxy_on_http_call_response",
            ctx,
            (ctx as i32, token as i32, counts.0, counts.1, counts.2),
        );
        self.store.data_mut().callout = None;
        result.map(|_| ())
    }

    /// Delivers an answer to a gRPC call or stream: metadata, messages, trailers, close.
    pub fn answer_grpc_call(&mut self, token: u32, reply: GrpcReply) -> Result<(), String> {
        let call = self
            .store
            .data_mut()
            .grpc_calls
            .remove(&token)
            .ok_or_else(|| format!("no pending gRPC call with token {token}"))?;
        let ctx = call.context_id;
        let (c, t) = (ctx as i32, token as i32);
        let run = |vm: &mut Vm, data: CalloutData, export: &str, n: i32| -> Result<(), String> {
            vm.store.data_mut().callout = Some(data);
            let result = vm.call::<(i32, i32, i32), ()>(export, ctx, (c, t, n));
            vm.store.data_mut().callout = None;
            result.map(|_| ())
        };
        if !reply.initial_metadata.is_empty() {
            let data =
                CalloutData { headers: Headers::from_pairs(reply.initial_metadata.clone()), ..Default::default() };
            let n = data.headers.len() as i32;
            run(self, data, "proxy_on_grpc_receive_initial_metadata", n)?;
        }
        for message in &reply.messages {
            let data = CalloutData { body: message.clone(), ..Default::default() };
            run(self, data, "proxy_on_grpc_receive", message.len() as i32)?;
        }
        if !reply.trailing_metadata.is_empty() {
            let data =
                CalloutData { trailers: Headers::from_pairs(reply.trailing_metadata.clone()), ..Default::default() };
            let n = data.trailers.len() as i32;
            run(self, data, "proxy_on_grpc_receive_trailing_metadata", n)?;
        }
        self.store.data_mut().status = (reply.status, reply.status_message.into_bytes());
        self.call::<(i32, i32, i32), ()>("proxy_on_grpc_close", ctx, (c, t, reply.status as i32)).map(|_| ())
    }

    /// `proxy_on_queue_ready` for each notification due to this VM.
    pub fn deliver_queue_ready(&mut self) -> Result<(), String> {
        let (host, id) = {
            let state = self.store.data();
            (state.host.clone(), state.id)
        };
        let tokens = host.queues.borrow_mut().take_pending(id);
        for token in tokens {
            let root = ROOT_CONTEXT_ID as i32;
            self.call::<(i32, i32), ()>("proxy_on_queue_ready", ROOT_CONTEXT_ID, (root, token as i32))?;
        }
        Ok(())
    }
}
