//! The Istio manifests under envoy-config/istio/, checked without a cluster:
//!
//! - each manifest is valid against the `openAPIV3Schema` of its CRD version (Istio's CRDs, copied
//!   to tests/data/istio-crds/), read as Kubernetes reads it: unknown fields rejected (kubectl's
//!   strict field validation), `nullable`, `x-kubernetes-preserve-unknown-fields`, and the CEL
//!   rules (`x-kubernetes-validations`) the manifests can reach, evaluated by hand;
//! - the validator rejects broken manifests (misspelled field, wrong enum, CEL violations, ...);
//! - each WasmPlugin's `pluginConfig` equals envoy-config/examples/<filter>.json and is accepted
//!   by the filter itself (dist/<filter>.wasm in the test host, with the environment variables the
//!   manifest passes from the host and nothing else);
//! - phase and priority put the six plugins in the documented order;
//! - `make istio-manifests` writes release manifests whose `sha256` is that of dist/<filter>.wasm.

// Test helpers too may panic: a panic here is a failed test (clippy.toml allows it only in #[test]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use palisade_tests::e2e::workspace_root;
use palisade_tests::host::Host;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The filters in request order (the order phase and priority must give).
const FILTERS: [&str; 6] =
    ["security-headers", "jwt-authn", "authz", "rate-limit", "request-validation", "field-encryption"];

fn istio_dir() -> PathBuf {
    workspace_root().join("envoy-config/istio")
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// Every document of a (multi-document) YAML file.
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// (file name, document) for every Kubernetes object under envoy-config/istio/ (kustomization.yaml
/// is kustomize's input, not an object).
fn manifests_in(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            yaml_documents(&std::fs::read_to_string(path).unwrap()).into_iter().map(move |doc| (name.clone(), doc))
        })
        .collect()
}

fn wasm_plugins(manifests: &[(String, Value)]) -> BTreeMap<String, Value> {
    manifests
        .iter()
        .filter(|(_, doc)| doc["kind"] == "WasmPlugin")
        .map(|(file, doc)| {
            (
                doc["spec"]["pluginName"].as_str().unwrap_or_else(|| panic!("{file}: no pluginName")).to_string(),
                doc.clone(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CRD schemas as JSON Schema

/// The validators of every served CRD version, by (apiVersion, kind).
struct Crds(BTreeMap<(String, String), Schema>);

struct Schema {
    /// The CRD's openAPIV3Schema, for the CEL walk.
    structural: Value,
    validator: jsonschema::Validator,
}

impl Crds {
    fn load() -> Crds {
        let dir = workspace_root().join("tests/data/istio-crds");
        let mut map = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(crd["kind"], "CustomResourceDefinition", "{}", path.display());
            let group = crd["spec"]["group"].as_str().unwrap();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
            for version in crd["spec"]["versions"].as_array().unwrap() {
                if version["served"] != true {
                    continue;
                }
                let api_version = format!("{group}/{}", version["name"].as_str().unwrap());
                let structural = version["schema"]["openAPIV3Schema"].clone();
                let schema = json_schema_of(&structural, &api_version, kind);
                let validator = jsonschema::draft4::new(&schema)
                    .unwrap_or_else(|e| panic!("{api_version} {kind}: schema does not compile: {e}"));
                map.insert((api_version, kind.to_string()), Schema { structural, validator });
            }
        }
        assert!(map.len() >= 4, "CRDs not found in {}", dir.display());
        Crds(map)
    }

    /// Every reason Kubernetes would refuse `object`; empty when it is valid.
    fn errors(&self, object: &Value) -> Vec<String> {
        let key = (
            object["apiVersion"].as_str().unwrap_or("").to_string(),
            object["kind"].as_str().unwrap_or("").to_string(),
        );
        let Some(schema) = self.0.get(&key) else {
            return vec![format!("no CRD serves apiVersion {:?} kind {:?}", key.0, key.1)];
        };
        let mut errors: Vec<String> =
            schema.validator.iter_errors(object).map(|e| format!("{}: {e}", e.instance_path())).collect();
        if errors.is_empty() {
            cel_errors(&schema.structural, object, "", &mut errors);
        }
        errors
    }
}

/// The structural schema as the JSON Schema (draft 4, the dialect OpenAPI v3.0 schemas follow)
/// that the API server effectively applies:
/// - an object without `x-kubernetes-preserve-unknown-fields` and without `additionalProperties`
///   gets `additionalProperties: false` (the API server prunes unknown fields, and kubectl's
///   default strict field validation turns that into an error);
/// - `nullable: true` admits `null`;
/// - `format: int32`/`int64` become bounds (JSON Schema treats formats as annotations);
/// - the root gets `apiVersion`, `kind` and `metadata`, which the API server validates itself.
fn json_schema_of(structural: &Value, api_version: &str, kind: &str) -> Value {
    let mut schema = convert(structural);
    let root = schema.as_object_mut().unwrap();
    let properties = root.entry("properties").or_insert_with(|| json!({})).as_object_mut().unwrap();
    properties.insert("apiVersion".into(), json!({"enum": [api_version]}));
    properties.insert("kind".into(), json!({"enum": [kind]}));
    properties.insert(
        "metadata".into(),
        json!({
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "maxLength": 253, "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
                "namespace": {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }),
    );
    let required = root.entry("required").or_insert_with(|| json!([])).as_array_mut().unwrap();
    required.extend([json!("apiVersion"), json!("kind"), json!("metadata")]);
    schema
}

fn convert(node: &Value) -> Value {
    let Some(object) = node.as_object() else { return node.clone() };
    let mut out = Map::new();
    for (key, value) in object {
        let converted = match key.as_str() {
            "properties" | "patternProperties" => {
                Value::Object(value.as_object().unwrap().iter().map(|(k, v)| (k.clone(), convert(v))).collect())
            }
            "items" | "additionalProperties" | "not" => convert(value),
            "anyOf" | "allOf" | "oneOf" => Value::Array(value.as_array().unwrap().iter().map(convert).collect()),
            // Documentation and Kubernetes extensions: no JSON Schema meaning (CEL rules are
            // evaluated by `cel_errors`; int-or-string already comes with its anyOf).
            "description" | "nullable" | "format" => continue,
            k if k.starts_with("x-kubernetes-") => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    match object.get("format").and_then(Value::as_str) {
        Some("int32") => {
            out.insert("minimum".into(), json!(i32::MIN));
            out.insert("maximum".into(), json!(i32::MAX));
        }
        Some("int64") => {
            out.insert("minimum".into(), json!(i64::MIN));
            out.insert("maximum".into(), json!(i64::MAX));
        }
        _ => {}
    }
    if object.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(ty)) = out.get("type").cloned() {
            out.insert("type".into(), json!([ty, "null"]));
        }
    }
    let preserves = object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if object.get("type") == Some(&json!("object")) && !preserves && !out.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// CEL rules

/// Evaluates the `x-kubernetes-validations` rules on every node of `instance` that the schema
/// describes. Each rule the Istio CRDs use on a reachable node is implemented below by its exact
/// text; a rule not listed is reported as an error, so a newer CRD cannot be half-checked.
fn cel_errors(schema: &Value, instance: &Value, path: &str, errors: &mut Vec<String>) {
    for rule in schema["x-kubernetes-validations"].as_array().into_iter().flatten() {
        let text = rule["rule"].as_str().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        match cel_rule(&text, instance) {
            Some(true) => {}
            Some(false) => errors.push(format!("{path}: {}", rule["message"].as_str().unwrap_or(&text))),
            None => errors.push(format!("{path}: CEL rule not implemented by this test: {text}")),
        }
    }
    match instance {
        Value::Object(map) => {
            for (key, value) in map {
                let child = if let Some(property) = schema["properties"].get(key) {
                    property
                } else if schema["additionalProperties"].is_object() {
                    &schema["additionalProperties"]
                } else {
                    continue;
                };
                cel_errors(child, value, &format!("{path}/{key}"), errors);
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                cel_errors(&schema["items"], item, &format!("{path}/{i}"), errors);
            }
        }
        _ => {}
    }
}

/// `Some(holds)` for the rules this test implements, `None` for any other.
fn cel_rule(rule: &str, this: &Value) -> Option<bool> {
    let keys = || this.as_object().into_iter().flat_map(|m| m.keys());
    let has = |field: &str| this.get(field).is_some();
    Some(match rule {
        r#"!self.contains("*")"# => !this.as_str()?.contains('*'),
        r#"self.all(key, !key.contains("*"))"# => keys().all(|k| !k.contains('*')),
        "self.all(key, key.size() != 0)" => keys().all(|k| !k.is_empty()),
        "self.size() == 0" => this.as_str()?.is_empty(),
        "self.all(key, 0 < int(key) && int(key) <= 65535)" => {
            keys().all(|k| k.parse::<i64>().is_ok_and(|port| (1..=65535).contains(&port)))
        }
        r#"(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)"# => {
            this.get("valueFrom").and_then(Value::as_str) != Some("HOST") || !has("value")
        }
        "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1" => {
            ["selector", "targetRef", "targetRefs"].iter().filter(|f| has(f)).count() <= 1
        }
        "has(self.portLevelMtls) ? (((has(self.selector) && has(self.selector.matchLabels)) ? self.selector.matchLabels : {}).size() > 0) : true" => {
            !has("portLevelMtls") || this["selector"]["matchLabels"].as_object().is_some_and(|m| !m.is_empty())
        }
        // The scheme must be one Istio fetches; a URL without scheme is read as oci.
        r#"isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : (isURL("http://" + self) && url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])"# => {
            let url = this.as_str()?;
            let rest = match url.split_once("://") {
                Some((scheme, rest)) if ["http", "https", "oci", "file"].contains(&scheme) => rest,
                Some(_) => return Some(false),
                None => url,
            };
            !rest.is_empty() && !rest.contains(char::is_whitespace)
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn every_manifest_is_valid_against_its_crd() {
    let crds = Crds::load();
    let manifests = manifests_in(&istio_dir());
    let kinds: Vec<&str> = manifests.iter().map(|(_, m)| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "WasmPlugin").count(), FILTERS.len(), "{kinds:?}");
    assert!(kinds.contains(&"PeerAuthentication"), "{kinds:?}");
    for (file, manifest) in &manifests {
        let errors = crds.errors(manifest);
        assert!(errors.is_empty(), "{file} is not valid against its CRD:\n{}", errors.join("\n"));
    }
}

#[test]
fn the_peer_authentication_is_the_guides_strict_mtls() {
    let manifests = manifests_in(&istio_dir());
    let (_, peer) = manifests.iter().find(|(_, m)| m["kind"] == "PeerAuthentication").unwrap();
    assert_eq!(peer["apiVersion"], "security.istio.io/v1beta1");
    assert_eq!(peer["metadata"], json!({"name": "default", "namespace": "production"}));
    assert_eq!(peer["spec"], json!({"mtls": {"mode": "STRICT"}}));
}

#[test]
fn kustomization_lists_every_manifest() {
    let dir = istio_dir();
    let kustomization: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    let mut listed: Vec<String> =
        kustomization["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    listed.sort();
    let mut files: Vec<String> = manifests_in(&dir).into_iter().map(|(file, _)| file).collect();
    files.dedup();
    assert_eq!(listed, files);
}

/// `base` with each (JSON pointer, value) set, or removed for `None`; the parent must exist.
fn edited(base: &Value, edits: &[(&str, Option<Value>)]) -> Value {
    let mut copy = base.clone();
    for (pointer, value) in edits {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        match (copy.pointer_mut(parent).unwrap(), value) {
            (Value::Object(map), Some(value)) => drop(map.insert(key.to_string(), value.clone())),
            (Value::Object(map), None) => drop(map.remove(key).unwrap()),
            (Value::Array(items), Some(value)) => items[key.parse::<usize>().unwrap()] = value.clone(),
            (other, _) => panic!("{pointer}: cannot edit {other}"),
        }
    }
    copy
}

/// A valid WasmPlugin and PeerAuthentication, each broken in one way the API server refuses.
#[test]
fn the_validator_rejects_broken_manifests() {
    let crds = Crds::load();
    let manifests = manifests_in(&istio_dir());
    let plugin = wasm_plugins(&manifests)["jwt-authn"].clone();
    let peer = manifests.iter().find(|(_, m)| m["kind"] == "PeerAuthentication").unwrap().1.clone();
    assert!(crds.errors(&plugin).is_empty() && crds.errors(&peer).is_empty());

    let set = |base: &Value, pointer: &str, value: Value| edited(base, &[(pointer, Some(value))]);
    let remove = |base: &Value, pointer: &str| edited(base, &[(pointer, None)]);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "misspelled field",
            edited(&plugin, &[("/spec/failStrategy", None), ("/spec/failStratgy", Some(json!("FAIL_CLOSE")))]),
            "'failStratgy' was unexpected",
        ),
        ("failStrategy not in enum", set(&plugin, "/spec/failStrategy", json!("FAIL_CLOSED")), "/spec/failStrategy"),
        ("phase not in enum", set(&plugin, "/spec/phase", json!("AUTHORIZATION")), "/spec/phase"),
        ("priority not an integer", set(&plugin, "/spec/priority", json!("high")), "/spec/priority"),
        ("priority beyond int32", set(&plugin, "/spec/priority", json!(1u64 << 31)), "/spec/priority"),
        ("sha256 not lowercase hex", set(&plugin, "/spec/sha256", json!("AB".repeat(32))), "/spec/sha256"),
        ("url missing", remove(&plugin, "/spec/url"), "\"url\" is a required property"),
        ("url scheme", set(&plugin, "/spec/url", json!("ftp://example.com/x.wasm")), "url must have schema"),
        (
            "inline value with valueFrom HOST",
            set(&plugin, "/spec/vmConfig/env/0/value", json!("secret")),
            "value may only be set when valueFrom is INLINE",
        ),
        ("env valueFrom not in enum", set(&plugin, "/spec/vmConfig/env/0/valueFrom", json!("SECRET")), "valueFrom"),
        ("unknown vmConfig field", set(&plugin, "/spec/vmConfig/envs", json!([])), "'envs' was unexpected"),
        (
            "selector and targetRef",
            set(&plugin, "/spec/targetRef", json!({"kind": "Gateway", "name": "ingress"})),
            "only one of targetRefs or selector",
        ),
        ("wildcard label", set(&plugin, "/spec/selector/matchLabels/istio", json!("ingress*")), "wildcard not allowed"),
        ("metadata without name", remove(&plugin, "/metadata/name"), "\"name\" is a required property"),
        ("unknown apiVersion", set(&plugin, "/apiVersion", json!("extensions.istio.io/v1")), "no CRD serves"),
        ("unknown top-level field", set(&plugin, "/specs", json!({})), "'specs' was unexpected"),
        ("mTLS mode not in enum", set(&peer, "/spec/mtls/mode", json!("STRICTEST")), "/spec/mtls/mode"),
        (
            "portLevelMtls without selector",
            set(&peer, "/spec/portLevelMtls", json!({"8080": {"mode": "DISABLE"}})),
            "portLevelMtls requires selector",
        ),
        (
            "port out of range",
            edited(
                &peer,
                &[
                    ("/spec/portLevelMtls", Some(json!({"70000": {"mode": "DISABLE"}}))),
                    ("/spec/selector", Some(json!({"matchLabels": {"app": "x"}}))),
                ],
            ),
            "port must be between",
        ),
    ];
    for (what, manifest, expected) in &cases {
        let errors = crds.errors(manifest);
        assert!(!errors.is_empty(), "{what}: accepted");
        assert!(errors.iter().any(|e| e.contains(expected)), "{what}: errors do not mention {expected:?}: {errors:?}");
    }
    // A pluginConfig is free-form (x-kubernetes-preserve-unknown-fields): its checks are the filter's.
    let free = set(&plugin, "/spec/pluginConfig/anything", json!({"goes": [1]}));
    assert!(crds.errors(&free).is_empty());
}

/// Each `pluginConfig` is its example. `PALISADE_UPDATE_ISTIO=1 cargo test -p palisade-tests
/// --test istio plugin_configs_equal` copies the examples into the manifests instead.
#[test]
fn plugin_configs_equal_the_envoy_examples() {
    let update = std::env::var_os("PALISADE_UPDATE_ISTIO").is_some();
    let plugins = wasm_plugins(&manifests_in(&istio_dir()));
    let mut names: Vec<&str> = plugins.keys().map(String::as_str).collect();
    names.sort_by_key(|name| FILTERS.iter().position(|f| f == name));
    assert_eq!(names, FILTERS);
    for filter in FILTERS {
        let path = workspace_root().join(format!("envoy-config/examples/{filter}.json"));
        let example: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if update {
            write_plugin_config(&istio_dir().join(format!("{filter}.yaml")), &path);
            continue;
        }
        assert_eq!(
            plugins[filter]["spec"]["pluginConfig"],
            example,
            "{filter}: pluginConfig differs from {} (PALISADE_UPDATE_ISTIO=1 rewrites it)",
            path.display()
        );
    }
}

/// Replaces everything after `pluginConfig:` with the example's JSON text, verbatim (JSON is
/// YAML; its strings are all double-quoted, so no YAML 1.1 reading turns one into a boolean).
fn write_plugin_config(manifest: &Path, example: &Path) {
    const KEY: &str = "\n  pluginConfig:\n";
    let text = std::fs::read_to_string(manifest).unwrap();
    let end = text.find(KEY).unwrap_or_else(|| panic!("{}: no pluginConfig", manifest.display())) + KEY.len();
    let json = std::fs::read_to_string(example).unwrap();
    let body: String = json.lines().map(|line| format!("    {line}").trim_end().to_string() + "\n").collect();
    std::fs::write(manifest, format!("{}{body}", &text[..end])).unwrap();
}

/// The environment variables a manifest passes to its VM: all from the host, none inline.
fn host_env(plugin: &Value) -> Vec<String> {
    plugin["spec"]["vmConfig"]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|var| {
            assert_eq!(var["valueFrom"], "HOST", "{var}: secrets come from the host, never inline");
            assert!(var.get("value").is_none(), "{var}");
            var["name"].as_str().unwrap().to_string()
        })
        .collect()
}

/// A test value for each secret: 32 random-looking bytes in the encoding each filter documents.
fn secret_for(var: &str) -> &'static str {
    match var {
        // jwt-authn hmac_secret, "encoding": "base64url" (32 bytes).
        "PALISADE_JWT_HS256_SECRET" => "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I",
        // field-encryption data keys and the CSRF key: standard base64 of 32 bytes.
        "PALISADE_FE_USERS_2026_01" => "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "PALISADE_FE_USERS_2026_06" => "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
        "PALISADE_CSRF_KEY" => "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=",
        // rate-limit hash_seed_env: any non-empty string.
        "PALISADE_RATE_LIMIT_SEED" => "istio-test-rate-limit-seed",
        other => panic!("no test value for {other}: add one"),
    }
}

/// Each pluginConfig is accepted by the filter's own parser: dist/<filter>.wasm configured in the
/// test host with that config and exactly the manifest's host environment variables.
#[test]
fn plugin_configs_load_in_their_filters() {
    let plugins = wasm_plugins(&manifests_in(&istio_dir()));
    for filter in FILTERS {
        let plugin = &plugins[filter];
        let host = Host::new();
        let mut builder = host.plugin(filter).config(plugin["spec"]["pluginConfig"].to_string());
        for var in host_env(plugin) {
            builder = builder.env(&var, secret_for(&var));
        }
        if let Err(e) = builder.load() {
            panic!("{filter}: the filter refuses the manifest's pluginConfig: {e}");
        }
    }
}

/// The host route really detects a refusal: a config with an unknown field, and a config whose
/// secret the VM environment lacks, do not load.
#[test]
fn a_broken_plugin_config_does_not_load() {
    let plugins = wasm_plugins(&manifests_in(&istio_dir()));
    let mut config = plugins["authz"]["spec"]["pluginConfig"].clone();
    config["default_acton"] = json!("allow");
    let err = Host::new().plugin("authz").config(config.to_string()).load().err().expect("unknown field accepted");
    assert!(err.to_string().contains("default_acton"), "{err}");

    let jwt = &plugins["jwt-authn"]["spec"]["pluginConfig"];
    let err = Host::new().plugin("jwt-authn").config(jwt.to_string()).load().err().expect("loaded without its secret");
    assert!(err.to_string().contains("PALISADE_JWT_HS256_SECRET"), "{err}");
}

fn phase_rank(phase: &str) -> u8 {
    // Istio inserts AUTHN plugins before its authentication filters, AUTHZ before its
    // authorization filters, STATS before its stats filter; UNSPECIFIED_PHASE at the end.
    match phase {
        "AUTHN" => 0,
        "AUTHZ" => 1,
        "STATS" => 2,
        "UNSPECIFIED_PHASE" => 3,
        other => panic!("unknown phase {other}"),
    }
}

#[test]
fn phase_and_priority_order_the_chain() {
    let plugins = wasm_plugins(&manifests_in(&istio_dir()));
    // Istio sorts by phase, then by priority, higher first.
    let position =
        |p: &Value| (phase_rank(p["spec"]["phase"].as_str().unwrap()), -p["spec"]["priority"].as_i64().unwrap());
    let mut order: Vec<&str> = FILTERS.to_vec();
    order.sort_by_key(|f| position(&plugins[*f]));
    assert_eq!(order, FILTERS);
    // No two plugins share a (phase, priority): Istio would order them by creation time.
    let mut positions: Vec<_> = FILTERS.iter().map(|f| position(&plugins[*f])).collect();
    positions.dedup();
    assert_eq!(positions.len(), FILTERS.len());
    assert_eq!(plugins["jwt-authn"]["spec"]["phase"], "AUTHN");
    assert_eq!(plugins["authz"]["spec"]["phase"], "AUTHZ");
}

#[test]
fn every_plugin_fails_closed_on_the_ingress_gateway() {
    let plugins = wasm_plugins(&manifests_in(&istio_dir()));
    for (filter, plugin) in &plugins {
        let spec = &plugin["spec"];
        assert_eq!(spec["failStrategy"], "FAIL_CLOSE", "{filter}");
        assert_eq!(spec["type"], "HTTP", "{filter}");
        assert_eq!(spec["selector"], json!({"matchLabels": {"istio": "ingressgateway"}}), "{filter}");
        assert_eq!(spec["url"], format!("oci://ghcr.io/palisade/{filter}:0.1.0"), "{filter}");
        // Committed manifests carry no digest: `make istio` writes it from the build (see below).
        assert!(spec.get("sha256").is_none(), "{filter}: a committed sha256 would go stale with every build");
    }
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e} (run `make build`)", path.display()));
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `make istio-manifests` (what `make istio` runs after `make build`) writes one release manifest
/// per filter: the template with `url` at the release download and the `sha256` of the module
/// that Istio will check, valid against the CRD.
#[test]
fn make_istio_writes_the_digests_of_the_built_modules() {
    let root = workspace_root();
    let out = root.join(format!("target/palisade-istio-{}", std::process::id()));
    let base = "https://downloads.example.com/palisade/0.1.0";
    let output = Command::new("make")
        .current_dir(&root)
        .args(["--no-print-directory", "-s", "istio-manifests"])
        .arg(format!("ISTIO_OUT={}", out.display()))
        .arg(format!("ISTIO_WASM_URL={base}"))
        .output()
        .unwrap();
    assert!(output.status.success(), "make istio-manifests failed: {}", String::from_utf8_lossy(&output.stderr));

    let crds = Crds::load();
    let templates = wasm_plugins(&manifests_in(&istio_dir()));
    let rendered_all = manifests_in(&out);
    let rendered = wasm_plugins(&rendered_all);
    assert_eq!(rendered.len(), FILTERS.len());
    for (file, manifest) in &rendered_all {
        let errors = crds.errors(manifest);
        assert!(errors.is_empty(), "{file}:\n{}", errors.join("\n"));
    }
    for filter in FILTERS {
        let spec = &rendered[filter]["spec"];
        assert_eq!(spec["sha256"], sha256_hex(&root.join(format!("dist/{filter}.wasm"))), "{filter}");
        assert_eq!(spec["url"], format!("{base}/{filter}.wasm"), "{filter}");
        let mut expected = templates[filter].clone();
        expected["spec"]["url"] = spec["url"].clone();
        expected["spec"]["sha256"] = spec["sha256"].clone();
        assert_eq!(rendered[filter], expected, "{filter}: only url and sha256 may change");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_oci_recipe_is_the_compat_layout() {
    let dockerfile = std::fs::read_to_string(istio_dir().join("oci/Dockerfile")).unwrap();
    let instructions: Vec<&str> =
        dockerfile.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(instructions.first(), Some(&"FROM scratch"));
    // Exactly one layer, holding plugin.wasm at the root.
    let layers: Vec<&&str> =
        instructions.iter().filter(|l| l.starts_with("COPY") || l.starts_with("ADD") || l.starts_with("RUN")).collect();
    assert_eq!(layers.len(), 1, "{layers:?}");
    assert!(layers[0].starts_with("COPY ") && layers[0].ends_with(" ./plugin.wasm"), "{layers:?}");
}
