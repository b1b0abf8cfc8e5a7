//! Field-encryption keys in the form the filter's keyring reads: 32 random bytes, standard
//! base64, in an environment variable; or (envelope) wrapped under a key-encryption key with
//! palisade-core's own `envelope::wrap`, so the config holds no usable data key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use palisade_core::encryption::ciphertext::NONCE_LEN;
use palisade_core::encryption::envelope;
use palisade_core::encryption::keyring::KEY_LEN;
use serde_json::{json, Value};

use crate::check::Env;

/// The key-encryption key of the envelope form.
pub struct Kek {
    /// `keys.key_encryption_keys[].id`.
    pub id: String,
    /// The environment variable holding it.
    pub env: String,
}

/// `PALISADE_FE_<ID>`: the id upper-cased, anything but letters and digits as `_`.
pub fn default_env(id: &str) -> String {
    let id: String = id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("PALISADE_FE_{id}")
}

/// The lines to print: `VAR=base64` for each new secret, and `# ...` lines with the config
/// entries to add. With `kek`, an existing KEK is read through `env` when its variable is set.
pub fn generate(id: &str, version: u32, env_var: &str, kek: Option<&Kek>, env: Env) -> Result<String, String> {
    let data_key = random::<KEY_LEN>()?;
    let encoded = STANDARD.encode(data_key);
    let mut out = String::new();
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut key_encryption_keys = Vec::new();
    let entry = match kek {
        None => {
            secrets.push((env_var.to_string(), encoded.clone()));
            json!({"id": id, "version": version, "env": env_var})
        }
        Some(kek) => {
            let kek_entry = json!({"id": kek.id, "env": kek.env});
            let material = match env(&kek.env) {
                Some(value) => {
                    let material = decode_key(&value).ok_or_else(|| {
                        format!("environment variable {} must hold standard base64 of 32 bytes", kek.env)
                    })?;
                    out.push_str(&format!(
                        "# key-encryption key {:?} (from {}); in keys.key_encryption_keys: {kek_entry}\n",
                        kek.id, kek.env
                    ));
                    material
                }
                None => {
                    let material = random::<KEY_LEN>()?;
                    let line = STANDARD.encode(material);
                    out.push_str(&format!(
                        "# key-encryption key {:?}; in keys.key_encryption_keys: {kek_entry}\n{}={line}\n",
                        kek.id, kek.env
                    ));
                    secrets.push((kek.env.clone(), line));
                    material
                }
            };
            key_encryption_keys.push(kek_entry);
            let wrapped = envelope::wrap(&material, id, &data_key, &random::<NONCE_LEN>()?);
            json!({"id": id, "version": version, "wrapped": wrapped, "kek": kek.id})
        }
    };
    self_check(&entry, &key_encryption_keys, &secrets, env)?;
    let wrapped = if kek.is_some() { ", wrapped" } else { "" };
    out.push_str(&format!(
        "# field-encryption data key {id:?} version {version}{wrapped}; in keys.data_keys: {entry}\n"
    ));
    if kek.is_none() {
        out.push_str(&format!("{env_var}={encoded}\n"));
    }
    Ok(out)
}

/// Compiles a config holding the new key with the filter's own compiler, so a key this
/// command prints is one the filter accepts (ids and versions are checked there).
fn self_check(entry: &Value, keks: &[Value], secrets: &[(String, String)], env: Env) -> Result<(), String> {
    let id = entry.get("id").cloned().unwrap_or_default();
    let config = json!({
        "keys": {"primary": id, "data_keys": [entry], "key_encryption_keys": keks},
        "fields": {"f": {}},
        "routes": [{"match": {}, "encrypt": [{"path": "/f", "field": "f"}]}]
    });
    let lookup =
        |name: &str| secrets.iter().find(|(var, _)| var == name).map(|(_, value)| value.clone()).or_else(|| env(name));
    palisade_core::encryption::Policy::from_json(config.to_string().as_bytes(), &lookup)
        .map(drop)
        .map_err(|err| format!("the filter would refuse this key: {err}"))
}

fn decode_key(value: &str) -> Option<[u8; KEY_LEN]> {
    STANDARD.decode(value.trim()).ok()?.try_into().ok()
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|err| format!("no randomness from the OS: {err}"))?;
    Ok(bytes)
}
