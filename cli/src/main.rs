//! `palisade`: the chores users of Palisade's filters otherwise script by hand.
//!
//! Every command reuses palisade-core, so `check` gives exactly the message Envoy logs when it
//! refuses a config, `schema` describes exactly the types the filters parse, and `keygen` and
//! `hash-api-key` produce exactly what the filters read.

mod check;
mod digest;
mod keygen;
mod schema;
mod token;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use check::Filter;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "Check Palisade filter configs, print their schemas, make keys and tokens"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config file with the filter's own parser; prints `ok` or the filter's message.
    ///
    /// Secrets the config names (`env`, `secret_env`, `hmac_secret.env`) are read from this
    /// process's environment, as the filter reads `vm_config.environment_variables`.
    Check {
        /// The filter, or `gateway` for a bundle `{"layers": [{"filter": ..., "config": ...}]}`.
        filter: Filter,
        /// The JSON config (the filter's `configuration.value`, Istio's `pluginConfig`).
        config: PathBuf,
    },
    /// Print the JSON Schema of a filter's config, or write every schema to a directory.
    Schema {
        /// The filter, or `gateway` for the bundle format.
        #[arg(required_unless_present = "write")]
        filter: Option<Filter>,
        /// Write `<filter>.schema.json` for every filter and the bundle into this directory
        /// (`make schemas` writes envoy-config/schemas/).
        #[arg(long, value_name = "DIR", conflicts_with = "filter")]
        write: Option<PathBuf>,
    },
    /// Generate a field-encryption data key and print it as an environment variable line.
    ///
    /// With `--wrap`, the data key is wrapped under a key-encryption key (envelope): the KEK comes
    /// from the variable `--kek-env` names when it is set, else a new KEK is generated and
    /// printed; the data key itself is never printed.
    Keygen {
        /// The key id written into ciphertexts (`keys.data_keys[].id`).
        #[arg(long, default_value = "k1")]
        id: String,
        /// The key version (`keys.data_keys[].version`).
        #[arg(long, default_value_t = 1)]
        version: u32,
        /// The environment variable to hold the key; default `PALISADE_FE_<ID>`.
        #[arg(long)]
        env: Option<String>,
        /// Envelope form: print the data key wrapped under a key-encryption key.
        #[arg(long)]
        wrap: bool,
        /// The key-encryption key's id (`keys.key_encryption_keys[].id`).
        #[arg(long, default_value = "kek", requires = "wrap")]
        kek_id: String,
        /// The environment variable holding the key-encryption key.
        #[arg(long, default_value = "PALISADE_FE_KEK", requires = "wrap")]
        kek_env: String,
    },
    /// Print the SHA-256 (hex) of an API key, as jwt-authn's `api_keys.*.keys[].sha256` expects.
    ///
    /// Without an argument the key is read from standard input (one trailing newline removed),
    /// which keeps it out of the process list and shell history.
    HashApiKey {
        /// The key; omit to read standard input.
        key: Option<String>,
    },
    /// Sign a demo token with a local private key (PEM or JWK).
    MintToken {
        /// Private key file: PEM (PKCS#8, or PKCS#1 for RSA) or a private JWK; for HS* the raw secret.
        #[arg(long)]
        key: PathBuf,
        /// Signature algorithm.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// Claims as a JSON object; `iat`, `nbf` and `exp` default from now and `--ttl`.
        #[arg(long, default_value = "{}")]
        claims: String,
        /// `kid` header (default: the JWK's `kid`, if any).
        #[arg(long)]
        kid: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Print the public JWK Set of a local private key, for `local_jwks` or a JWKS endpoint.
    Jwks {
        /// Private key file: PEM or a private JWK.
        #[arg(long)]
        key: PathBuf,
        /// Algorithm the key is for.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// `kid` of the key (default: the JWK's `kid`, if any).
        #[arg(long)]
        kid: Option<String>,
    },
    /// Print the SHA-256 of each `.wasm` in a directory, for Istio `WasmPlugin.spec.sha256`.
    Sha256 {
        /// The directory (default `dist`).
        #[arg(default_value = "dist")]
        dir: PathBuf,
    },
}

/// A failed command: the config was refused (exit 1) or the command could not run (exit 2).
enum Failure {
    Invalid(String),
    Error(String),
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(Failure::Invalid(message)) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
        Err(Failure::Error(message)) => {
            eprintln!("palisade: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<String, Failure> {
    match command {
        Command::Check { filter, config } => {
            let bytes = read(&config)?;
            let env = |name: &str| std::env::var(name).ok();
            check::check(filter, &bytes, &env).map(|()| "ok\n".to_string()).map_err(|r| Failure::Invalid(r.to_string()))
        }
        Command::Schema { filter: Some(filter), .. } => Ok(schema::render(filter)),
        Command::Schema { filter: None, write } => {
            let dir = write.unwrap_or_else(|| PathBuf::from("."));
            schema::write_all(&dir).map_err(Failure::Error)
        }
        Command::Keygen { id, version, env, wrap, kek_id, kek_env } => {
            let env_var = env.unwrap_or_else(|| keygen::default_env(&id));
            let kek = wrap.then_some(keygen::Kek { id: kek_id, env: kek_env });
            keygen::generate(&id, version, &env_var, kek.as_ref(), &|name| std::env::var(name).ok())
                .map_err(Failure::Error)
        }
        Command::HashApiKey { key } => {
            let key = match key {
                Some(key) => key,
                None => {
                    let mut input = String::new();
                    std::io::stdin()
                        .read_to_string(&mut input)
                        .map_err(|err| Failure::Error(format!("cannot read standard input: {err}")))?;
                    digest::strip_newline(&input).to_string()
                }
            };
            if key.is_empty() {
                return Err(Failure::Error("the API key is empty".into()));
            }
            Ok(format!("{}\n", digest::sha256_hex(key.as_bytes())))
        }
        Command::MintToken { key, alg, claims, kid, ttl } => {
            let key = read(&key)?;
            token::mint(&alg, &key, &claims, kid.as_deref(), ttl).map(|t| format!("{t}\n")).map_err(Failure::Error)
        }
        Command::Jwks { key, alg, kid } => {
            let key = read(&key)?;
            token::jwks(&alg, &key, kid.as_deref()).map(|j| format!("{j}\n")).map_err(Failure::Error)
        }
        Command::Sha256 { dir } => digest::wasm_digests(&dir).map_err(Failure::Error),
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|err| Failure::Error(format!("cannot read {}: {err}", path.display())))
}
