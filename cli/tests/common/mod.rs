//! Runs the built `palisade` binary and names the example configs and their secrets.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of the binary printed.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `palisade args...` with `env` added and `stdin` piped in.
pub fn palisade(args: &[&str], env: &[(String, String)], stdin: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every filter with a config schema, as the CLI names them.
pub const FILTERS: [&str; 6] =
    ["security-headers", "jwt-authn", "authz", "rate-limit", "request-validation", "field-encryption"];

/// `(filter, path)` of every example config under envoy-config/examples/.
pub fn examples() -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(root().join("envoy-config/examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| (path.file_stem().unwrap().to_string_lossy().into_owned(), path))
        .collect();
    found.sort();
    assert!(found.len() >= FILTERS.len(), "expected an example per filter, found {found:?}");
    found
}

/// The secrets the examples name, as a deployment provides them through the VM environment.
pub fn example_secrets() -> Vec<(String, String)> {
    let base64_32 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="; // 32 x 0x07
    [
        ("PALISADE_FE_USERS_2026_01", base64_32),
        ("PALISADE_FE_USERS_2026_06", "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="),
        ("PALISADE_JWT_HS256_SECRET", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"),
        ("PALISADE_CSRF_KEY", base64_32),
        ("PALISADE_RATE_LIMIT_SEED", "cli-test-rate-limit-seed"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

/// A lookup over `secrets`, as the filters take their environment.
pub fn lookup(secrets: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| secrets.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// A fresh directory under the target's test scratch space.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("palisade-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
