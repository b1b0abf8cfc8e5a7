//! Every Envoy bootstrap under envoy-config/ passes `envoy --mode validate`.
//!
//! A bootstrap is a YAML file with a top-level `static_resources` key; envoy-config/istio/ holds
//! Kubernetes manifests, not bootstraps, and is skipped. Validation runs from the repository root
//! so `dist/*.wasm` paths resolve, and it loads each wasm file and starts its VM (a missing or
//! broken `.wasm` fails validation): `make build` must have run first.

// Test helpers too may unwrap: a panic here is a failed test (clippy.toml allows it only in #[test]).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use palisade_tests::e2e::{validate, workspace_root};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "istio") {
                yaml_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn is_bootstrap(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap();
    // Multi-document YAML (manifests) does not parse as one value: not a bootstrap.
    match serde_yaml_ng::from_str::<serde_json::Value>(&text) {
        Ok(value) => value.get("static_resources").is_some(),
        Err(_) => false,
    }
}

fn bootstraps() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    yaml_files(&root.join("envoy-config"), &mut files);
    files.into_iter().filter(|p| is_bootstrap(p)).map(|p| p.strip_prefix(&root).unwrap().to_path_buf()).collect()
}

#[test]
fn every_envoy_config_validates() {
    // demo.yaml names generated certificates and a JWKS file, and its field-encryption key comes
    // from the environment: make them (if missing) before validating.
    palisade_tests::demo::prepare_for_validation().unwrap();
    let configs = bootstraps();
    assert!(!configs.is_empty(), "no Envoy bootstrap found under envoy-config/");
    assert!(configs.iter().any(|p| p == Path::new("envoy-config/demo.yaml")), "{configs:?}");

    let failures: Vec<String> =
        configs.iter().filter_map(|config| validate(config).err().map(|e| e.to_string())).collect();

    assert!(
        failures.is_empty(),
        "{} of {} configs failed validation:\n{}",
        failures.len(),
        configs.len(),
        failures.join("\n")
    );
    eprintln!("validated {} Envoy configs: {configs:?}", configs.len());
}

#[test]
fn validation_rejects_a_broken_config() {
    let dir = workspace_root().join("target/palisade-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("broken-{}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "static_resources:\n  clusters:\n  - name: x\n    type: STATIC\n    connect_timeout: not-a-duration\n",
    )
    .unwrap();

    let result = validate(&path);
    std::fs::remove_file(&path).unwrap();

    let err = result.expect_err("a broken config must not validate").to_string();
    assert!(err.contains("rejected"), "{err}");
}
