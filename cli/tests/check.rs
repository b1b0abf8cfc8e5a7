//! `palisade check`: every example passes; bad configs fail with the filter's own message.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{example_secrets, examples, lookup, palisade, scratch};
use palisade_core::config::ConfigError;

/// The message the filter logs for `bytes` (palisade_glue::load_config's format), computed
/// with the same core function the filter's `on_configure` calls.
fn filter_message(filter: &str, bytes: &[u8], secrets: &[(String, String)]) -> String {
    use palisade_core::{authz, encryption, jwt, rate_limit, security_headers, validation};
    let env = lookup(secrets);
    let result: Result<(), ConfigError> = match filter {
        "security-headers" => security_headers::SecurityHeaders::from_json(bytes).map(drop),
        "jwt-authn" => jwt::Policy::from_json(bytes, &env).map(drop),
        "authz" => authz::Authz::from_json(bytes).map(drop),
        "rate-limit" => rate_limit::compile_json(bytes, &env).map(drop),
        "request-validation" => validation::Validator::from_json(bytes, &env).map(drop),
        "field-encryption" => encryption::Policy::from_json(bytes, &env).map(drop),
        other => panic!("no filter {other}"),
    };
    format!("palisade {filter}: invalid configuration: {}", result.unwrap_err())
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn accepts_every_example_config() {
    let secrets = example_secrets();
    for (filter, path) in examples() {
        let run = palisade(&["check", &filter, path.to_str().unwrap()], &secrets, None);
        assert_eq!((run.code, run.stdout.as_str()), (Some(0), "ok\n"), "{filter}: {}", run.stderr);
    }
}

#[test]
fn a_missing_secret_is_named_as_the_filter_names_it() {
    let path = common::root().join("envoy-config/examples/field-encryption.json");
    let run = palisade(&["check", "field-encryption", path.to_str().unwrap()], &[], None);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim_end(),
        "palisade field-encryption: invalid configuration: keys.data_keys[0].env: environment variable \
         PALISADE_FE_USERS_2026_01 is not set"
    );
    assert_eq!(run.stderr.trim_end(), filter_message("field-encryption", &std::fs::read(path).unwrap(), &[]));
}

/// `(filter, config, field path the message must name)`: parse-stage and compile-stage errors.
const BAD: &[(&str, &str, &str)] = &[
    ("security-headers", r#"{"default": {"preset": "strictest"}}"#, "default.preset: unknown variant `strictest`"),
    (
        "security-headers",
        r#"{"default": {"cors": {"allow_origins": ["*"], "allow_credentials": true}}}"#,
        "default.cors",
    ),
    ("jwt-authn", r#"{"rules": [], "realms": "x"}"#, "realms: unknown field `realms`"),
    (
        "jwt-authn",
        r#"{"api_keys": {"p": {"keys": [{"sha256": "abc", "consumer": "c"}]}}, "rules": []}"#,
        "api_keys.p.keys[0].sha256: must be 64 hex digits",
    ),
    ("authz", r#"{"policies": [{"name": "p", "action": "PERMIT"}]}"#, "policies[0].action: unknown variant `PERMIT`"),
    (
        "authz",
        r#"{"policies": [{"name": "p", "rules": [{"to": [{"operation": {"paths": [{"regex": "("}]}}]}]}]}"#,
        "policies[0].rules[0].to[0].operation.paths[0]",
    ),
    ("rate-limit", r#"{"limits": {}, "routes": [], "shadow": "yes"}"#, "shadow: invalid type: string"),
    (
        "rate-limit",
        r#"{"limits": {"l": {"key": ["client_ip"], "rate": {"tokens": 1, "per": "1 fortnight"}}}, "routes": [{"limits": ["l"]}]}"#,
        "limits.l.rate.per",
    ),
    ("request-validation", r#"{"routes": [{"limits": {"max_body_bytes": -1}}]}"#, "routes[0].limits.max_body_bytes"),
    ("field-encryption", r#"{"keys": {"primary": "k", "data_keys": []}, "fields": {}}"#, "missing field `routes`"),
];

#[test]
fn refuses_bad_configs_with_the_filters_message_naming_the_field() {
    let dir = scratch("check-bad");
    for (i, (filter, config, field)) in BAD.iter().enumerate() {
        let path = write(&dir, &format!("bad{i}.json"), config);
        let run = palisade(&["check", filter, &path], &[], None);
        assert_eq!(run.code, Some(1), "{filter} {config}: {}", run.stdout);
        assert_eq!(run.stdout, "");
        let message = run.stderr.trim_end();
        assert_eq!(message, filter_message(filter, config.as_bytes(), &[]));
        assert!(message.contains(field), "{filter}: {message:?} does not name {field:?}");
    }
}

#[test]
fn checks_each_layer_of_a_gateway_bundle_with_its_filters_parser() {
    let secrets = example_secrets();
    let layers: Vec<String> = examples()
        .iter()
        .filter(|(filter, _)| filter != "gateway")
        .map(|(filter, path)| {
            format!(r#"{{"filter": "{filter}", "config": {}}}"#, std::fs::read_to_string(path).unwrap())
        })
        .collect();
    let dir = scratch("check-gateway");
    let good = write(&dir, "good.json", &format!(r#"{{"layers": [{}]}}"#, layers.join(",")));
    let run = palisade(&["check", "gateway", &good], &secrets, None);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "ok\n"), "{}", run.stderr);

    // A layer's refusal is the layer filter's line, its fields named from the bundle's root.
    let preset = filter_message("security-headers", br#"{"default": {"preset": "strictest"}}"#, &[]).replacen(
        "invalid configuration: ",
        "invalid configuration: layers[1].config.",
        1,
    );
    let cases = [
        (
            r#"{"layers": [{"filter": "authz", "config": {}}, {"filter": "security-headers", "config": {"default": {"preset": "strictest"}}}]}"#,
            preset.as_str(),
        ),
        (
            r#"{"layers": [{"filter": "jwt", "config": {}}]}"#,
            "palisade gateway: invalid configuration: layers[0].filter: unknown variant `jwt`, expected one of \
             `security-headers`, `jwt-authn`, `authz`, `rate-limit`, `request-validation`, `field-encryption`",
        ),
        (
            r#"{"layers": [], "x": 1}"#,
            "palisade gateway: invalid configuration: x: unknown field `x`, expected `layers`",
        ),
        (r#"{"layers": []}"#, "palisade gateway: invalid configuration: layers: at least one layer is required"),
        // An absent config is an empty one, as for a separate filter.
        (
            r#"{"layers": [{"filter": "authz"}, {"filter": "rate-limit"}]}"#,
            "palisade rate-limit: invalid configuration: layers[1].config: missing field `limits`",
        ),
        // Duplicate keys reach the layer's parser as written, and it refuses them.
        (
            r#"{"layers": [{"filter": "authz", "config": {"shadow": true, "shadow": false}}]}"#,
            "palisade authz: invalid configuration: layers[0].config: duplicate field `shadow`",
        ),
    ];
    for (i, (bundle, expected)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("bad{i}.json"), bundle);
        let run = palisade(&["check", "gateway", &path], &[], None);
        assert_eq!(run.code, Some(1), "{bundle}");
        let message = run.stderr.trim_end();
        assert!(message.starts_with(expected), "{bundle}:\n  got      {message}\n  expected {expected}");
    }
}

#[test]
fn a_missing_file_and_an_unknown_filter_are_usage_errors() {
    let run = palisade(&["check", "authz", "/nonexistent/palisade.json"], &[], None);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.starts_with("palisade: cannot read /nonexistent/palisade.json"), "{}", run.stderr);
    let run = palisade(&["check", "waf", "x.json"], &[], None);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("invalid value 'waf'"), "{}", run.stderr);
}
