//! One Engine per process and each `.wasm` compiled once, shared by every test thread. This
//! cache is the only global state of the host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use anyhow::{anyhow, Context, Result};
use wasmtime::{Config, Engine, Module};

/// The process-wide engine.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| new_engine(false))
}

/// The engine of fuel-metered plugins (`PluginBuilder::fuel`): its code counts fuel (about one
/// unit per wasm instruction), so it is separate and only built when a bench asks for it.
pub fn fuel_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| new_engine(true))
}

fn new_engine(fuel: bool) -> Engine {
    let mut config = Config::new();
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config.consume_fuel(fuel);
    // For `perf record`: wasmtime writes /tmp/perf-<pid>.map, so a profile names the guest's
    // functions (build the module unstripped to keep its name section).
    if std::env::var_os("PALISADE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).unwrap_or_default()
}

type Slot = Arc<Mutex<Option<Module>>>;

/// The compiled module for `path`; compiles it on first use. Different paths compile in parallel.
pub fn module(path: &Path) -> Result<Module> {
    cached(path, false)
}

/// The module for `path` compiled for [`fuel_engine`].
pub fn fuel_module(path: &Path) -> Result<Module> {
    cached(path, true)
}

fn cached(path: &Path, fuel: bool) -> Result<Module> {
    static CACHE: OnceLock<Mutex<HashMap<(PathBuf, bool), Slot>>> = OnceLock::new();
    let slot = {
        let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
        cache.entry((path.to_path_buf(), fuel)).or_default().clone()
    };
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(module) = slot.as_ref() {
        return Ok(module.clone());
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading {} (run `make build` to produce dist/*.wasm)", path.display()))?;
    let engine = if fuel { fuel_engine() } else { engine() };
    let module = Module::new(engine, &bytes).map_err(|e| anyhow!("compiling {}: {e:?}", path.display()))?;
    *slot = Some(module.clone());
    Ok(module)
}
