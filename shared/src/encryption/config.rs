//! The filter's configuration as written, and its compilation into a [`Policy`] that is valid
//! by construction: keys decoded and unwrapped, pointers parsed, fields resolved.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;

use crate::config::{from_json, ConfigError};
use crate::identity::ClaimPath;
use crate::route::{RouteMatchConfig, Routes};

use super::ciphertext::Mode;
use super::envelope::{self, UnwrapError};
use super::keyring::{DataKey, Keyring, KEY_LEN};
use super::pointer::{Pointer, RecordId, Segment};
use super::usage::{UsageLimits, DEFAULT_HARD_STOP, DEFAULT_WARN_AFTER, NIST_RANDOM_NONCE_LIMIT};

/// Default largest body the filter buffers (below Envoy's 1 MiB default buffer limit).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1_000_000;

/// The whole config.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The keyring.
    pub keys: KeysConfig,
    /// Logical fields by name; the name is bound into every ciphertext.
    pub fields: BTreeMap<String, FieldConfig>,
    /// Per-route rules; the first route that matches wins.
    pub routes: Vec<RouteConfig>,
    /// Largest body buffered and transformed.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Re-encrypt request ciphertexts made under an older key with the primary key.
    #[serde(default)]
    pub rewrap: bool,
    /// Usage thresholds per key.
    #[serde(default)]
    pub usage: UsageConfig,
}

fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

/// The keyring as written.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Id of the key that encrypts.
    pub primary: String,
    /// Keys with a lower version no longer decrypt.
    #[serde(default = "one")]
    pub min_version: u32,
    /// Data keys.
    pub data_keys: Vec<DataKeyConfig>,
    /// Keys that unwrap `wrapped` data keys.
    #[serde(default)]
    pub key_encryption_keys: Vec<KekConfig>,
    /// Allows `inline` key material. For tests only: a config is not a secret store.
    #[serde(default)]
    pub insecure_inline_keys_for_tests: bool,
}

fn one() -> u32 {
    1
}

/// One data key: exactly one of `env`, `wrapped` (with `kek`), `inline`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DataKeyConfig {
    /// Written into every ciphertext.
    pub id: String,
    /// At least 1; compared with `min_version`.
    pub version: u32,
    /// Environment variable holding the key, standard base64 of 32 bytes.
    #[serde(default)]
    pub env: Option<String>,
    /// The key wrapped under `kek` (base64url, see the envelope module).
    #[serde(default)]
    pub wrapped: Option<String>,
    /// Id of the key-encryption key that unwraps `wrapped`.
    #[serde(default)]
    pub kek: Option<String>,
    /// The key itself, standard base64; only with `insecure_inline_keys_for_tests`.
    #[serde(default)]
    pub inline: Option<String>,
}

/// A key-encryption key: exactly one of `env`, `inline`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KekConfig {
    /// Referenced by data keys' `kek`.
    pub id: String,
    /// Environment variable holding the key, standard base64 of 32 bytes.
    #[serde(default)]
    pub env: Option<String>,
    /// Only with `insecure_inline_keys_for_tests`.
    #[serde(default)]
    pub inline: Option<String>,
}

/// A logical field.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// `randomized` (AES-GCM, default) or `deterministic` (AES-SIV, reveals equality).
    #[serde(default)]
    pub mode: ModeConfig,
    /// Identity claims bound into the ciphertext.
    #[serde(default)]
    pub context: Vec<ContextConfig>,
    /// Who may see the plaintext; any one condition suffices; empty means nobody.
    #[serde(default)]
    pub readers: Vec<ReaderConfig>,
    /// What a caller who is not a reader gets.
    #[serde(default)]
    pub unreadable: RedactionConfig,
    /// What a reader gets when a value does not decrypt.
    #[serde(default)]
    pub undecryptable: RedactionConfig,
}

/// Encryption mode as written.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModeConfig {
    /// AES-256-GCM, random nonce.
    #[default]
    Randomized,
    /// AES-256-SIV.
    Deterministic,
}

/// A context value taken from the caller's identity.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// Name bound with the value (`tenant`).
    pub name: String,
    /// Claim path (`tenant_id`, `org.id`, `[https://x/tenant]`).
    pub claim: String,
}

/// A reader condition: the claim holds one of `any_of`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// Claim path.
    pub claim: String,
    /// Accepted values.
    pub any_of: Vec<String>,
    /// Split a string claim on spaces (OAuth `scope`).
    #[serde(default)]
    pub split_spaces: bool,
}

/// What replaces a value that is not shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RedactionConfig {
    /// JSON `null`.
    #[default]
    Null,
    /// This string.
    Marker(String),
    /// The ciphertext, unchanged (only for `unreadable`).
    Ciphertext,
}

/// One route.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Which requests.
    #[serde(rename = "match", default)]
    pub matcher: RouteMatchConfig,
    /// Fields to encrypt in request bodies.
    #[serde(default)]
    pub encrypt: Vec<RuleConfig>,
    /// Fields to decrypt in response bodies.
    #[serde(default)]
    pub decrypt: Vec<RuleConfig>,
}

/// A pointer bound to a field.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// JSON pointer, `*` for every element.
    pub path: String,
    /// Name of a field in `fields`.
    pub field: String,
    /// Refuse a request that lacks the value (encrypt rules only).
    #[serde(default)]
    pub required: bool,
    /// Where the value's record id is, as a relative JSON pointer (`1/id`: the `id` member of
    /// the object holding the value); the id is bound into the ciphertext, so a value copied to
    /// another record does not decrypt. Every rule of a field must give it, or none.
    #[serde(default)]
    pub record: Option<String>,
}

/// Usage thresholds as written.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UsageConfig {
    /// Warn past this many encryptions per key.
    #[serde(default = "default_warn")]
    pub warn_after: u64,
    /// Refuse to encrypt past this many.
    #[serde(default = "default_hard_stop")]
    pub hard_stop: u64,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self { warn_after: DEFAULT_WARN_AFTER, hard_stop: DEFAULT_HARD_STOP }
    }
}

fn default_warn() -> u64 {
    DEFAULT_WARN_AFTER
}

fn default_hard_stop() -> u64 {
    DEFAULT_HARD_STOP
}

/// The compiled policy.
#[derive(Debug)]
pub struct Policy {
    pub(crate) keyring: Keyring,
    pub(crate) fields: Vec<Field>,
    pub(crate) routes: Routes<Route>,
    pub(crate) max_body_bytes: usize,
    pub(crate) rewrap: bool,
    pub(crate) usage: UsageLimits,
}

/// A compiled field.
#[derive(Debug)]
pub struct Field {
    pub(crate) name: String,
    pub(crate) mode: Mode,
    pub(crate) context: Vec<(String, ClaimPath)>,
    pub(crate) readers: Vec<Reader>,
    pub(crate) unreadable: RedactionConfig,
    pub(crate) undecryptable: RedactionConfig,
}

/// A compiled reader condition.
#[derive(Debug)]
pub struct Reader {
    pub(crate) claim: ClaimPath,
    pub(crate) any_of: Vec<String>,
    pub(crate) split_spaces: bool,
}

/// A compiled route; `index` identifies it across a stream's callbacks.
#[derive(Debug)]
pub struct Route {
    pub(crate) index: usize,
    pub(crate) encrypt: Vec<Rule>,
    pub(crate) decrypt: Vec<Rule>,
    /// What a request body's parse builds: the encrypt rules' pointers and record ids.
    pub(crate) encrypt_reach: Vec<Vec<Segment>>,
    /// What a response body's parse builds: the decrypt rules' pointers and record ids.
    pub(crate) decrypt_reach: Vec<Vec<Segment>>,
}

/// The paths (from the document root) a walk of `rules` follows: each pointer, and where its
/// record ids are.
fn reach(rules: &[Rule]) -> Vec<Vec<Segment>> {
    rules.iter().flat_map(|rule| rule.pointer.reach(rule.record.as_ref())).collect()
}

/// A compiled rule; `field` indexes `Policy::fields`.
#[derive(Debug)]
pub struct Rule {
    pub(crate) pointer: Pointer,
    pub(crate) field: usize,
    pub(crate) required: bool,
    pub(crate) record: Option<RecordId>,
}

impl Policy {
    /// Parses and compiles a JSON config; `env` looks up the VM's environment variables.
    pub fn from_json(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        compile(&from_json::<EncryptionConfig>(bytes)?, env)
    }
}

/// Compiles a parsed config.
pub fn compile(config: &EncryptionConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Policy, ConfigError> {
    let keyring = compile_keys(&config.keys, env).map_err(|e| e.within("keys"))?;
    let names: Vec<&String> = config.fields.keys().collect();
    let mut fields = Vec::with_capacity(names.len());
    for (name, field) in &config.fields {
        fields.push(compile_field(name, field).map_err(|e| e.within(&format!("fields.{name}")))?);
    }
    if config.routes.is_empty() {
        return Err(ConfigError::new("routes", "must not be empty"));
    }
    let mut index = 0;
    // (field, rule location, binds a record) of every rule, to check each field is consistent.
    let mut bindings: Vec<(usize, String, bool)> = Vec::new();
    let routes = Routes::compile(
        &config.routes,
        "routes",
        |r| &r.matcher,
        |route, at| {
            if route.encrypt.is_empty() && route.decrypt.is_empty() {
                return Err(ConfigError::new(at, "needs encrypt or decrypt rules"));
            }
            let encrypt =
                compile_rules(&route.encrypt, &names, true).map_err(|e| e.within(&format!("{at}.encrypt")))?;
            let decrypt =
                compile_rules(&route.decrypt, &names, false).map_err(|e| e.within(&format!("{at}.decrypt")))?;
            for (list, rules) in [("encrypt", &encrypt), ("decrypt", &decrypt)] {
                for (i, rule) in rules.iter().enumerate() {
                    bindings.push((rule.field, format!("{at}.{list}[{i}]"), rule.record.is_some()));
                }
            }
            index += 1;
            let (encrypt_reach, decrypt_reach) = (reach(&encrypt), reach(&decrypt));
            Ok(Route { index: index - 1, encrypt, decrypt, encrypt_reach, decrypt_reach })
        },
    )?;
    check_record_bindings(&bindings, &names)?;
    if config.max_body_bytes == 0 {
        return Err(ConfigError::new("max_body_bytes", "must be at least 1"));
    }
    let usage = &config.usage;
    if usage.hard_stop > NIST_RANDOM_NONCE_LIMIT {
        return Err(ConfigError::new(
            "usage.hard_stop",
            "must be at most 4294967296 (NIST SP 800-38D limit for random 96-bit nonces)",
        ));
    }
    if usage.warn_after >= usage.hard_stop {
        return Err(ConfigError::new("usage.warn_after", "must be below hard_stop"));
    }
    Ok(Policy {
        keyring,
        fields,
        routes,
        max_body_bytes: config.max_body_bytes,
        rewrap: config.rewrap,
        usage: UsageLimits { warn_after: usage.warn_after, hard_stop: usage.hard_stop },
    })
}

fn compile_keys(config: &KeysConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Keyring, ConfigError> {
    let inline_ok = config.insecure_inline_keys_for_tests;
    let mut keks: Vec<(&str, [u8; KEY_LEN])> = Vec::new();
    for (i, kek) in config.key_encryption_keys.iter().enumerate() {
        let at = format!("key_encryption_keys[{i}]");
        check_id(&kek.id).map_err(|e| e.within(&format!("{at}.id")))?;
        if keks.iter().any(|(id, _)| *id == kek.id) {
            return Err(ConfigError::new(format!("{at}.id"), "duplicate key id"));
        }
        let material = match (&kek.env, &kek.inline) {
            (Some(var), None) => from_env(var, env).map_err(|e| e.within(&format!("{at}.env")))?,
            (None, Some(inline)) => from_inline(inline, inline_ok).map_err(|e| e.within(&format!("{at}.inline")))?,
            _ => return Err(ConfigError::new(at, "needs exactly one of env, inline")),
        };
        keks.push((&kek.id, material));
    }
    if config.data_keys.is_empty() {
        return Err(ConfigError::new("data_keys", "must not be empty"));
    }
    let mut keys: Vec<DataKey> = Vec::with_capacity(config.data_keys.len());
    for (i, key) in config.data_keys.iter().enumerate() {
        let at = format!("data_keys[{i}]");
        check_id(&key.id).map_err(|e| e.within(&format!("{at}.id")))?;
        if keys.iter().any(|k| k.id() == key.id) {
            return Err(ConfigError::new(format!("{at}.id"), "duplicate key id"));
        }
        if key.version == 0 {
            return Err(ConfigError::new(format!("{at}.version"), "must be at least 1"));
        }
        if key.kek.is_some() && key.wrapped.is_none() {
            return Err(ConfigError::new(format!("{at}.kek"), "only with wrapped"));
        }
        let material = match (&key.env, &key.wrapped, &key.inline) {
            (Some(var), None, None) => from_env(var, env).map_err(|e| e.within(&format!("{at}.env")))?,
            (None, Some(wrapped), None) => {
                let Some(kek_id) = &key.kek else {
                    return Err(ConfigError::new(format!("{at}.kek"), "required with wrapped"));
                };
                let Some((_, kek)) = keks.iter().find(|(id, _)| id == kek_id) else {
                    return Err(ConfigError::new(format!("{at}.kek"), format!("unknown key-encryption key {kek_id}")));
                };
                envelope::unwrap(kek, &key.id, wrapped).map_err(|err| {
                    let problem = match err {
                        UnwrapError::Encoding => "must be base64url without padding".to_string(),
                        UnwrapError::Authentication => format!("does not unwrap under key-encryption key {kek_id}"),
                    };
                    ConfigError::new(format!("{at}.wrapped"), problem)
                })?
            }
            (None, None, Some(inline)) => {
                from_inline(inline, inline_ok).map_err(|e| e.within(&format!("{at}.inline")))?
            }
            _ => return Err(ConfigError::new(at, "needs exactly one of env, wrapped, inline")),
        };
        keys.push(DataKey::new(&key.id, key.version, &material));
    }
    let Some(primary) = keys.iter().position(|k| k.id() == config.primary) else {
        return Err(ConfigError::new("primary", format!("unknown key {}", config.primary)));
    };
    let primary_version = keys.get(primary).map_or(0, DataKey::version);
    if primary_version < config.min_version {
        return Err(ConfigError::new(
            "min_version",
            format!("primary key {} has version {primary_version}, below min_version", config.primary),
        ));
    }
    Ok(Keyring::new(keys, primary, config.min_version))
}

/// Key ids appear in ciphertexts between `:` separators.
fn check_id(id: &str) -> Result<(), ConfigError> {
    let valid = (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new("", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -"))
    }
}

fn from_env(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<[u8; KEY_LEN], ConfigError> {
    let value = env(var).ok_or_else(|| ConfigError::new("", format!("environment variable {var} is not set")))?;
    decode_key(value.trim()).ok_or_else(|| {
        ConfigError::new("", format!("environment variable {var} must hold standard base64 of 32 bytes"))
    })
}

fn from_inline(inline: &str, allowed: bool) -> Result<[u8; KEY_LEN], ConfigError> {
    if !allowed {
        return Err(ConfigError::new("", "inline keys need keys.insecure_inline_keys_for_tests: true"));
    }
    decode_key(inline).ok_or_else(|| ConfigError::new("", "must be standard base64 of 32 bytes"))
}

fn decode_key(text: &str) -> Option<[u8; KEY_LEN]> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

fn compile_field(name: &str, config: &FieldConfig) -> Result<Field, ConfigError> {
    if name.is_empty() || name.len() > 128 {
        return Err(ConfigError::new("", "field names must be 1 to 128 bytes"));
    }
    let mut context: Vec<(String, ClaimPath)> = Vec::with_capacity(config.context.len());
    for (i, item) in config.context.iter().enumerate() {
        if item.name.is_empty() || context.iter().any(|(n, _)| *n == item.name) {
            return Err(ConfigError::new(format!("context[{i}].name"), "must be non-empty and unique"));
        }
        let claim = ClaimPath::parse(&item.claim)
            .ok_or_else(|| ConfigError::new(format!("context[{i}].claim"), "invalid claim path"))?;
        context.push((item.name.clone(), claim));
    }
    let mut readers = Vec::with_capacity(config.readers.len());
    for (i, reader) in config.readers.iter().enumerate() {
        let claim = ClaimPath::parse(&reader.claim)
            .ok_or_else(|| ConfigError::new(format!("readers[{i}].claim"), "invalid claim path"))?;
        if reader.any_of.is_empty() {
            return Err(ConfigError::new(format!("readers[{i}].any_of"), "must not be empty"));
        }
        readers.push(Reader { claim, any_of: reader.any_of.clone(), split_spaces: reader.split_spaces });
    }
    if config.undecryptable == RedactionConfig::Ciphertext {
        return Err(ConfigError::new(
            "undecryptable",
            "must be null or a marker: a value that failed to decrypt is not passed on",
        ));
    }
    Ok(Field {
        name: name.to_string(),
        mode: match config.mode {
            ModeConfig::Randomized => Mode::Randomized,
            ModeConfig::Deterministic => Mode::Deterministic,
        },
        context,
        readers,
        unreadable: config.unreadable.clone(),
        undecryptable: config.undecryptable.clone(),
    })
}

fn compile_rules(rules: &[RuleConfig], names: &[&String], encrypt: bool) -> Result<Vec<Rule>, ConfigError> {
    let mut compiled: Vec<Rule> = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let pointer = Pointer::parse(&rule.path, &format!("[{i}].path"))?;
        if let Some(j) = compiled.iter().position(|other| other.pointer.overlaps(&pointer)) {
            return Err(ConfigError::new(format!("[{i}].path"), format!("overlaps [{j}].path")));
        }
        let field = names
            .iter()
            .position(|name| **name == rule.field)
            .ok_or_else(|| ConfigError::new(format!("[{i}].field"), format!("unknown field {}", rule.field)))?;
        if rule.required && !encrypt {
            return Err(ConfigError::new(format!("[{i}].required"), "applies to encrypt rules only"));
        }
        let record = match &rule.record {
            Some(text) => Some(RecordId::parse(text, &pointer, &format!("[{i}].record"))?),
            None => None,
        };
        compiled.push(Rule { pointer, field, required: rule.required, record });
    }
    // A record id that is itself transformed would read differently in requests and responses.
    for (i, rule) in compiled.iter().enumerate() {
        let Some(record) = &rule.record else { continue };
        let id = record.absolute(&rule.pointer);
        if let Some(j) = compiled.iter().position(|other| other.pointer.overlaps(&id)) {
            return Err(ConfigError::new(
                format!("[{i}].record"),
                format!("selects a value inside [{j}].path: the record id must not be encrypted"),
            ));
        }
    }
    Ok(compiled)
}

/// A field bound to its record in one rule must be in every rule: its ciphertexts carry the
/// record id, and a rule without one could never decrypt them (nor should it make unbound ones).
fn check_record_bindings(bindings: &[(usize, String, bool)], names: &[&String]) -> Result<(), ConfigError> {
    for (field, at, bound) in bindings {
        if let Some((_, other, _)) = bindings.iter().find(|(f, _, b)| f == field && b != bound) {
            let name = names.get(*field).map_or("", |n| n.as_str());
            let (with, without) = if *bound { (at, other) } else { (other, at) };
            return Err(ConfigError::new(
                format!("{without}.record"),
                format!("required: field {name} is bound to its record in {with}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::testing::{config_json, test_env};

    fn error(json: &str) -> String {
        Policy::from_json(json.as_bytes(), &test_env).unwrap_err().to_string()
    }

    /// The test config with `path` (a JSON pointer into it) replaced by `value`.
    fn with(path: &str, value: serde_json::Value) -> String {
        let mut config: serde_json::Value = serde_json::from_str(&config_json()).unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        match config.pointer_mut(parent).unwrap() {
            serde_json::Value::Object(map) => {
                map.insert(last.to_string(), value);
            }
            other => other[last.parse::<usize>().unwrap()] = value,
        }
        config.to_string()
    }

    #[test]
    fn the_test_config_compiles() {
        let policy = Policy::from_json(config_json().as_bytes(), &test_env).unwrap();
        assert_eq!(policy.keyring.primary().map(DataKey::id), Some("k2"));
        assert_eq!(policy.fields.len(), 3);
        assert_eq!(policy.routes.len(), 2);
        assert!(!policy.rewrap);
    }

    #[test]
    fn bad_configs_name_the_field() {
        use serde_json::json;
        let cases = [
            (with("/keys/primary", json!("k9")), "keys.primary: unknown key k9"),
            (with("/keys/min_version", json!(3)), "keys.min_version: primary key k2 has version 2, below min_version"),
            (with("/keys/data_keys/0/id", json!("a:b")), "keys.data_keys[0].id: must be 1 to 64 characters of A-Z a-z 0-9 . _ -"),
            (with("/keys/data_keys/0/id", json!("k2")), "keys.data_keys[1].id: duplicate key id"),
            (with("/keys/data_keys/0/version", json!(0)), "keys.data_keys[0].version: must be at least 1"),
            (with("/keys/data_keys/0/env", json!("NOPE")), "keys.data_keys[0].env: environment variable NOPE is not set"),
            (with("/keys/data_keys/0/env", json!("SHORT_KEY")), "keys.data_keys[0].env: environment variable SHORT_KEY must hold standard base64 of 32 bytes"),
            (with("/keys/data_keys/0", json!({"id":"k1","version":1})), "keys.data_keys[0]: needs exactly one of env, wrapped, inline"),
            (with("/keys/data_keys/0", json!({"id":"k1","version":1,"env":"K1","inline":"x"})), "keys.data_keys[0]: needs exactly one of env, wrapped, inline"),
            (with("/keys/data_keys/0", json!({"id":"k1","version":1,"env":"K1","kek":"kek"})), "keys.data_keys[0].kek: only with wrapped"),
            (with("/keys/data_keys/1/kek", json!("nope")), "keys.data_keys[1].kek: unknown key-encryption key nope"),
            (with("/keys/data_keys/1/wrapped", json!("AA==")), "keys.data_keys[1].wrapped: must be base64url without padding"),
            (with("/keys/data_keys/1/id", json!("k3")), "keys.data_keys[1].wrapped: does not unwrap under key-encryption key kek"),
            (with("/keys/key_encryption_keys/0/env", json!("K1")), "keys.data_keys[1].wrapped: does not unwrap under key-encryption key kek"),
            (with("/keys/data_keys/0", json!({"id":"k1","version":1,"inline":"AAAA"})), "keys.data_keys[0].inline: inline keys need keys.insecure_inline_keys_for_tests: true"),
            (with("/keys/key_encryption_keys/0", json!({"id":"kek"})), "keys.key_encryption_keys[0]: needs exactly one of env, inline"),
            (with("/keys/data_keys", json!([])), "keys.data_keys: must not be empty"),
            (with("/fields/user.email/context/0/claim", json!("a..b")), "fields.user.email.context[0].claim: invalid claim path"),
            (with("/fields/user.email/readers/0/any_of", json!([])), "fields.user.email.readers[0].any_of: must not be empty"),
            (with("/fields/user.email/undecryptable", json!("ciphertext")), "fields.user.email.undecryptable: must be null or a marker: a value that failed to decrypt is not passed on"),
            (with("/fields/user.email/mode", json!("ecb")), "fields.user.email.mode: unknown variant `ecb`"),
            (with("/routes/0/encrypt/0/field", json!("nope")), "routes[0].encrypt[0].field: unknown field nope"),
            (with("/routes/0/encrypt/0/path", json!("email")), "routes[0].encrypt[0].path: must be a JSON pointer starting with /"),
            (with("/routes/0/encrypt/1/path", json!("/email/x")), "routes[0].encrypt[1].path: overlaps [0].path"),
            (with("/routes/1/decrypt/0/required", json!(true)), "routes[1].decrypt[0].required: applies to encrypt rules only"),
            (with("/routes/1/match/methods", json!(["get"])), "routes[1].match.methods[0]: must be an upper-case HTTP method"),
            (with("/routes/0", json!({"match":{}})), "routes[0]: needs encrypt or decrypt rules"),
            (with("/routes", json!([])), "routes: must not be empty"),
            (with("/max_body_bytes", json!(0)), "max_body_bytes: must be at least 1"),
            (with("/usage", json!({"hard_stop": 4294967297u64})), "usage.hard_stop: must be at most 4294967296 (NIST SP 800-38D limit for random 96-bit nonces)"),
            (with("/usage", json!({"warn_after": 5, "hard_stop": 5})), "usage.warn_after: must be below hard_stop"),
            (with("/rewrap", json!("yes")), "rewrap: invalid type: string \"yes\", expected a boolean"),
            (with("/routes/0/encrypt/0/extra", json!(1)), "routes[0].encrypt[0].extra: unknown field `extra`"),
            (with("/routes/0/encrypt/0/record", json!("0/id")), "routes[0].encrypt[0].record: must go up at least 1 level: the id cannot be inside the encrypted value"),
            (with("/routes/0/encrypt/0/record", json!("id")), "routes[0].encrypt[0].record: must be a relative JSON pointer such as 1/id"),
            (with("/routes/0/encrypt/0/record", json!("01/id")), "routes[0].encrypt[0].record: must be a relative JSON pointer such as 1/id"),
            (with("/routes/0/encrypt/0/record", json!("1id")), "routes[0].encrypt[0].record: must be a relative JSON pointer such as 1/id"),
            (with("/routes/0/encrypt/0/record", json!("1#")), "routes[0].encrypt[0].record: the # form (member name or index) is not supported"),
            (with("/routes/0/encrypt/0/record", json!("1")), "routes[0].encrypt[0].record: must name a member below the ancestor, such as 1/id"),
            (with("/routes/0/encrypt/0/record", json!("1/*")), "routes[0].encrypt[0].record: must select one value: * is not allowed"),
            (with("/routes/0/encrypt/0/record", json!("2/id")), "routes[0].encrypt[0].record: goes up 2 levels, above the document root of /email"),
            (with("/routes/0/encrypt/0/record", json!("1/name")), "routes[0].encrypt[0].record: selects a value inside [1].path: the record id must not be encrypted"),
            (with("/routes/0/encrypt/2/record", json!("1/ssn")), "routes[0].encrypt[2].record: selects a value inside [2].path: the record id must not be encrypted"),
            (with("/routes/0/encrypt/0/record", json!("1/id")), "routes[0].decrypt[0].record: required: field user.email is bound to its record in routes[0].encrypt[0]"),
            (with("/routes/1/decrypt/1/record", json!("1/id")), "routes[0].encrypt[1].record: required: field user.name is bound to its record in routes[1].decrypt[1]"),
        ];
        for (json, expected) in cases {
            let got = error(&json);
            assert!(got.starts_with(expected), "expected {expected}\n     got {got}");
        }
    }

    #[test]
    fn the_example_config_compiles() {
        let example = include_str!("../../../envoy-config/examples/field-encryption.json");
        let env = |name: &str| name.starts_with("PALISADE_FE_USERS_").then(|| STANDARD.encode([4u8; 32]));
        let policy = Policy::from_json(example.as_bytes(), &env).unwrap();
        assert_eq!(policy.keyring.primary().map(DataKey::id), Some("users-2026-06"));
        assert_eq!(policy.routes.len(), 4);
        assert!(policy.rewrap);
    }

    #[test]
    fn inline_keys_need_the_explicit_flag() {
        let mut config: serde_json::Value = serde_json::from_str(&config_json()).unwrap();
        config["keys"]["insecure_inline_keys_for_tests"] = true.into();
        config["keys"]["data_keys"][0] =
            serde_json::json!({"id":"k1","version":1,"inline": STANDARD.encode([1u8; 32])});
        assert!(Policy::from_json(config.to_string().as_bytes(), &test_env).is_ok());
    }
}
