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
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        Engine::new(&config).unwrap_or_default()
    })
}

type Slot = Arc<Mutex<Option<Module>>>;

/// The compiled module for `path`; compiles it on first use. Different paths compile in parallel.
pub fn module(path: &Path) -> Result<Module> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Slot>>> = OnceLock::new();
    let slot = {
        let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
        cache.entry(path.to_path_buf()).or_default().clone()
    };
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(module) = slot.as_ref() {
        return Ok(module.clone());
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading {} (run `make build` to produce dist/*.wasm)", path.display()))?;
    let module = Module::new(engine(), &bytes).map_err(|e| anyhow!("compiling {}: {e:?}", path.display()))?;
    *slot = Some(module.clone());
    Ok(module)
}
