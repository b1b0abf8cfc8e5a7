//! SHA-256 digests: API-key hashes for jwt-authn, `.wasm` digests for Istio.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes` (jwt-authn hashes a presented key's bytes the same way).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// `text` without one trailing `\n` or `\r\n` (what `echo` or a file's last line adds).
pub fn strip_newline(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

/// `<sha256>  <file>` for each `.wasm` in `dir`, sorted by name (the `sha256sum` format).
pub fn wasm_digests(dir: &Path) -> Result<String, String> {
    let entries = std::fs::read_dir(dir).map_err(|err| format!("cannot read {}: {err}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|err| format!("cannot read {}: {err}", dir.display()))?.path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "wasm") {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(format!("no .wasm files in {} (run `make build` first)", dir.display()));
    }
    files.sort();
    let mut out = String::new();
    for path in files {
        let bytes = std::fs::read(&path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let _ = writeln!(out, "{}  {name}", sha256_hex(&bytes));
    }
    Ok(out)
}
