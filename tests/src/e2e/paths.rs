//! Where the runner finds the workspace, the Envoy binary and the built filters.

use std::path::{Path, PathBuf};

use super::E2eError;

/// The workspace root (the repository), where Envoy runs so that `dist/*.wasm` paths resolve.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The Envoy binary: `$PALISADE_ENVOY`, else `<workspace>/.venv/bin/envoy` (installed by `make envoy`).
pub fn envoy_binary() -> Result<PathBuf, E2eError> {
    let path = std::env::var_os("PALISADE_ENVOY")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/envoy"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(E2eError::EnvoyMissing { path })
    }
}

/// The folder of built filters: `$PALISADE_DIST`, else `<workspace>/dist` (filled by `make build`).
pub fn dist_dir() -> PathBuf {
    std::env::var_os("PALISADE_DIST")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("dist"))
}

/// The built `.wasm` of a filter, e.g. `wasm_path("security-headers")`; an error names `make build`.
pub fn wasm_path(filter: &str) -> Result<PathBuf, E2eError> {
    let path = dist_dir().join(format!("{filter}.wasm"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(E2eError::WasmMissing { path })
    }
}
