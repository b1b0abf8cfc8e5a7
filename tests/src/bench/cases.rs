//! The bench cases: each Palisade filter on its common path next to the native Envoy filter
//! configured alike, the trivial filter, the chain of six and the bundle. A case is its filters
//! (wasm or native), the HCM fields it needs and the request wrk sends; `load` runs it on Envoy
//! and `fuel` in the wasmtime host.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use super::tokens::{Alg, Keys, AUDIENCE, ISSUER};

/// Name of the baseline for requests without a body (no filter, GET).
pub const BASELINE: &str = "no filter";
/// Name of the baseline for the 4 KiB JSON POST.
pub const BASELINE_POST: &str = "no filter, POST 4 KiB";
/// Name of the trivial wasm filter case.
pub const TRIVIAL: &str = "trivial wasm";
/// The trivial filter reading the request headers once through the SDK, which decodes a
/// `String` per name and value.
pub const TRIVIAL_HEADERS: &str = "trivial wasm + one header map read, SDK-decoded";
/// The trivial filter reading the request's header map bytes once, as Palisade's glue does: the
/// floor of any Palisade filter that looks at a header.
pub const TRIVIAL_HEADER_BYTES: &str = "trivial wasm + one header map read, bytes";
/// The trivial filter reading the header bytes and then the whole 4 KiB body, buffered: the
/// floor of a filter that inspects a body (request-validation, field-encryption).
pub const TRIVIAL_BODY: &str = "trivial wasm + header bytes and 4 KiB body read, POST";
/// The six filters chained, on the common GET with a cached JWT (no body).
pub const CHAIN_GET: &str = "six filters chained, GET cached JWT";
/// The six filters chained, on the 4 KiB JSON POST with a cached JWT.
pub const CHAIN_POST: &str = "six filters chained, POST 4 KiB";
/// The bundle on the common GET with a cached JWT (no body): issue #9's bundle targets.
pub const BUNDLE_GET: &str = "gateway bundle (6 layers), GET cached JWT";
/// The bundle on the 4 KiB JSON POST with a cached JWT.
pub const BUNDLE_POST: &str = "gateway bundle (6 layers), POST 4 KiB";
/// Distinct tokens of the realistic JWT mix.
pub const MIX_TOKENS: usize = 1000;
/// Uses of each token in the mix.
pub const MIX_USES: usize = 100;
/// Tokens of the mix in use at any time: each run of `MIX_INTERLEAVE * MIX_USES` requests
/// uses `MIX_INTERLEAVE` new tokens `MIX_USES` times each, interleaved, so exactly 1% of the
/// requests carry a token seen for the first time, whatever the run's length.
pub const MIX_INTERLEAVE: usize = 10;
/// Distinct keys of the many-keys rate-limit case.
pub const MANY_KEYS: usize = 10_000;
/// Env var holding the field-encryption data key.
pub const FE_KEY_VAR: &str = "PALISADE_FE_BENCH";
/// The data key (32 bytes, base64): a bench constant, not a secret.
pub const FE_KEY: &str = "YmVuY2gtZGF0YS1rZXktMzItYnl0ZXMtLS0tLS0tLS0=";

/// How a header varies between requests (wrk's Lua script picks the value).
#[derive(Debug, Clone)]
pub enum Values {
    /// The same value on every request.
    One(String),
    /// `<stem><i>` for `i` cycling over `0..count`.
    Numbered {
        /// The value before the number.
        stem: String,
        /// How many distinct values.
        count: usize,
    },
    /// The realistic token mix (see [`MIX_INTERLEAVE`]); `warm` values serve the warm-up run,
    /// so the measured run starts with a cold cache.
    Mix {
        /// The measured values.
        values: Vec<String>,
        /// Values for the warm-up run only.
        warm: Vec<String>,
    },
}

impl Values {
    /// The value of the first request.
    pub fn first(&self) -> String {
        match self {
            Values::One(v) => v.clone(),
            Values::Numbered { stem, .. } => format!("{stem}0"),
            Values::Mix { values, .. } => values.first().cloned().unwrap_or_default(),
        }
    }
}

/// The request of a case.
#[derive(Debug, Clone)]
pub struct Req {
    /// HTTP method.
    pub method: &'static str,
    /// Path with query.
    pub path: String,
    /// Fixed headers.
    pub headers: Vec<(String, String)>,
    /// A header whose value varies: name, value prefix (e.g. `Bearer `), values.
    pub varying: Option<(String, String, Values)>,
    /// JSON body (sent with `content-type: application/json`).
    pub body: Option<String>,
}

impl Req {
    fn get(path: &str) -> Req {
        Req { method: "GET", path: path.into(), headers: Vec::new(), varying: None, body: None }
    }

    fn with(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn body(mut self, body: &str) -> Req {
        self.method = "POST";
        self.body = Some(body.into());
        self
    }

    fn varying(mut self, name: &str, prefix: &str, values: Values) -> Req {
        self.varying = Some((name.into(), prefix.into(), values));
        self
    }

    fn bearer(self, values: Values) -> Req {
        self.varying("authorization", "Bearer ", values)
    }

    /// Every header of the first request (fixed ones, then the varying one).
    pub fn first_headers(&self) -> Vec<(String, String)> {
        let mut headers = self.headers.clone();
        if let Some((name, prefix, values)) = &self.varying {
            headers.push((name.clone(), format!("{prefix}{}", values.first())));
        }
        headers
    }
}

/// One filter of a case's chain.
#[derive(Debug, Clone)]
pub enum Filter {
    /// `dist/<file>.wasm` with its JSON configuration and VM environment.
    Wasm {
        /// The `.wasm` name in `dist/` without extension.
        file: String,
        /// Plugin configuration.
        config: String,
        /// VM environment variables.
        env: Vec<(String, String)>,
    },
    /// A native Envoy filter: chain name and typed config.
    Native {
        /// The filter's name.
        name: String,
        /// Its `typed_config`.
        config: Value,
    },
}

impl Filter {
    fn wasm(file: &str, config: String) -> Filter {
        Filter::Wasm { file: file.into(), config, env: Vec::new() }
    }

    fn fe(config: String) -> Filter {
        Filter::Wasm { file: "field-encryption".into(), config, env: vec![(FE_KEY_VAR.into(), FE_KEY.into())] }
    }

    fn rate_limit() -> Filter {
        Filter::Wasm {
            file: "rate-limit".into(),
            config: rate_limit_config(),
            env: vec![(RL_SEED_VAR.into(), RL_SEED.into())],
        }
    }

    fn native(name: &str, config: Value) -> Filter {
        Filter::Native { name: name.into(), config }
    }
}

/// One bench case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique name (what `--case` matches and the table shows).
    pub name: String,
    /// The baseline case of the same round this one is compared with.
    pub baseline: &'static str,
    /// Filters in `http_filters` order (the router is appended).
    pub filters: Vec<Filter>,
    /// Extra HTTP connection manager fields (path normalization for native RBAC).
    pub hcm: Vec<(String, Value)>,
    /// What wrk sends.
    pub request: Req,
    /// Whether the fuel table measures it too (wasm cases whose request does not vary).
    pub fuel: bool,
}

impl Case {
    fn new(name: &str, baseline: &'static str, filters: Vec<Filter>, request: Req) -> Case {
        let fuel = !filters.is_empty()
            && filters.iter().all(|f| matches!(f, Filter::Wasm { .. }))
            && !matches!(request.varying, Some((_, _, Values::Numbered { .. } | Values::Mix { .. })));
        Case { name: name.into(), baseline, filters, hcm: Vec::new(), request, fuel }
    }

    /// Number of wasm filters (each one VM per worker).
    pub fn wasm_filters(&self) -> usize {
        self.wasm_files().len()
    }

    /// The `.wasm` files of its wasm filters, in order (cases with the same list load the same
    /// modules).
    pub fn wasm_files(&self) -> Vec<&str> {
        self.filters
            .iter()
            .filter_map(|f| match f {
                Filter::Wasm { file, .. } => Some(file.as_str()),
                Filter::Native { .. } => None,
            })
            .collect()
    }
}

/// Shared inputs of the cases: keys, tokens and the example configs.
pub struct Inputs {
    /// The JWK Set.
    pub jwks: Value,
    /// One ES256 token (the cached cases and the chain).
    pub es256: String,
    /// One RS256 token.
    pub rs256: String,
    /// One EdDSA token (fuel only).
    pub eddsa: String,
    /// The mix: `MIX_TOKENS` tokens, half ES256 and half RS256, plus warm-up tokens.
    pub mix: Values,
    /// `envoy-config/examples/security-headers.json`.
    pub security_headers: String,
    /// `envoy-config/examples/request-validation.json` without CSRF (the bench sends no token).
    pub validation: String,
    /// Response headers security-headers sets on the common request, for the native
    /// equivalents: `(name, value)` to set and names to remove. Filled by `load` from a real
    /// Envoy before the rounds start (empty in the fuel part).
    pub headers_added: Vec<(String, String)>,
    /// Response headers security-headers removes.
    pub headers_removed: Vec<String>,
}

impl Inputs {
    /// Mints keys and tokens (`mix`: whether the 1,000-token mix is needed) and reads the examples.
    pub fn new(root: &Path, mix: bool) -> Result<Inputs> {
        let keys = Keys::generate()?;
        let mix = if mix {
            let mut values = Vec::with_capacity(MIX_TOKENS);
            for n in 0..MIX_TOKENS {
                let alg = if n % 2 == 0 { Alg::Es256 } else { Alg::Rs256 };
                values.push(keys.token(alg, n)?);
            }
            let warm = (0..MIX_INTERLEAVE).map(|n| keys.token(Alg::Es256, 900_000 + n)).collect::<Result<_>>()?;
            Values::Mix { values, warm }
        } else {
            // Not minted (the fuel part alone): still a mix, so the case stays out of the fuel
            // table, as in a full run (varying requests have no steady cost per request).
            Values::Mix { values: Vec::new(), warm: Vec::new() }
        };
        let example = |name: &str| -> Result<String> {
            let path = root.join("envoy-config/examples").join(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let mut validation: Value = serde_json::from_str(&example("request-validation.json")?)?;
        if let Some(routes) = validation["routes"].as_array_mut() {
            for route in routes {
                if let Some(route) = route.as_object_mut() {
                    route.remove("csrf");
                }
            }
        }
        Ok(Inputs {
            jwks: keys.jwks()?,
            es256: keys.token(Alg::Es256, 1)?,
            rs256: keys.token(Alg::Rs256, 2)?,
            eddsa: keys.token(Alg::EdDsa, 3)?,
            mix,
            security_headers: example("security-headers.json")?,
            validation: validation.to_string(),
            headers_added: Vec::new(),
            headers_removed: Vec::new(),
        })
    }
}

/// The common GET of header-only cases: a browser-like API call.
fn api_get() -> Req {
    Req::get("/api/orders?page=2&sort=date")
        .with("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0")
        .with("referer", "https://shop.example.com/cart")
        .with("origin", "https://app.example.com")
        .with("accept", "application/json")
        .with("x-tenant", "acme")
        .with("x-client", "client-1")
}

/// The common POST: 4 KiB of nested JSON with about 60 string values, valid for the
/// request-validation example's `/api/orders` schema, with the 3 fields field-encryption
/// encrypts.
pub fn order_body() -> String {
    let items: Vec<Value> = (0..50)
        .map(|i| json!({"sku": format!("SKU-{i:05}-WIDGET-{}", ["BLUE", "RED", "GREEN"][i % 3]), "qty": 1 + i % 5}))
        .collect();
    let mut body = json!({
        "customer": {
            "email": "alice.smith@example.com",
            "name": "Alice Smith",
            "phone": "+1-202-555-0143",
            "address": {"line1": "1600 Example Avenue", "line2": "Suite 42", "city": "Springfield",
                        "postcode": "62704", "country": "US"},
            "notes": "",
        },
        "items": items,
        "gift_message_html": "<p>Happy birthday! Enjoy the widgets.</p>",
        "delivery_date": "2026-12-24",
        "coupon": "WELCOME10",
    });
    let size = body.to_string().len();
    let filler = "Please leave the parcel with the neighbour if nobody answers the door. ";
    let notes: String = filler.chars().cycle().take(4096usize.saturating_sub(size)).collect();
    body["customer"]["notes"] = json!(notes);
    body.to_string()
}

fn api_post() -> Req {
    let mut req = api_get();
    req.path = "/api/orders".into();
    req.with("content-type", "application/json").body(&order_body())
}

fn jwt_config(jwks: &Value, cache: bool) -> String {
    json!({
        "providers": {"bench": {"issuer": ISSUER, "audiences": [AUDIENCE],
                                "algorithms": ["ES256", "RS256", "EdDSA"], "local_jwks": jwks}},
        "rules": [{"match": {"path": {"prefix": "/"}}, "requires": {"provider": "bench"}}],
        "cache": {"enabled": cache},
    })
    .to_string()
}

fn native_jwt(jwks: &Value, cache: bool) -> Filter {
    let mut provider = json!({"issuer": ISSUER, "audiences": [AUDIENCE], "require_expiration": true,
                              "local_jwks": {"inline_string": jwks.to_string()}});
    if cache {
        provider["jwt_cache_config"] = json!({"jwt_cache_size": 1024});
    }
    Filter::native(
        "envoy.filters.http.jwt_authn",
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        }),
    )
}

/// One authz policy in a form both the Palisade config and native RBAC are generated from.
struct Policy {
    name: &'static str,
    deny: bool,
    /// Istio forms: `/x/*` prefix, `*.x` suffix, else exact.
    paths: &'static [&'static str],
    methods: &'static [&'static str],
    header: Option<(&'static str, &'static [&'static str])>,
    /// A request principal (`iss/sub`), `*` suffix for a prefix.
    principal: Option<&'static str>,
}

/// Twenty policies of a realistic gateway: four DENY, sixteen ALLOW; the bench request
/// (`GET /api/orders`, `x-tenant: acme`, no identity) passes every DENY and matches only the last.
#[rustfmt::skip]
const POLICIES: [Policy; 20] = [
    Policy { name: "deny-internal", deny: true, paths: &["/internal/*"], methods: &[], header: None, principal: None },
    Policy { name: "deny-trace", deny: true, paths: &[], methods: &["TRACE", "CONNECT"], header: None, principal: None },
    Policy { name: "deny-debug", deny: true, paths: &[], methods: &[], header: Some(("x-debug", &["*"])), principal: None },
    Policy { name: "deny-dotfiles", deny: true, paths: &["/.git*", "*.env"], methods: &[], header: None, principal: None },
    Policy { name: "health", deny: false, paths: &["/healthz", "/readyz"], methods: &["GET", "HEAD"], header: None, principal: None },
    Policy { name: "metrics", deny: false, paths: &["/metrics"], methods: &["GET"], header: None,
             principal: Some("https://auth.example.com/prometheus") },
    Policy { name: "admin-ops", deny: false, paths: &["/admin/*"], methods: &[], header: None,
             principal: Some("https://auth.example.com/ops-*") },
    Policy { name: "catalog-read", deny: false, paths: &["/api/v1/catalog/*"], methods: &["GET", "HEAD"],
             header: None, principal: None },
    Policy { name: "catalog-write", deny: false, paths: &["/api/v1/catalog/*"], methods: &["POST", "PUT", "DELETE"],
             header: None, principal: Some("https://auth.example.com/catalog-admin") },
    Policy { name: "users-self", deny: false, paths: &["/api/v1/users/*"], methods: &["GET", "PATCH"],
             header: Some(("x-tenant", &["acme", "globex"])), principal: Some("https://auth.example.com/*") },
    Policy { name: "payments", deny: false, paths: &["/api/v1/payments/*"], methods: &["POST"], header: None,
             principal: Some("https://auth.example.com/order-service") },
    Policy { name: "refunds", deny: false, paths: &["/api/v1/refunds/*"], methods: &["POST"],
             header: Some(("x-approval", &["*"])), principal: Some("https://auth.example.com/finance-*") },
    Policy { name: "search", deny: false, paths: &["/api/v1/search"], methods: &["GET"],
             header: Some(("x-tenant", &["acme", "globex", "initech"])), principal: None },
    Policy { name: "reports", deny: false, paths: &["/api/v1/reports/*"], methods: &["GET"],
             header: Some(("x-report-format", &["csv", "pdf"])), principal: None },
    Policy { name: "webhooks", deny: false, paths: &["/hooks/*"], methods: &["POST"],
             header: Some(("x-signature", &["*"])), principal: None },
    Policy { name: "partner-api", deny: false, paths: &["/partner/*"], methods: &[],
             header: Some(("x-api-version", &["2024-01", "2025-01"])), principal: None },
    Policy { name: "static", deny: false, paths: &["/static/*", "*.css", "*.js"], methods: &["GET", "HEAD"],
             header: None, principal: None },
    Policy { name: "graphql", deny: false, paths: &["/graphql"], methods: &["POST"],
             header: Some(("content-type", &["application/json"])), principal: None },
    Policy { name: "inventory", deny: false, paths: &["/api/v1/inventory/*"], methods: &["GET"],
             header: Some(("x-tenant", &["acme"])), principal: Some("https://auth.example.com/warehouse-*") },
    Policy { name: "orders", deny: false, paths: &["/api/orders", "/api/orders/*"], methods: &["GET", "POST"],
             header: Some(("x-tenant", &["acme", "globex", "initech"])), principal: None },
];

fn authz_config() -> String {
    let policies: Vec<Value> = POLICIES
        .iter()
        .map(|p| {
            let mut rule = serde_json::Map::new();
            let mut operation = serde_json::Map::new();
            if !p.paths.is_empty() {
                operation.insert("paths".into(), json!(p.paths));
            }
            if !p.methods.is_empty() {
                operation.insert("methods".into(), json!(p.methods));
            }
            if !operation.is_empty() {
                rule.insert("to".into(), json!([{"operation": operation}]));
            }
            if let Some(principal) = p.principal {
                rule.insert("from".into(), json!([{"source": {"requestPrincipals": [principal]}}]));
            }
            if let Some((header, values)) = p.header {
                rule.insert("when".into(), json!([{"key": format!("request.headers[{header}]"), "values": values}]));
            }
            json!({"name": p.name, "action": if p.deny { "DENY" } else { "ALLOW" }, "rules": [rule]})
        })
        .collect();
    json!({"policies": policies}).to_string()
}

/// An Istio string form as an Envoy `StringMatcher`.
fn string_match(value: &str) -> Value {
    if value == "*" {
        json!({"safe_regex": {"regex": ".+"}})
    } else if let Some(prefix) = value.strip_suffix('*') {
        json!({"prefix": prefix})
    } else if let Some(suffix) = value.strip_prefix('*') {
        json!({"suffix": suffix})
    } else {
        json!({"exact": value})
    }
}

fn any_of(rules: Vec<Value>) -> Value {
    json!({"or_rules": {"rules": rules}})
}

/// The twenty policies as native RBAC (README "Mapping to Envoy's native rbac filter"): a DENY
/// filter then an ALLOW filter. A request principal becomes a `metadata` matcher on
/// `jwt_authn`'s payload, which RBAC can read (here absent, as the identity is for Palisade).
fn rbac_filters() -> Vec<Filter> {
    let policy = |p: &Policy| {
        let mut rules = Vec::new();
        if !p.paths.is_empty() {
            rules.push(any_of(p.paths.iter().map(|path| json!({"url_path": {"path": string_match(path)}})).collect()));
        }
        if !p.methods.is_empty() {
            rules.push(any_of(
                p.methods
                    .iter()
                    .map(|m| json!({"header": {"name": ":method", "string_match": {"exact": m}}}))
                    .collect(),
            ));
        }
        if let Some((header, values)) = p.header {
            rules.push(any_of(
                values
                    .iter()
                    .map(|v| match *v {
                        "*" => json!({"header": {"name": header, "present_match": true}}),
                        v => json!({"header": {"name": header, "string_match": string_match(v)}}),
                    })
                    .collect(),
            ));
        }
        let principals = match p.principal {
            Some(principal) => json!([{"metadata": {
                "filter": "envoy.filters.http.jwt_authn",
                "path": [{"key": "payload"}, {"key": "sub"}],
                "value": {"string_match": string_match(principal)},
            }}]),
            None => json!([{"any": true}]),
        };
        json!({"permissions": [{"and_rules": {"rules": rules}}], "principals": principals})
    };
    let filter = |deny: bool| {
        let policies: serde_json::Map<String, Value> =
            POLICIES.iter().filter(|p| p.deny == deny).map(|p| (p.name.to_string(), policy(p))).collect();
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": if deny { "DENY" } else { "ALLOW" }, "policies": policies},
        })
    };
    vec![Filter::native("rbac-deny", filter(true)), Filter::native("rbac-allow", filter(false))]
}

/// Path normalization like authz's (for native RBAC).
fn normalizing_hcm() -> Vec<(String, Value)> {
    vec![
        ("normalize_path".into(), json!(true)),
        ("merge_slashes".into(), json!(true)),
        ("path_with_escaped_slashes_action".into(), json!("REJECT_REQUEST")),
    ]
}

/// The rate-limit hash seed's VM environment variable and the bench's (not secret) value.
const RL_SEED_VAR: &str = "PALISADE_RATE_LIMIT_SEED";
const RL_SEED: &str = "bench-hash-seed-0123456789abcdef0123";

fn rate_limit_config() -> String {
    json!({
        "domain": "bench",
        "hash_seed_env": RL_SEED_VAR,
        "table": {"slots": 16384, "ways": 8},
        "limits": {"per-client": {"key": [{"header": "x-client"}], "rate": {"tokens": 1_000_000_000u64, "per": "1s"}}},
        "routes": [{"match": {}, "limits": ["per-client"]}],
    })
    .to_string()
}

fn native_rate_limit(per_key: bool) -> Filter {
    let percent =
        |key: &str| json!({"runtime_key": key, "default_value": {"numerator": 100, "denominator": "HUNDRED"}});
    let bucket = json!({"max_tokens": 1_000_000_000u64, "tokens_per_fill": 1_000_000_000u64, "fill_interval": "1s"});
    let mut config = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": "bench_rl",
        "token_bucket": bucket,
        "filter_enabled": percent("bench_rl.enabled"),
        "filter_enforced": percent("bench_rl.enforced"),
        "local_rate_limit_per_downstream_connection": false,
    });
    if per_key {
        // A wildcard descriptor (empty value): one bucket per distinct x-client, created on demand.
        config["rate_limits"] =
            json!([{"actions": [{"request_headers": {"header_name": "x-client", "descriptor_key": "client"}}]}]);
        config["descriptors"] = json!([{"entries": [{"key": "client"}], "token_bucket": bucket}]);
        config["max_dynamic_descriptors"] = json!(MANY_KEYS * 2);
    }
    Filter::native("envoy.filters.http.local_ratelimit", config)
}

fn field_encryption_config() -> String {
    json!({
        "keys": {"primary": "bench-1", "data_keys": [{"id": "bench-1", "version": 1, "env": FE_KEY_VAR}]},
        "fields": {
            "email": {"mode": "deterministic"},
            "name": {"mode": "randomized"},
            "phone": {"mode": "randomized"},
        },
        "routes": [{
            "match": {"path": {"prefix": "/api/orders"}, "methods": ["POST"]},
            "encrypt": [
                {"path": "/customer/email", "field": "email", "required": true},
                {"path": "/customer/name", "field": "name", "required": true},
                {"path": "/customer/phone", "field": "phone", "required": true},
            ],
        }],
    })
    .to_string()
}

fn header_mutation(inputs: &Inputs) -> Filter {
    let mut mutations: Vec<Value> = inputs
        .headers_added
        .iter()
        .map(|(k, v)| {
            json!({"append": {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}})
        })
        .collect();
    mutations.extend(inputs.headers_removed.iter().map(|name| json!({"remove": name})));
    Filter::native(
        "envoy.filters.http.header_mutation",
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"response_mutations": mutations},
        }),
    )
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            b => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

fn lua_headers(inputs: &Inputs) -> Filter {
    let mut code = String::from("function envoy_on_response(response_handle)\n  local h = response_handle:headers()\n");
    for (name, value) in &inputs.headers_added {
        code.push_str(&format!("  h:replace({}, {})\n", lua_string(name), lua_string(value)));
    }
    for name in &inputs.headers_removed {
        code.push_str(&format!("  h:remove({})\n", lua_string(name)));
    }
    code.push_str("end\n");
    Filter::native(
        "envoy.filters.http.lua",
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": code},
        }),
    )
}

/// The six filters in the README's order, each on its common path.
fn six(inputs: &Inputs) -> Vec<Filter> {
    vec![
        Filter::wasm("security-headers", inputs.security_headers.clone()),
        Filter::wasm("jwt-authn", jwt_config(&inputs.jwks, true)),
        Filter::wasm("authz", authz_config()),
        Filter::rate_limit(),
        Filter::wasm("request-validation", inputs.validation.clone()),
        Filter::fe(field_encryption_config()),
    ]
}

/// The bundle's configuration: the six layers with exactly their separate configs.
fn bundle_config(inputs: &Inputs) -> Result<String> {
    let mut layers = Vec::new();
    for filter in six(inputs) {
        if let Filter::Wasm { file, config, .. } = filter {
            layers.push(json!({"filter": file, "config": serde_json::from_str::<Value>(&config)?}));
        }
    }
    Ok(json!({ "layers": layers }).to_string())
}

/// Every case, baselines first. `bundle`: whether `dist/gateway.wasm` exists.
pub fn all(inputs: &Inputs, bundle: bool) -> Result<Vec<Case>> {
    let one = |token: &str| Values::One(token.to_string());
    let jwt = |cache: bool| Filter::wasm("jwt-authn", jwt_config(&inputs.jwks, cache));
    let mut cases = vec![
        Case::new(BASELINE, BASELINE, vec![], api_get()),
        Case::new(BASELINE_POST, BASELINE_POST, vec![], api_post()),
        Case::new(TRIVIAL, BASELINE, vec![Filter::wasm("trivial", "{}".into())], api_get()),
        Case::new(TRIVIAL_HEADERS, BASELINE, vec![Filter::wasm("trivial", "read_request_headers".into())], api_get()),
        Case::new(
            TRIVIAL_HEADER_BYTES,
            BASELINE,
            vec![Filter::wasm("trivial", "read_request_header_bytes".into())],
            api_get(),
        ),
        Case::new(TRIVIAL_BODY, BASELINE_POST, vec![Filter::wasm("trivial", "read_request_body".into())], api_post()),
        Case::new(
            "security-headers",
            BASELINE,
            vec![Filter::wasm("security-headers", inputs.security_headers.clone())],
            api_get(),
        ),
        Case::new("native header_mutation", BASELINE, vec![header_mutation(inputs)], api_get()),
        Case::new("native lua (headers)", BASELINE, vec![lua_headers(inputs)], api_get()),
        Case::new("jwt-authn ES256 uncached", BASELINE, vec![jwt(false)], api_get().bearer(one(&inputs.es256))),
        Case::new("jwt-authn RS256 uncached", BASELINE, vec![jwt(false)], api_get().bearer(one(&inputs.rs256))),
        Case::new("jwt-authn cached", BASELINE, vec![jwt(true)], api_get().bearer(one(&inputs.es256))),
        Case::new("jwt-authn mix 1000x100", BASELINE, vec![jwt(true)], api_get().bearer(inputs.mix.clone())),
        Case::new(
            "native jwt_authn ES256 uncached",
            BASELINE,
            vec![native_jwt(&inputs.jwks, false)],
            api_get().bearer(one(&inputs.es256)),
        ),
        Case::new(
            "native jwt_authn RS256 uncached",
            BASELINE,
            vec![native_jwt(&inputs.jwks, false)],
            api_get().bearer(one(&inputs.rs256)),
        ),
        Case::new(
            "native jwt_authn cached",
            BASELINE,
            vec![native_jwt(&inputs.jwks, true)],
            api_get().bearer(one(&inputs.es256)),
        ),
        Case::new(
            "native jwt_authn mix 1000x100",
            BASELINE,
            vec![native_jwt(&inputs.jwks, true)],
            api_get().bearer(inputs.mix.clone()),
        ),
        Case::new("authz 20 policies", BASELINE, vec![Filter::wasm("authz", authz_config())], api_get()),
        Case { hcm: normalizing_hcm(), ..Case::new("native rbac 20 policies", BASELINE, rbac_filters(), api_get()) },
        Case::new("rate-limit 1 key", BASELINE, vec![Filter::rate_limit()], api_get()),
        Case::new(
            "rate-limit 10k keys",
            BASELINE,
            vec![Filter::rate_limit()],
            api_get().varying("x-client", "", Values::Numbered { stem: "client-".into(), count: MANY_KEYS }),
        ),
        Case::new("native local_ratelimit 1 bucket", BASELINE, vec![native_rate_limit(false)], api_get()),
        Case::new(
            "native local_ratelimit 10k descriptors",
            BASELINE,
            vec![native_rate_limit(true)],
            api_get().varying("x-client", "", Values::Numbered { stem: "client-".into(), count: MANY_KEYS }),
        ),
        Case::new(
            "request-validation GET",
            BASELINE,
            vec![Filter::wasm("request-validation", inputs.validation.clone())],
            api_get(),
        ),
        Case::new(
            "request-validation POST 4 KiB",
            BASELINE_POST,
            vec![Filter::wasm("request-validation", inputs.validation.clone())],
            api_post(),
        ),
        Case::new(
            "field-encryption POST 4 KiB, 3 fields",
            BASELINE_POST,
            vec![Filter::fe(field_encryption_config())],
            api_post(),
        ),
    ];
    // The chain and the bundle on the same two requests: the common GET (the layers' header
    // paths, a cached JWT) and the 4 KiB POST (validation and encryption of the body too).
    let get = api_get().bearer(one(&inputs.es256));
    let post = api_post().bearer(one(&inputs.es256));
    cases.push(Case::new(CHAIN_GET, BASELINE, six(inputs), get.clone()));
    cases.push(Case::new(CHAIN_POST, BASELINE_POST, six(inputs), post.clone()));
    if bundle {
        let gateway = Filter::Wasm {
            file: "gateway".into(),
            config: bundle_config(inputs)?,
            env: vec![(FE_KEY_VAR.into(), FE_KEY.into()), (RL_SEED_VAR.into(), RL_SEED.into())],
        };
        cases.push(Case::new(BUNDLE_GET, BASELINE, vec![gateway.clone()], get));
        cases.push(Case::new(BUNDLE_POST, BASELINE_POST, vec![gateway], post));
    }
    Ok(cases)
}

/// Fuel-only cases: EdDSA uncached and cached (Envoy's table has ES256 and RS256).
pub fn fuel_extra(inputs: &Inputs) -> Vec<Case> {
    let jwt = |cache: bool| Filter::wasm("jwt-authn", jwt_config(&inputs.jwks, cache));
    let one = Values::One(inputs.eddsa.clone());
    vec![
        Case::new("jwt-authn EdDSA uncached", BASELINE, vec![jwt(false)], api_get().bearer(one.clone())),
        Case::new("jwt-authn EdDSA cached", BASELINE, vec![jwt(true)], api_get().bearer(one)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_body_is_4_kib_of_json_with_about_60_strings() {
        let body = order_body();
        assert_eq!(body.len(), 4096);
        let value: Value = serde_json::from_str(&body).unwrap_or_default();
        fn strings(v: &Value) -> usize {
            match v {
                Value::String(_) => 1,
                Value::Array(a) => a.iter().map(strings).sum(),
                Value::Object(o) => o.values().map(strings).sum(),
                _ => 0,
            }
        }
        assert!((55..=65).contains(&strings(&value)), "{}", strings(&value));
    }

    #[test]
    fn the_bundle_runs_the_chain_s_filters_and_requests() {
        let inputs = Inputs::new(&crate::e2e::workspace_root(), false).unwrap();
        let cases = all(&inputs, true).unwrap();
        let case = |name: &str| cases.iter().find(|c| c.name == name).unwrap();
        for (chain, bundle) in [(CHAIN_GET, BUNDLE_GET), (CHAIN_POST, BUNDLE_POST)] {
            let (chain, bundle) = (case(chain), case(bundle));
            assert_eq!(chain.baseline, bundle.baseline);
            assert_eq!(format!("{:?}", chain.request), format!("{:?}", bundle.request));
            assert!(chain.fuel && bundle.fuel);
            let Filter::Wasm { config, env, .. } = &bundle.filters[0] else { panic!("the bundle is wasm") };
            let layers: Value = serde_json::from_str(config).unwrap();
            let layers = layers["layers"].as_array().unwrap();
            assert_eq!(layers.len(), chain.filters.len());
            for (layer, filter) in layers.iter().zip(&chain.filters) {
                let Filter::Wasm { file, config, env: filter_env } = filter else { panic!("the chain is wasm") };
                assert_eq!(layer["filter"], json!(file));
                assert_eq!(layer["config"], serde_json::from_str::<Value>(config).unwrap());
                assert!(filter_env.iter().all(|var| env.contains(var)), "{file}: {filter_env:?}");
            }
        }
        let get = &case(BUNDLE_GET).request;
        assert_eq!((get.method, get.body.is_none()), ("GET", true));
        assert_eq!(case(BUNDLE_POST).request.body.as_deref().map(str::len), Some(4096));
    }

    #[test]
    fn only_the_last_policy_matches_the_bench_request() {
        let matching: Vec<&str> = POLICIES
            .iter()
            .filter(|p| p.paths.contains(&"/api/orders") && p.header.is_some())
            .map(|p| p.name)
            .collect();
        assert_eq!(matching, ["orders"]);
        assert_eq!(POLICIES.iter().filter(|p| p.deny).count(), 4);
    }
}
