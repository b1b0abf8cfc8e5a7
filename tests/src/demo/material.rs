//! The demo's keys, certificates and tokens, made fresh at every start so nothing secret is ever
//! committed. They go to a git-ignored folder ([`GENERATED`], which demo.yaml names):
//!
//! ```text
//! ca.pem ca.key                          the demo CA (signs the server and client certificates)
//! server.pem server.key                  the mTLS listener's certificate (IP 127.0.0.1, localhost)
//! order-service.pem .key                 client, URI SAN spiffe://cluster.local/ns/production/sa/order-service
//! reporting-service.pem .key             client, URI SAN spiffe://cluster.local/ns/production/sa/reporting-service
//! jwks.json                              the public JWT key (ES256, kid demo-1), served by Envoy
//! jwt-signing-key.pem                    its private key (PKCS#8), to mint more tokens
//! tokens/<name>.jwt                      alice, bob, carol, expired, forged
//! demo.env                               PALISADE_DEMO_FE_KEY=<base64 of 32 random bytes>
//! ```
//!
//! Certificates are made with the `openssl` CLI (as tests/tests/e2e_mtls.rs does), random bytes
//! come from `openssl rand`, the JWT key and tokens from jwt-simple.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use jwt_simple::prelude::*;
use serde_json::json;

/// Where demo.yaml expects the material, relative to the workspace root.
pub const GENERATED: &str = "envoy-config/demo/generated";
/// The environment variable carrying the field-encryption key (demo.yaml's `host_env_keys`).
pub const FE_KEY_ENV: &str = "PALISADE_DEMO_FE_KEY";
/// The SPIFFE ID authz lets pay.
pub const ORDER_SERVICE_ID: &str = "spiffe://cluster.local/ns/production/sa/order-service";
/// Another workload of the same mesh: a valid certificate, not allowed to pay.
pub const REPORTING_SERVICE_ID: &str = "spiffe://cluster.local/ns/production/sa/reporting-service";
/// The issuer and audience demo.yaml's jwt-authn provider expects.
pub const ISSUER: &str = "https://auth.palisade.demo";
const AUDIENCE: &str = "palisade-demo";
const KEY_ID: &str = "demo-1";
/// How long the tokens and certificates live (a demo run, or a Docker session).
const TOKEN_HOURS: u64 = 12;
const CERT_DAYS: u32 = 2;

/// The demo's callers: name, roles, plan (the rate-limit tier claim).
pub const USERS: &[(&str, &[&str], &str)] = &[
    // May write users and read their personal data; free plan (tier authenticated).
    ("alice", &["users:write", "pii-reader"], "free"),
    // May write users, not read personal data back.
    ("bob", &["users:write"], "free"),
    // May read users and personal data, not write; premium plan.
    ("carol", &["users:read", "pii-reader"], "premium"),
];

/// The certificate pairs made under the demo CA: name, subjectAltName.
const CERTS: &[(&str, &str)] = &[
    ("server", "IP:127.0.0.1,DNS:localhost"),
    ("order-service", "URI:spiffe://cluster.local/ns/production/sa/order-service"),
    ("reporting-service", "URI:spiffe://cluster.local/ns/production/sa/reporting-service"),
];

/// A shell script run in the output folder: the CA, then each pair of CERTS signed by it.
const MAKE_CERTS: &str = r#"set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
openssl req -x509 $ec -days "$DAYS" -subj "/CN=palisade demo ca" -keyout ca.key -out ca.pem
while [ $# -gt 0 ]; do
  openssl req $ec -subj "/CN=palisade demo $1" -addext "subjectAltName=$2" -keyout "$1.key" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$DAYS" \
    -copy_extensions copyall -out "$1.pem"
  rm "$1.csr"
  shift 2
done
rm -f ca.srl
"#;

/// Why the material could not be made or read.
#[derive(Debug)]
pub enum MaterialError {
    /// A file operation failed.
    Io(PathBuf, io::Error),
    /// A tool (openssl) failed.
    Tool(&'static str, String),
    /// Signing failed.
    Jwt(String),
}

impl fmt::Display for MaterialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaterialError::Io(path, err) => write!(f, "{}: {err}", path.display()),
            MaterialError::Tool(what, out) => write!(f, "{what} failed (is openssl installed?): {out}"),
            MaterialError::Jwt(err) => write!(f, "signing the demo tokens: {err}"),
        }
    }
}

impl std::error::Error for MaterialError {}

/// A token file: its name, its value and where it is.
#[derive(Debug, Clone)]
pub struct Token {
    /// `alice`, `bob`, `carol`, `expired` or `forged`.
    pub name: String,
    /// The compact JWT.
    pub value: String,
    /// The file holding it.
    pub path: PathBuf,
}

/// The generated material of one demo run.
#[derive(Debug, Clone)]
pub struct Material {
    /// The folder holding it.
    pub dir: PathBuf,
    /// Tokens by name.
    pub tokens: BTreeMap<String, Token>,
    /// Environment variables Envoy needs (the field-encryption key).
    pub env: Vec<(String, String)>,
}

impl Material {
    /// A file of the material.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A token by name.
    pub fn token(&self, name: &str) -> Option<&Token> {
        self.tokens.get(name)
    }

    /// Makes fresh material in `dir`, replacing what was there.
    ///
    /// Made in a sibling folder first and then moved into place, so a reader (a concurrent
    /// validation) never sees half of it.
    pub fn generate(dir: &Path) -> Result<Material, MaterialError> {
        let staging = sibling(dir, "staging");
        let _ = std::fs::remove_dir_all(&staging);
        create_dir(&staging.join("tokens"))?;
        make_certs(&staging)?;
        make_jwt_material(&staging)?;
        let key = openssl_rand_base64()?;
        write(&staging.join("demo.env"), &format!("{FE_KEY_ENV}={key}\n"))?;

        let old = sibling(dir, "old");
        let _ = std::fs::remove_dir_all(&old);
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| MaterialError::Io(dir.to_path_buf(), e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| MaterialError::Io(dir.to_path_buf(), e))?;
        let _ = std::fs::remove_dir_all(&old);
        Material::load(dir)
    }

    /// Reads material made earlier.
    pub fn load(dir: &Path) -> Result<Material, MaterialError> {
        let env_text = read(&dir.join("demo.env"))?;
        let env = env_text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut tokens = BTreeMap::new();
        for name in token_names() {
            let path = dir.join("tokens").join(format!("{name}.jwt"));
            let value = read(&path)?.trim().to_string();
            tokens.insert(name.to_string(), Token { name: name.to_string(), value, path });
        }
        for (name, _) in CERTS {
            read(&dir.join(format!("{name}.pem")))?;
        }
        read(&dir.join("jwks.json"))?;
        Ok(Material { dir: dir.to_path_buf(), tokens, env })
    }

    /// Reads the material in `dir`, or makes it when some of it is missing (for
    /// `envoy --mode validate`, which reads the certificates and the JWKS).
    pub fn ensure(dir: &Path) -> Result<Material, MaterialError> {
        Material::load(dir).or_else(|_| Material::generate(dir))
    }
}

fn token_names() -> impl Iterator<Item = &'static str> {
    USERS.iter().map(|(name, _, _)| *name).chain(["expired", "forged"])
}

fn sibling(dir: &Path, what: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

fn make_certs(dir: &Path) -> Result<(), MaterialError> {
    let mut command = Command::new("sh");
    command.args(["-c", MAKE_CERTS, "make-certs"]);
    for (name, san) in CERTS {
        command.args([name, san]);
    }
    let out = command
        .env("DAYS", CERT_DAYS.to_string())
        .current_dir(dir)
        .output()
        .map_err(|e| MaterialError::Io(dir.to_path_buf(), e))?;
    if !out.status.success() {
        return Err(MaterialError::Tool("openssl (certificates)", String::from_utf8_lossy(&out.stderr).into()));
    }
    Ok(())
}

fn openssl_rand_base64() -> Result<String, MaterialError> {
    let out = Command::new("openssl")
        .args(["rand", "-base64", "32"])
        .output()
        .map_err(|e| MaterialError::Tool("openssl rand", e.to_string()))?;
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || key.len() != 44 {
        return Err(MaterialError::Tool("openssl rand", String::from_utf8_lossy(&out.stderr).into()));
    }
    Ok(key)
}

/// The signing key, the JWKS and the tokens.
fn make_jwt_material(dir: &Path) -> Result<(), MaterialError> {
    let jwt_err = |e: jwt_simple::Error| MaterialError::Jwt(e.to_string());
    let key = ES256KeyPair::generate().with_key_id(KEY_ID);
    let public_jwk: serde_json::Value =
        serde_json::from_str(&key.public_key().to_jwk()).map_err(|e| MaterialError::Jwt(e.to_string()))?;
    write(&dir.join("jwks.json"), &json!({ "keys": [public_jwk] }).to_string())?;
    write(&dir.join("jwt-signing-key.pem"), &key.to_pem().map_err(jwt_err)?)?;

    let valid_for = Duration::from_hours(TOKEN_HOURS);
    let claims_of = |name: &str, roles: &[&str], plan: &str| {
        Claims::with_custom_claims(json!({"roles": roles, "plan": plan, "tenant": "acme"}), valid_for)
            .with_issuer(ISSUER)
            .with_audience(AUDIENCE)
            .with_subject(name)
    };
    let tokens = dir.join("tokens");
    for (name, roles, plan) in USERS {
        write(&tokens.join(format!("{name}.jwt")), &key.sign(claims_of(name, roles, plan)).map_err(jwt_err)?)?;
    }
    // alice's claims, expired an hour ago (beyond the provider's 60 s of clock skew).
    let mut expired = claims_of("alice", &["users:write", "pii-reader"], "free");
    let now = Clock::now_since_epoch();
    expired.issued_at = Some(now - Duration::from_hours(2));
    expired.invalid_before = expired.issued_at;
    expired.expires_at = Some(now - Duration::from_hours(1));
    write(&tokens.join("expired.jwt"), &key.sign(expired).map_err(jwt_err)?)?;
    // alice's claims signed by another key that claims the same kid.
    let forger = ES256KeyPair::generate().with_key_id(KEY_ID);
    let forged = forger.sign(claims_of("alice", &["users:write", "pii-reader"], "free")).map_err(jwt_err)?;
    write(&tokens.join("forged.jwt"), &forged)?;
    Ok(())
}

fn create_dir(path: &Path) -> Result<(), MaterialError> {
    std::fs::create_dir_all(path).map_err(|e| MaterialError::Io(path.to_path_buf(), e))
}

fn write(path: &Path, text: &str) -> Result<(), MaterialError> {
    std::fs::write(path, text).map_err(|e| MaterialError::Io(path.to_path_buf(), e))
}

fn read(path: &Path) -> Result<String, MaterialError> {
    std::fs::read_to_string(path).map_err(|e| MaterialError::Io(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_is_complete_and_verifies() {
        let dir = crate::e2e::workspace_root().join(format!("target/palisade-e2e/material-{}", std::process::id()));
        let material = Material::generate(&dir).unwrap();
        let again = Material::generate(&dir).unwrap();
        assert_ne!(material.env, again.env, "every generation makes a new key");
        assert_eq!(again.env[0].0, FE_KEY_ENV);

        let jwks: serde_json::Value = serde_json::from_str(&read(&dir.join("jwks.json")).unwrap()).unwrap();
        let jwk = jwks["keys"][0].to_string();
        assert!(!jwk.contains("\"d\""), "the JWKS holds no private member: {jwk}");
        let public = ES256PublicKey::from_jwk(&jwk).unwrap();
        let options = VerificationOptions::default();
        let alice = public.verify_token::<serde_json::Value>(&again.token("alice").unwrap().value, Some(options));
        assert_eq!(alice.unwrap().custom["roles"][1], "pii-reader");
        let forged = public.verify_token::<serde_json::Value>(&again.token("forged").unwrap().value, None);
        assert!(forged.is_err(), "the forged token does not verify");
        let expired = public.verify_token::<serde_json::Value>(&again.token("expired").unwrap().value, None);
        assert!(expired.is_err(), "the expired token does not verify");

        let san = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(dir.join("order-service.pem"))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&san.stdout).contains(ORDER_SERVICE_ID));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
