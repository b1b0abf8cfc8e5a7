//! Runs a test binary compiled to wasm32-wasip1 under wasmtime, with Envoy's WASI subset:
//! cargo calls it as `wasm-test-runner <test.wasm> <args...>` (CARGO_TARGET_WASM32_WASIP1_RUNNER).
//!
//! Differences from a plugin VM, all needed by a command rather than a reactor: `_start` is
//! the entry point, argv is `<test.wasm> <args...>`, environ is this process's environment,
//! fd 1/2 go to the real stdout/stderr, and `proc_exit` ends the run with its code.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use palisade_tests::host::module_cache;
use palisade_tests::host::wasi::{self, Clock, Exit, WasiHost, WasiMode, WasiState};
use palisade_tests::host::LogLevel;
use wasmtime::{Linker, Store};

struct Runner {
    wasi: WasiState,
}

impl WasiHost for Runner {
    fn wasi(&mut self) -> &mut WasiState {
        &mut self.wasi
    }

    fn log(&mut self, level: LogLevel, message: String) {
        eprintln!("[{level:?}] {message}");
    }
}

fn run() -> Result<i32> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| anyhow!("usage: wasm-test-runner <test.wasm> [args...]"))?;
    let module = module_cache::module(std::path::Path::new(&path))?;
    for import in module.imports() {
        let known = wasi::MODULES.contains(&import.module()) && wasi::ENVOY_FUNCTIONS.contains(&import.name());
        if !known {
            bail!("{path}: missing import {}.{} (not in Envoy's WASI subset)", import.module(), import.name());
        }
    }
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let mut state = WasiState::new(WasiMode::Runner, Clock::System, seed);
    state.args = std::iter::once(path.clone()).chain(args).collect();
    state.env = std::env::vars().collect();
    let mut store = Store::new(module_cache::engine(), Runner { wasi: state });
    let mut linker = Linker::new(module_cache::engine());
    wasi::add_to_linker(&mut linker).map_err(|e| anyhow!("{e:?}"))?;
    let instance = linker.instantiate(&mut store, &module).map_err(|e| anyhow!("instantiating {path}: {e:?}"))?;
    let start =
        instance.get_typed_func::<(), ()>(&mut store, "_start").map_err(|e| anyhow!("{path}: no _start: {e:?}"))?;
    match start.call(&mut store, ()) {
        Ok(()) => Ok(0),
        Err(error) => match error.downcast_ref::<Exit>() {
            Some(Exit(code)) => Ok(*code),
            None => Err(anyhow!("{error:?}")).context(format!("{path} trapped")),
        },
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!("wasm-test-runner: {error:#}");
            ExitCode::from(101)
        }
    }
}
