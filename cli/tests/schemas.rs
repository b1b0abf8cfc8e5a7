//! The checked-in JSON Schemas: current with the config types, and in agreement with the
//! filters' parsers on every example config and on configs both must refuse.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{example_secrets, examples, lookup, palisade, root, FILTERS};
use palisade_core::config::ConfigError;
use serde_json::Value;

fn schema_path(filter: &str) -> std::path::PathBuf {
    root().join("envoy-config/schemas").join(format!("{filter}.schema.json")).canonicalize().unwrap_or_else(|err| {
        panic!("envoy-config/schemas/{filter}.schema.json: {err}; generate the schemas with `make schemas`")
    })
}

/// A validator for the checked-in schema of `filter`; relative `$ref`s resolve beside it.
fn validator(filter: &str) -> jsonschema::Validator {
    let path = schema_path(filter);
    let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    jsonschema::options()
        .with_base_uri(format!("file://{}", path.display()))
        .build(&schema)
        .unwrap_or_else(|err| panic!("{filter}.schema.json is not a valid schema: {err}"))
}

fn schema_errors(filter: &str, instance: &Value) -> Vec<String> {
    validator(filter).iter_errors(instance).map(|err| format!("{}: {err}", err.instance_path())).collect()
}

/// The filter's own parser and compiler (what its `on_configure` calls).
fn parse(filter: &str, bytes: &[u8], secrets: &[(String, String)]) -> Result<(), ConfigError> {
    use palisade_core::{authz, encryption, jwt, rate_limit, security_headers, validation};
    let env = lookup(secrets);
    match filter {
        "security-headers" => security_headers::SecurityHeaders::from_json(bytes).map(drop),
        "jwt-authn" => jwt::Policy::from_json(bytes, &env).map(drop),
        "authz" => authz::Authz::from_json(bytes).map(drop),
        "rate-limit" => rate_limit::compile_json(bytes, &env).map(drop),
        "request-validation" => validation::Validator::from_json(bytes, &env).map(drop),
        "field-encryption" => encryption::Policy::from_json(bytes, &env).map(drop),
        other => panic!("no filter {other}"),
    }
}

#[test]
fn checked_in_schemas_are_what_the_config_types_generate() {
    for filter in FILTERS.iter().copied().chain(["gateway"]) {
        let run = palisade(&["schema", filter], &[], None);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let checked_in = std::fs::read_to_string(schema_path(filter)).unwrap();
        assert!(
            checked_in == run.stdout,
            "envoy-config/schemas/{filter}.schema.json is stale (the config types changed): regenerate it with \
             `make schemas` and commit the result"
        );
    }
}

#[test]
fn every_example_passes_its_schema_and_its_filters_parser() {
    let secrets = example_secrets();
    for (filter, path) in examples() {
        let bytes = std::fs::read(&path).unwrap();
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(schema_errors(&filter, &config), Vec::<String>::new(), "{}", path.display());
        if filter == "gateway" {
            // The bundle's parser (mirrored by `palisade check gateway`) and each layer's.
            let run = palisade(&["check", "gateway", path.to_str().unwrap()], &secrets, None);
            assert_eq!((run.code, run.stdout.as_str()), (Some(0), "ok\n"), "{}", run.stderr);
        } else {
            parse(&filter, &bytes, &secrets).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        }
    }
}

/// Configs both the schema and the parser refuse: wrong enum values, unknown fields, wrong
/// types, missing required fields, numbers out of range.
const INVALID: &[(&str, &str)] = &[
    ("security-headers", r#"{"default": {"preset": "strictest"}}"#),
    ("security-headers", r#"{"routes": [{"match": {}, "policy": {"hsts": {"max_age": -1}}}]}"#),
    ("jwt-authn", r#"{"rules": [], "realms": "x"}"#),
    ("jwt-authn", r#"{"providers": {"p": {"issuer": "i", "algorithms": ["none"]}}, "rules": []}"#),
    ("jwt-authn", r#"{"rules": [{"requires": "sometimes"}]}"#),
    ("authz", r#"{"policies": [{"name": "p", "action": "PERMIT"}]}"#),
    ("authz", r#"{"policies": [{"name": "p", "rules": [{"to": [{"operation": {"paths": [{"like": "/x"}]}}]}]}]}"#),
    ("rate-limit", r#"{"limits": {}, "routes": [], "shadow": "yes"}"#),
    ("rate-limit", r#"{"limits": {"l": {"key": ["client_port"], "rate": {"tokens": 1, "per": "1s"}}}, "routes": []}"#),
    ("request-validation", r#"{"routes": [{"limits": {"max_body_bytes": -1}}]}"#),
    ("request-validation", r#"{"rule_modes": {"sqli": "sometimes"}}"#),
    ("request-validation", r#"{"rule_modes": {"sqlx": "shadow"}}"#),
    ("field-encryption", r#"{"keys": {"primary": "k", "data_keys": []}, "fields": {}}"#),
    (
        "field-encryption",
        r#"{"keys": {"primary": "k", "data_keys": []}, "fields": {"f": {"mode": "ecb"}}, "routes": []}"#,
    ),
];

#[test]
fn invalid_configs_fail_both_the_schema_and_the_parser() {
    for (filter, config) in INVALID {
        let value: Value = serde_json::from_str(config).unwrap();
        assert!(!schema_errors(filter, &value).is_empty(), "{filter} schema accepts {config}");
        assert!(parse(filter, config.as_bytes(), &[]).is_err(), "{filter} parser accepts {config}");
    }
}

#[test]
fn the_gateway_schema_checks_each_layer_against_its_filters_schema() {
    let layers: Vec<Value> = examples()
        .iter()
        .filter(|(filter, _)| filter != "gateway")
        .map(|(filter, path)| {
            let config: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            serde_json::json!({"filter": filter, "config": config})
        })
        .collect();
    let bundle = serde_json::json!({ "layers": layers });
    assert_eq!(schema_errors("gateway", &bundle), Vec::<String>::new());

    let bad_layer =
        serde_json::json!({"layers": [{"filter": "security-headers", "config": {"default": {"preset": "x"}}}]});
    let errors = schema_errors("gateway", &bad_layer);
    assert!(errors.iter().any(|e| e.starts_with("/layers/0/config/default/preset")), "{errors:?}");
    for bad in [
        serde_json::json!({"layers": [{"filter": "waf", "config": {}}]}),
        serde_json::json!({"layers": []}),
        serde_json::json!({"layers": [{"filter": "authz", "config": {"shadow": "yes"}}]}),
        serde_json::json!({"layers": [{"config": {}}]}),
        serde_json::json!({"layers": [], "extra": 1}),
    ] {
        assert!(!schema_errors("gateway", &bad).is_empty(), "gateway schema accepts {bad}");
    }
}

#[test]
fn schema_write_produces_the_checked_in_files() {
    let dir = common::scratch("schemas");
    let run = palisade(&["schema", "--write", dir.to_str().unwrap()], &[], None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), FILTERS.len() + 1);
    for filter in FILTERS.iter().copied().chain(["gateway"]) {
        let written = std::fs::read_to_string(dir.join(format!("{filter}.schema.json"))).unwrap();
        assert_eq!(written, std::fs::read_to_string(schema_path(filter)).unwrap(), "{filter}");
    }
}
