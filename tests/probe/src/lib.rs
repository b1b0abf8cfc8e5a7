//! The probe: a filter for the host tests, not for production. Each request names one
//! operation in `x-probe-op` (arguments in `x-probe-arg`, `x-probe-key`, `x-probe-value`,
//! `x-probe-cas`); the outcome goes to the upstream as `x-probe-result` or to the log as
//! `probe: ...`. Words in the plugin configuration drive the root context (`reject`,
//! `tick=<ms>`, `queue`, `root-callout=<cluster>`, `metrics`). The environment variable
//! `PROBE_INIT_OP` makes `_initialize` call something Envoy forbids there.
//!
//! Panics are the point of some operations (they show what traps), so the panic lints are off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    let _ = hostcalls::log(LogLevel::Info, "probe: initialize");
    match std::env::var("PROBE_INIT_OP").as_deref() {
        Ok("get_property") => {
            let _ = hostcalls::get_property(vec!["plugin_name"]);
        }
        Ok("shared_data") => {
            let _ = hostcalls::get_shared_data("k");
        }
        Ok("env") => {
            let _ = hostcalls::log(LogLevel::Info, &format!("probe: init env={}", std::env::var("PROBE_VALUE").unwrap_or_default()));
        }
        _ => {}
    }
    proxy_wasm::set_root_context(|_| Box::new(ProbeRoot::default()));
}}

fn log(message: &str) {
    let _ = hostcalls::log(LogLevel::Info, &format!("probe: {message}"));
}

#[derive(Default)]
struct ProbeRoot {
    words: Vec<String>,
    queue: Option<u32>,
}

impl ProbeRoot {
    fn word(&self, prefix: &str) -> Option<&str> {
        self.words.iter().find_map(|w| w.strip_prefix(prefix))
    }
}

impl Context for ProbeRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _trailers: usize) {
        let status = self.get_http_call_response_header(":status").unwrap_or_default();
        let body = self.get_http_call_response_body(0, body).unwrap_or_default();
        log(&format!(
            "root callout token={token} headers={headers} status={status} body={}",
            String::from_utf8_lossy(&body)
        ));
        self.set_shared_data("root-callout", Some(&body), None).unwrap();
    }
}

impl RootContext for ProbeRoot {
    fn on_vm_start(&mut self, size: usize) -> bool {
        let config = self.get_vm_configuration().unwrap_or_default();
        log(&format!("vm_start size={size} config={}", String::from_utf8_lossy(&config)));
        config != b"fail"
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.words = String::from_utf8_lossy(&config).split_whitespace().map(String::from).collect();
        log(&format!("configure size={size}"));
        if self.words.iter().any(|w| w == "reject") {
            let _ = hostcalls::log(LogLevel::Error, "probe: config rejected: reject: not allowed");
            return false;
        }
        if let Some(ms) = self.word("tick=").and_then(|v| v.parse().ok()) {
            self.set_tick_period(Duration::from_millis(ms));
        }
        if self.words.iter().any(|w| w == "queue") {
            self.queue = Some(self.register_shared_queue("q1"));
        }
        if let Some(cluster) = self.word("root-callout=").map(String::from) {
            let headers = vec![(":method", "GET"), (":path", "/jwks"), (":authority", "idp")];
            let result = self.dispatch_http_call(&cluster, headers, None, vec![], Duration::from_secs(5));
            log(&format!("root callout dispatch={result:?}"));
        }
        true
    }

    fn on_tick(&mut self) {
        let (value, cas) = self.get_shared_data("ticks");
        let count: u64 = value.and_then(|v| String::from_utf8(v).ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        self.set_shared_data("ticks", Some((count + 1).to_string().as_bytes()), cas).unwrap();
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        let item = self.dequeue_shared_queue(queue_id).unwrap().unwrap_or_default();
        log(&format!("queue ready id={queue_id} item={}", String::from_utf8_lossy(&item)));
        self.set_shared_data("queue-got", Some(&item), None).unwrap();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let forced_op = self.word("op=").map(String::from);
        Some(Box::new(Probe { id: context_id, op: String::new(), arg: String::new(), forced_op }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    id: u32,
    op: String,
    arg: String,
    /// `op=<op>` in the plugin configuration: the same operation for every request.
    forced_op: Option<String>,
}

impl Probe {
    fn header(&self, name: &str) -> String {
        self.get_http_request_header(name).unwrap_or_default()
    }

    fn result(&self, value: &str) {
        self.add_http_request_header("x-probe-result", value);
    }

    /// Runs the operation of the request headers phase; `Some(action)` overrides Continue.
    fn request_headers_op(&mut self) -> Option<Action> {
        match self.op.as_str() {
            "get-header" => {
                let value = self.get_http_request_header(&self.arg);
                self.result(&format!("{value:?}"));
            }
            "get-header-bytes" => {
                let value = self.get_http_request_header_bytes(&self.arg).unwrap_or_default();
                self.result(&hex(&value));
            }
            "add-header" => {
                self.add_http_request_header("X-Added", "a");
                self.add_http_request_header("x-added", "b");
            }
            "replace-header" => self.set_http_request_header(&self.arg, Some("replaced")),
            "remove-header" => self.set_http_request_header(&self.arg, None),
            "set-pairs" => {
                let mut pairs = self.get_http_request_headers();
                pairs.retain(|(k, _)| !k.starts_with("x-drop"));
                pairs.push(("X-Set-Pairs".into(), "yes".into()));
                self.set_http_request_headers(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect());
            }
            "get-pairs" => {
                let names: Vec<String> = self.get_http_request_headers_bytes().into_iter().map(|(k, _)| k).collect();
                self.result(&names.join(","));
            }
            "property" => {
                let path: Vec<&str> = self.arg.split('/').collect();
                let value = self.get_property(path);
                self.result(&match value {
                    Some(bytes) => hex(&bytes),
                    None => "none".into(),
                });
            }
            "set-property" => {
                let value = self.header("x-probe-value");
                self.set_property(vec![&self.arg], Some(value.as_bytes()));
            }
            "shared-set" => {
                let key = self.header("x-probe-key");
                let value = self.header("x-probe-value");
                let cas = self.header("x-probe-cas").parse().ok();
                let outcome = match self.set_shared_data(&key, Some(value.as_bytes()), cas) {
                    Ok(()) => "ok".to_string(),
                    Err(status) => format!("{status:?}"),
                };
                self.result(&outcome);
            }
            "shared-get" => {
                let (value, cas) = self.get_shared_data(&self.header("x-probe-key"));
                let value = value.map(|v| String::from_utf8_lossy(&v).into_owned());
                self.result(&format!("{value:?}/{cas:?}"));
            }
            "queue-enqueue" => {
                let outcome = match self.resolve_shared_queue(&self.header("x-probe-key"), "q1") {
                    Some(id) => format!("{id}:{:?}", self.enqueue_shared_queue(id, Some(self.arg.as_bytes()))),
                    None => "unresolved".into(),
                };
                self.result(&outcome);
            }
            "queue-register" => {
                let id = self.register_shared_queue(&self.arg);
                let first = self.dequeue_shared_queue(id);
                let missing = self.enqueue_shared_queue(9999, Some(b"x"));
                self.result(&format!("{id}/{first:?}/{missing:?}"));
            }
            "local-reply" => {
                let status = self.arg.parse().unwrap_or(418);
                self.send_http_response(status, vec![("x-local", "1"), ("X-Upper", "Yes")], Some(b"teapot\n"));
                return Some(Action::Pause);
            }
            "local-reply-continue" => {
                self.send_http_response(403, vec![], None);
                return Some(Action::Continue);
            }
            "http-call" => {
                let headers = vec![(":method", "GET"), (":path", "/check"), (":authority", "authz")];
                let body: Option<&[u8]> = Some(b"ping");
                let timeout = Duration::from_millis(self.header("x-probe-timeout").parse().unwrap_or(5000));
                match self.dispatch_http_call(&self.arg, headers, body, vec![("t", "1")], timeout) {
                    Ok(token) => {
                        log(&format!("dispatched token={token}"));
                        return Some(Action::Pause);
                    }
                    Err(status) => self.result(&format!("dispatch-error:{status:?}")),
                }
            }
            "http-call-no-path" => {
                let outcome =
                    self.dispatch_http_call(&self.arg, vec![(":method", "GET")], None, vec![], Duration::from_secs(1));
                self.result(&format!("{outcome:?}"));
            }
            "grpc-call" => {
                match self.dispatch_grpc_call(
                    &self.arg,
                    "pkg.Svc",
                    "Check",
                    vec![("md", b"1")],
                    Some(b"req"),
                    Duration::from_secs(1),
                ) {
                    Ok(_) => return Some(Action::Pause),
                    Err(status) => self.result(&format!("grpc-error:{status:?}")),
                }
            }
            "metric" => {
                let counter = hostcalls::define_metric(MetricType::Counter, "probe.requests").unwrap();
                hostcalls::increment_metric(counter, 1).unwrap();
                let gauge = hostcalls::define_metric(MetricType::Gauge, "probe.gauge").unwrap();
                hostcalls::record_metric(gauge, 42).unwrap();
                let histogram = hostcalls::define_metric(MetricType::Histogram, "probe.latency").unwrap();
                hostcalls::record_metric(histogram, 7).unwrap();
                let value = hostcalls::get_metric(counter).unwrap();
                let bad = hostcalls::increment_metric(counter, -1);
                let missing = hostcalls::get_metric(9999);
                self.result(&format!("{value}/{bad:?}/{missing:?}"));
            }
            "time" => {
                let proxy = self.get_current_time().duration_since(UNIX_EPOCH).unwrap().as_nanos();
                let wasi = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
                self.result(&format!("{proxy}/{wasi}"));
            }
            "env" => self.result(&std::env::var(&self.arg).unwrap_or_else(|_| "unset".into())),
            "wasi-random" => {
                let len: usize = self.arg.parse().unwrap_or(16);
                let mut buf = vec![0u8; len];
                let errno = unsafe { wasi::random_get(buf.as_mut_ptr(), len) };
                self.result(&format!("{errno}:{}", hex(&buf[..len.min(8)])));
            }
            "wasi-clock" => {
                let id: u32 = self.arg.parse().unwrap_or(0);
                let mut out = 0u64;
                let errno = unsafe { wasi::clock_time_get(id, 1, &mut out) };
                self.result(&format!("{errno}:{out}"));
            }
            "wasi-stdout" => {
                println!("to stdout");
                eprintln!("to stderr");
            }
            "log-levels" => {
                for level in [
                    LogLevel::Trace,
                    LogLevel::Debug,
                    LogLevel::Info,
                    LogLevel::Warn,
                    LogLevel::Error,
                    LogLevel::Critical,
                ] {
                    let _ = hostcalls::log(level, &format!("probe: level {level:?}"));
                }
                self.result(&format!("{:?}", hostcalls::get_log_level()));
            }
            "panic" => panic!("probe panic on purpose"),
            "close" => {
                self.reset_http_request();
                return Some(Action::Pause);
            }
            "pause" => return Some(Action::Pause),
            "foreign" => self.result(&format!("{:?}", self.call_foreign_function("nope", None))),
            "effective-context" => self.result(&format!("{:?}", hostcalls::set_effective_context(777))),
            "buffer-status" => {
                let missing = hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpCallResponseBody, 0, 10);
                self.result(&format!("{missing:?}"));
            }
            _ => {}
        }
        None
    }
}

mod wasi {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        pub fn random_get(buf: *mut u8, len: usize) -> u16;
        pub fn clock_time_get(id: u32, precision: u64, out: *mut u64) -> u16;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Context for Probe {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        let outcome = if headers == 0 && body == 0 && trailers == 0 {
            let (code, message) = self.get_grpc_status();
            format!("failed:{code}:{}", message.unwrap_or_default())
        } else {
            let status = self.get_http_call_response_header(":status").unwrap_or_default();
            let body = self.get_http_call_response_body(0, body).unwrap_or_default();
            let trailer = self.get_http_call_response_trailer("t").unwrap_or_default();
            format!("{status}:{}:{trailer}", String::from_utf8_lossy(&body))
        };
        log(&format!("callout token={token} {outcome}"));
        if self.arg.ends_with("-deny") || outcome.starts_with("403") {
            self.send_http_response(403, vec![("x-denied-by", "callout")], Some(b"denied"));
            return;
        }
        self.result(&outcome);
        self.resume_http_request();
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let body = self.get_grpc_call_response_body(0, size).unwrap_or_default();
        let (code, message) = self.get_grpc_status();
        self.result(&format!(
            "grpc:{token}:{status}:{}:{code}:{}",
            String::from_utf8_lossy(&body),
            message.unwrap_or_default()
        ));
        self.resume_http_request();
    }
}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, headers: usize, eos: bool) -> Action {
        self.op = self.forced_op.clone().unwrap_or_else(|| self.header("x-probe-op"));
        self.arg = self.header("x-probe-arg");
        log(&format!("ctx={} request_headers n={headers} eos={eos} op={}", self.id, self.op));
        let name = String::from_utf8(self.get_property(vec!["plugin_name"]).unwrap_or_default()).unwrap_or_default();
        self.add_http_request_header("x-probe-chain", &name);
        if self.op == "remove-content-length" {
            self.set_http_request_header("content-length", None);
        }
        if self.op == "read-filter-state" {
            let value = self.get_property(vec![&self.arg]).map(|v| String::from_utf8_lossy(&v).into_owned());
            self.result(&format!("{value:?}"));
        }
        self.request_headers_op().unwrap_or(Action::Continue)
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        log(&format!("request_body size={size} eos={eos} body={}", String::from_utf8_lossy(&body)));
        match self.op.as_str() {
            "header-in-body" => {
                let path = self.get_http_request_header(":path");
                log(&format!("unreachable {path:?}"));
            }
            "pairs-in-body" => log(&format!("pairs-in-body={}", self.get_http_request_headers().len())),
            "buffer" | "remove-content-length" => {
                if !eos {
                    return Action::Pause;
                }
                self.set_http_request_body(0, 0, b"[wasm]");
            }
            "replace-body" => {
                if !eos {
                    return Action::Pause;
                }
                self.set_http_request_body(0, size, b"replaced");
            }
            "body-bad-start" => {
                let outcome = hostcalls::set_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 1, 0, b"x");
                log(&format!("bad-start={outcome:?}"));
            }
            "local-reply-in-body" if eos => {
                self.send_http_response(413, vec![], Some(b"too big"));
                return Action::Pause;
            }
            "pause-body" => return Action::Pause,
            _ => {}
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, trailers: usize) -> Action {
        let value = self.get_http_request_trailer("x-trailer");
        log(&format!("request_trailers n={trailers} x-trailer={value:?}"));
        self.add_http_request_trailer("x-probe-trailer", "1");
        Action::Continue
    }

    fn on_http_response_headers(&mut self, headers: usize, eos: bool) -> Action {
        log(&format!("response_headers n={headers} eos={eos}"));
        let name = String::from_utf8(self.get_property(vec!["plugin_name"]).unwrap_or_default()).unwrap_or_default();
        self.add_http_response_header("x-probe-seen", &name);
        match self.op.as_str() {
            "request-header-in-response" => {
                let path = self.get_http_request_header(":path");
                log(&format!("unreachable {path:?}"));
            }
            "response-headers" => {
                self.set_http_response_header("server", None);
                self.set_http_response_header("x-replaced", Some("new"));
                let code = self.get_property(vec!["response", "code"]).unwrap_or_default();
                log(&format!("response code={}", hex(&code)));
            }
            "response-local-reply" => {
                self.send_http_response(502, vec![], Some(b"rewritten"));
                return Action::Pause;
            }
            _ => {}
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        log(&format!("response_body size={size} eos={eos}"));
        if self.op == "response-body" {
            if !eos {
                return Action::Pause;
            }
            let body = self.get_http_response_body(0, size).unwrap_or_default();
            self.set_http_response_body(0, size, &body.to_ascii_uppercase());
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, trailers: usize) -> Action {
        log(&format!("response_trailers n={trailers}"));
        Action::Continue
    }

    fn on_log(&mut self) {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let status = self.get_http_response_header(":status").unwrap_or_default();
        log(&format!("on_log path={path} status={status}"));
    }
}
