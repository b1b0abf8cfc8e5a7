//! JSON Schemas of the filters' configs, generated from the serde types the filters parse
//! (palisade-core's `schema` feature), so a schema cannot describe a field the parser lacks.

use std::path::Path;

use palisade_core::{authz, encryption, jwt, rate_limit, security_headers, validation};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{json, Value};

use crate::check::Filter;

/// The schema of `filter`'s config, as a JSON value.
pub fn generate(filter: Filter) -> Value {
    let mut schema = match filter {
        Filter::SecurityHeaders => of::<security_headers::config::SecurityHeadersConfig>(),
        Filter::JwtAuthn => of::<jwt::config::JwtAuthnConfig>(),
        Filter::Authz => of::<authz::config::AuthzConfig>(),
        Filter::RateLimit => of::<rate_limit::config::RateLimitConfig>(),
        Filter::RequestValidation => {
            let mut schema = of::<validation::ValidationConfig>();
            restrict_keys::<validation::Rule>(&mut schema, "/properties/rule_modes");
            schema
        }
        Filter::FieldEncryption => of::<encryption::config::EncryptionConfig>(),
        Filter::Gateway => return gateway(),
    };
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".into(), json!(format!("Palisade {} filter configuration", filter.name())));
    }
    schema
}

/// Pretty JSON with a final newline: the content of `envoy-config/schemas/<filter>.schema.json`.
pub fn render(filter: Filter) -> String {
    let mut text = serde_json::to_string_pretty(&generate(filter)).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes every schema to `dir/<filter>.schema.json`; returns the list of files written.
pub fn write_all(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let mut written = String::new();
    for filter in Filter::SINGLE.into_iter().chain([Filter::Gateway]) {
        let path = dir.join(file_name(filter));
        std::fs::write(&path, render(filter)).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        written.push_str(&format!("{}\n", path.display()));
    }
    Ok(written)
}

/// `<filter>.schema.json`.
pub fn file_name(filter: Filter) -> String {
    format!("{}.schema.json", filter.name())
}

/// Map keys that deserialize into an enum (schemars describes only the values of a map):
/// adds `propertyNames` with the enum's schema to the map at `pointer`.
fn restrict_keys<K: JsonSchema>(schema: &mut Value, pointer: &str) {
    let settings = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    let mut keys = settings.into_generator().into_root_schema_for::<K>().to_value();
    if let Some(keys) = keys.as_object_mut() {
        keys.remove("$schema");
        keys.remove("title");
    }
    if let Some(Value::Object(map)) = schema.pointer_mut(pointer) {
        map.insert("propertyNames".into(), keys);
    }
}

fn of<T: JsonSchema>() -> Value {
    let schema: Schema = SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>();
    schema.to_value()
}

/// The bundle format: each layer's `config` refers to its filter's schema file beside this one.
fn gateway() -> Value {
    let names: Vec<&str> = Filter::SINGLE.iter().map(|f| f.name()).collect();
    let by_filter: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({
                "if": {"properties": {"filter": {"const": name}}},
                "then": {"properties": {"config": {"$ref": format!("{name}.schema.json")}}}
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Palisade gateway bundle configuration",
        "description": "Filters composed in one config: each layer names a filter and holds that filter's config.",
        "type": "object",
        "properties": {
            "layers": {
                "description": "The filters, in chain order.",
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "filter": {"description": "The filter this layer runs.", "enum": names},
                        "config": {"description": "The filter's configuration (absent: empty).", "type": "object"}
                    },
                    "required": ["filter"],
                    "additionalProperties": false,
                    "allOf": by_filter
                }
            }
        },
        "required": ["layers"],
        "additionalProperties": false
    })
}
