//! The `env` module: every proxy-wasm 0.2.1 hostcall Envoy registers, with Envoy's statuses.

use wasmtime::{Caller, Linker};

use super::abi::{self, buffer, map, LogLevel, Status};
use super::callouts::{GrpcCall, HttpCall};
use super::headers::{self, Headers};
use super::memory;
use super::properties;
use super::shared::MetricKind;
use super::state::{LocalReply, VmState};
use super::wasi::{restricted, Phase};

type C<'a> = Caller<'a, VmState>;
type R = wasmtime::Result<i32>;

/// The `env` functions Envoy registers for ABI 0.2.1 (anything else is a missing import).
pub const ENVOY_FUNCTIONS: [&str; 41] = [
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_buffer_status",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_add_header_map_value",
    "proxy_get_header_map_size",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_set_effective_context",
    "proxy_call_foreign_function",
    "proxy_done",
    "proxy_define_metric",
    "proxy_get_metric",
    "proxy_record_metric",
    "proxy_increment_metric",
    "emscripten_notify_memory_growth",
    "pthread_equal",
];

fn guard(c: &C, name: &str) -> wasmtime::Result<()> {
    restricted(c.data().wasi.phase, name)
}

/// Reads guest memory or answers InvalidMemoryAccess from the enclosing hostcall.
macro_rules! read {
    ($c:expr, $ptr:expr, $len:expr) => {
        match memory::read($c, $ptr, $len) {
            Some(bytes) => bytes,
            None => return Ok(Status::InvalidMemoryAccess.code()),
        }
    };
}

/// Calls the guest allocator for exactly `len` bytes (restricted phase while it runs).
fn allocate(c: &mut C, len: usize) -> wasmtime::Result<Option<i32>> {
    let export = c.get_export("malloc").or_else(|| c.get_export("proxy_on_memory_allocate"));
    let Some(func) = export.and_then(|e| e.into_func()) else { return Ok(None) };
    let typed = func.typed::<i32, i32>(&*c)?;
    let previous = c.data().wasi.phase;
    c.data_mut().wasi.phase = Phase::Allocator;
    let result = typed.call(&mut *c, abi::len_u32(len) as i32);
    c.data_mut().wasi.phase = previous;
    Ok(Some(result?).filter(|ptr| *ptr != 0))
}

/// Hands bytes to the guest (it owns and frees them); empty data is ptr 0, len 0.
fn copy_out(c: &mut C, bytes: &[u8], ptr_ptr: i32, len_ptr: i32) -> wasmtime::Result<Status> {
    let ptr = if bytes.is_empty() {
        0
    } else {
        match allocate(c, bytes.len())? {
            Some(ptr) if memory::write(c, ptr, bytes) => ptr,
            _ => return Ok(Status::InvalidMemoryAccess),
        }
    };
    if memory::write_u32(c, ptr_ptr, ptr as u32) && memory::write_u32(c, len_ptr, abi::len_u32(bytes.len())) {
        Ok(Status::Ok)
    } else {
        Ok(Status::InvalidMemoryAccess)
    }
}

fn ok_if(written: bool) -> i32 {
    if written {
        Status::Ok.code()
    } else {
        Status::InvalidMemoryAccess.code()
    }
}

/// Runs `f` on a header map if the current context may use it now.
/// The names Envoy keeps inline in a map of `map_type`, where `addCopy` appends with a comma.
fn inline_headers(map_type: i32) -> &'static str {
    match map_type {
        map::REQUEST_HEADERS => headers::REQUEST_INLINE,
        map::RESPONSE_HEADERS => headers::RESPONSE_INLINE,
        _ => "",
    }
}

fn with_map<T>(c: &mut C, map_type: i32, f: impl FnOnce(&mut Headers) -> T) -> Result<T, Status> {
    let state = c.data_mut();
    match map_type {
        map::REQUEST_HEADERS..=map::RESPONSE_TRAILERS => {
            let (stream, slot) = state.stream().ok_or(Status::BadArgument)?;
            let mut stream = stream.borrow_mut();
            let available = stream.slots.get(slot).is_some_and(|s| s.map_available(map_type));
            if !available {
                return Err(Status::BadArgument);
            }
            let headers = match map_type {
                map::REQUEST_HEADERS => &mut stream.request_headers,
                map::REQUEST_TRAILERS => &mut stream.request_trailers,
                map::RESPONSE_HEADERS => &mut stream.response_headers,
                _ => &mut stream.response_trailers,
            };
            Ok(f(headers))
        }
        map::GRPC_INITIAL_METADATA | map::HTTP_CALL_RESPONSE_HEADERS => {
            state.callout.as_mut().map(|data| f(&mut data.headers)).ok_or(Status::BadArgument)
        }
        map::GRPC_TRAILING_METADATA | map::HTTP_CALL_RESPONSE_TRAILERS => {
            state.callout.as_mut().map(|data| f(&mut data.trailers)).ok_or(Status::BadArgument)
        }
        _ => Err(Status::BadArgument),
    }
}

/// The bytes of a buffer readable by the current context.
fn buffer_bytes(state: &VmState, buffer_type: i32) -> Result<Vec<u8>, Status> {
    match buffer_type {
        buffer::REQUEST_BODY | buffer::RESPONSE_BODY => {
            let (stream, slot) = state.stream().ok_or(Status::NotFound)?;
            let stream = stream.borrow();
            let slot = stream.slots.get(slot).ok_or(Status::NotFound)?;
            Ok(if buffer_type == buffer::REQUEST_BODY { slot.request_body.clone() } else { slot.response_body.clone() })
        }
        buffer::HTTP_CALL_RESPONSE_BODY | buffer::GRPC_RECEIVE => {
            state.callout.as_ref().map(|data| data.body.clone()).ok_or(Status::NotFound)
        }
        buffer::VM_CONFIGURATION => Ok(state.vm_config.clone()),
        buffer::PLUGIN_CONFIGURATION => Ok(state.plugin_config.clone()),
        buffer::DOWNSTREAM_DATA | buffer::UPSTREAM_DATA | buffer::CALL_DATA => Err(Status::NotFound),
        _ => Err(Status::BadArgument),
    }
}

/// Envoy's `Buffer::copyFrom`: start 0 drains `size` then prepends; start at or past the end
/// appends; anything else is BadArgument.
fn copy_from(body: &mut Vec<u8>, start: u32, size: u32, data: &[u8]) -> Status {
    let (start, size) = (start as usize, size as usize);
    if start == 0 {
        body.drain(..size.min(body.len()));
        body.splice(0..0, data.iter().copied());
        Status::Ok
    } else if start >= body.len() {
        body.extend_from_slice(data);
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// Registers the `env` module.
pub fn add_to_linker(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    add_logging_and_time(linker)?;
    add_buffers(linker)?;
    add_header_maps(linker)?;
    add_properties_and_shared(linker)?;
    add_stream_control(linker)?;
    add_callouts(linker)?;
    add_metrics_and_misc(linker)?;
    Ok(())
}

fn add_logging_and_time(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_log", |mut c: C, level: i32, ptr: i32, len: i32| -> R {
        guard(&c, "proxy_log")?;
        let Some(level) = LogLevel::from_code(level) else { return Ok(Status::BadArgument.code()) };
        let message = read!(&mut c, ptr, len);
        let state = c.data_mut();
        let context_id = state.current_context;
        state.logs.push(super::state::LogEntry {
            level,
            message: String::from_utf8_lossy(&message).into_owned(),
            context_id,
        });
        Ok(Status::Ok.code())
    })?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: C, out: i32| -> R {
        guard(&c, "proxy_get_log_level")?;
        let level = c.data().log_level.code() as u32;
        Ok(ok_if(memory::write_u32(&mut c, out, level)))
    })?;
    linker.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: C, out: i32| -> R {
        guard(&c, "proxy_get_current_time_nanoseconds")?;
        let now = c.data().host.clock.realtime_ns();
        Ok(ok_if(memory::write_u64(&mut c, out, now)))
    })?;
    linker.func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: C, period: i32| -> R {
        guard(&c, "proxy_set_tick_period_milliseconds")?;
        c.data_mut().tick_period_ms = period as u32;
        Ok(Status::Ok.code())
    })?;
    Ok(())
}

fn add_buffers(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C, kind: i32, start: i32, max: i32, ptr_ptr: i32, len_ptr: i32| -> R {
            guard(&c, "proxy_get_buffer_bytes")?;
            let bytes = match buffer_bytes(c.data(), kind) {
                Ok(bytes) => bytes,
                Err(status) => return Ok(status.code()),
            };
            // 64-bit arithmetic: the SDK passes max = u32::MAX for "everything".
            let (start, max) = (u64::from(start as u32), u64::from(max as u32));
            let len = bytes.len() as u64;
            if start > len {
                return Ok(Status::BadArgument.code());
            }
            let end = start.saturating_add(max).min(len);
            let slice = bytes.get(start as usize..end as usize).unwrap_or_default().to_vec();
            Ok(copy_out(&mut c, &slice, ptr_ptr, len_ptr)?.code())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C, kind: i32, start: i32, size: i32, ptr: i32, len: i32| -> R {
            guard(&c, "proxy_set_buffer_bytes")?;
            let data = read!(&mut c, ptr, len);
            if kind != buffer::REQUEST_BODY && kind != buffer::RESPONSE_BODY {
                return Ok(Status::BadArgument.code());
            }
            let Some((stream, slot)) = c.data().stream() else { return Ok(Status::NotFound.code()) };
            let mut stream = stream.borrow_mut();
            let Some(slot) = stream.slots.get_mut(slot) else { return Ok(Status::NotFound.code()) };
            let body = if kind == buffer::REQUEST_BODY { &mut slot.request_body } else { &mut slot.response_body };
            Ok(copy_from(body, start as u32, size as u32, &data).code())
        },
    )?;
    linker.func_wrap("env", "proxy_get_buffer_status", |mut c: C, kind: i32, len_ptr: i32, flags_ptr: i32| -> R {
        guard(&c, "proxy_get_buffer_status")?;
        let bytes = match buffer_bytes(c.data(), kind) {
            Ok(bytes) => bytes,
            Err(status) => return Ok(status.code()),
        };
        Ok(ok_if(
            memory::write_u32(&mut c, len_ptr, abi::len_u32(bytes.len())) && memory::write_u32(&mut c, flags_ptr, 0),
        ))
    })?;
    Ok(())
}

fn add_header_maps(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_get_header_map_pairs", |mut c: C, kind: i32, ptr_ptr: i32, len_ptr: i32| -> R {
        guard(&c, "proxy_get_header_map_pairs")?;
        if !(0..=7).contains(&kind) {
            return Ok(Status::BadArgument.code());
        }
        // An unavailable map reads as empty (context.cc), not as an error.
        let pairs = with_map(&mut c, kind, |m| m.pairs().to_vec()).unwrap_or_default();
        let bytes = if pairs.is_empty() { Vec::new() } else { abi::serialize_pairs(&pairs) };
        Ok(copy_out(&mut c, &bytes, ptr_ptr, len_ptr)?.code())
    })?;
    linker.func_wrap("env", "proxy_set_header_map_pairs", |mut c: C, kind: i32, ptr: i32, len: i32| -> R {
        guard(&c, "proxy_set_header_map_pairs")?;
        let data = read!(&mut c, ptr, len);
        let pairs = abi::deserialize_pairs(&data);
        let inline = inline_headers(kind);
        Ok(match with_map(&mut c, kind, |m| m.set_pairs(pairs, inline)) {
            Ok(()) => Status::Ok.code(),
            Err(status) => status.code(),
        })
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C, kind: i32, key_ptr: i32, key_len: i32, ptr_ptr: i32, len_ptr: i32| -> R {
            guard(&c, "proxy_get_header_map_value")?;
            let key = read!(&mut c, key_ptr, key_len);
            match with_map(&mut c, kind, |m| m.get_bytes(&key).map(<[u8]>::to_vec)) {
                Ok(Some(value)) => Ok(copy_out(&mut c, &value, ptr_ptr, len_ptr)?.code()),
                Ok(None) => Ok(Status::NotFound.code()),
                Err(status) => Ok(status.code()),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C, kind: i32, key_ptr: i32, key_len: i32| -> R {
            guard(&c, "proxy_remove_header_map_value")?;
            let key = read!(&mut c, key_ptr, key_len);
            Ok(with_map(&mut c, kind, |m| m.remove(&key)).map_or_else(Status::code, |()| 0))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: C, kind: i32, key_ptr: i32, key_len: i32, val_ptr: i32, val_len: i32| -> R {
            guard(&c, "proxy_replace_header_map_value")?;
            let key = read!(&mut c, key_ptr, key_len);
            let value = read!(&mut c, val_ptr, val_len);
            Ok(with_map(&mut c, kind, |m| m.replace(&key, &value)).map_or_else(Status::code, |()| 0))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: C, kind: i32, key_ptr: i32, key_len: i32, val_ptr: i32, val_len: i32| -> R {
            guard(&c, "proxy_add_header_map_value")?;
            let key = read!(&mut c, key_ptr, key_len);
            let value = read!(&mut c, val_ptr, val_len);
            let inline = inline_headers(kind);
            Ok(with_map(&mut c, kind, |m| m.add_copy(&key, &value, inline)).map_or_else(Status::code, |()| 0))
        },
    )?;
    linker.func_wrap("env", "proxy_get_header_map_size", |mut c: C, kind: i32, out: i32| -> R {
        guard(&c, "proxy_get_header_map_size")?;
        match with_map(&mut c, kind, |m| m.byte_size()) {
            Ok(size) => Ok(ok_if(memory::write_u32(&mut c, out, abi::len_u32(size)))),
            Err(status) => Ok(status.code()),
        }
    })?;
    Ok(())
}

fn add_properties_and_shared(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C, path_ptr: i32, path_len: i32, ptr_ptr: i32, len_ptr: i32| -> R {
            guard(&c, "proxy_get_property")?;
            let path = read!(&mut c, path_ptr, path_len);
            match properties::get(c.data(), &path) {
                Ok(value) => Ok(copy_out(&mut c, &value, ptr_ptr, len_ptr)?.code()),
                Err(status) => Ok(status.code()),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: C, path_ptr: i32, path_len: i32, ptr: i32, len: i32| -> R {
            guard(&c, "proxy_set_property")?;
            let path = read!(&mut c, path_ptr, path_len);
            let value = read!(&mut c, ptr, len);
            Ok(properties::set(c.data(), &path, &value).code())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C, key_ptr: i32, key_len: i32, ptr_ptr: i32, len_ptr: i32, cas_ptr: i32| -> R {
            guard(&c, "proxy_get_shared_data")?;
            let key = read!(&mut c, key_ptr, key_len);
            let entry = {
                let state = c.data();
                state.host.data.borrow().get(&state.vm_id, &key)
            };
            let Some((value, cas)) = entry else { return Ok(Status::NotFound.code()) };
            let status = copy_out(&mut c, &value, ptr_ptr, len_ptr)?;
            if status != Status::Ok {
                return Ok(status.code());
            }
            Ok(ok_if(memory::write_u32(&mut c, cas_ptr, cas)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: C, key_ptr: i32, key_len: i32, ptr: i32, len: i32, cas: i32| -> R {
            guard(&c, "proxy_set_shared_data")?;
            let key = read!(&mut c, key_ptr, key_len);
            let value = read!(&mut c, ptr, len);
            let state = c.data();
            let status = state.host.data.borrow_mut().set(&state.vm_id, &key, &value, cas as u32);
            Ok(status.code())
        },
    )?;
    linker.func_wrap("env", "proxy_register_shared_queue", |mut c: C, ptr: i32, len: i32, out: i32| -> R {
        guard(&c, "proxy_register_shared_queue")?;
        let name = String::from_utf8_lossy(&read!(&mut c, ptr, len)).into_owned();
        let token = {
            let state = c.data();
            state.host.queues.borrow_mut().register(&state.vm_id, &name, state.id)
        };
        Ok(ok_if(memory::write_u32(&mut c, out, token)))
    })?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C, vm_ptr: i32, vm_len: i32, ptr: i32, len: i32, out: i32| -> R {
            guard(&c, "proxy_resolve_shared_queue")?;
            let vm_id = String::from_utf8_lossy(&read!(&mut c, vm_ptr, vm_len)).into_owned();
            let name = String::from_utf8_lossy(&read!(&mut c, ptr, len)).into_owned();
            let token = {
                let state = c.data();
                let vm_id = if vm_id.is_empty() { state.vm_id.clone() } else { vm_id };
                state.host.queues.borrow().resolve(&vm_id, &name)
            };
            match token {
                Some(token) => Ok(ok_if(memory::write_u32(&mut c, out, token))),
                None => Ok(Status::NotFound.code()),
            }
        },
    )?;
    linker.func_wrap("env", "proxy_dequeue_shared_queue", |mut c: C, token: i32, ptr_ptr: i32, len_ptr: i32| -> R {
        guard(&c, "proxy_dequeue_shared_queue")?;
        let item = c.data().host.queues.borrow_mut().dequeue(token as u32);
        match item {
            Ok(value) => Ok(copy_out(&mut c, &value, ptr_ptr, len_ptr)?.code()),
            Err(status) => Ok(status.code()),
        }
    })?;
    linker.func_wrap("env", "proxy_enqueue_shared_queue", |mut c: C, token: i32, ptr: i32, len: i32| -> R {
        guard(&c, "proxy_enqueue_shared_queue")?;
        let value = read!(&mut c, ptr, len);
        let status = c.data().host.queues.borrow_mut().enqueue(token as u32, &value);
        Ok(status.code())
    })?;
    Ok(())
}

fn add_stream_control(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_continue_stream", |c: C, kind: i32| -> R {
        guard(&c, "proxy_continue_stream")?;
        if kind != abi::stream::REQUEST && kind != abi::stream::RESPONSE {
            return Ok(Status::BadArgument.code());
        }
        let Some((stream, slot)) = c.data().stream() else { return Ok(Status::NotFound.code()) };
        stream.borrow_mut().continues.push((slot, kind));
        Ok(Status::Ok.code())
    })?;
    linker.func_wrap("env", "proxy_close_stream", |c: C, kind: i32| -> R {
        guard(&c, "proxy_close_stream")?;
        if kind != abi::stream::REQUEST && kind != abi::stream::RESPONSE {
            return Ok(Status::BadArgument.code());
        }
        let Some((stream, slot)) = c.data().stream() else { return Ok(Status::NotFound.code()) };
        stream.borrow_mut().closes.push((slot, kind));
        Ok(Status::Ok.code())
    })?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C,
         status: i32,
         details_ptr: i32,
         details_len: i32,
         body_ptr: i32,
         body_len: i32,
         headers_ptr: i32,
         headers_len: i32,
         grpc_status: i32|
         -> R {
            guard(&c, "proxy_send_local_response")?;
            let details = read!(&mut c, details_ptr, details_len);
            let body = read!(&mut c, body_ptr, body_len);
            let headers = read!(&mut c, headers_ptr, headers_len);
            let state = c.data();
            let Some((stream, slot)) = state.stream() else { return Ok(Status::NotFound.code()) };
            let reply = LocalReply {
                status: u16::try_from(status).unwrap_or(0),
                details: String::from_utf8_lossy(&details).into_owned(),
                body,
                headers: Headers::from_pairs(abi::deserialize_pairs(&headers)),
                grpc_status: u32::try_from(grpc_status).ok().filter(|s| *s <= 16),
                sent_by: state.name.clone(),
            };
            let mut stream = stream.borrow_mut();
            if stream.local_reply.is_none() {
                stream.local_reply = Some((slot, reply));
            }
            Ok(Status::Ok.code())
        },
    )?;
    linker.func_wrap("env", "proxy_set_effective_context", |mut c: C, context_id: i32| -> R {
        guard(&c, "proxy_set_effective_context")?;
        let id = context_id as u32;
        let state = c.data_mut();
        if id == state.root_context || state.streams.contains_key(&id) {
            state.current_context = id;
            Ok(Status::Ok.code())
        } else {
            Ok(Status::BadArgument.code())
        }
    })?;
    linker.func_wrap("env", "proxy_done", |mut c: C| -> R {
        guard(&c, "proxy_done")?;
        c.data_mut().done_called = true;
        Ok(Status::Ok.code())
    })?;
    Ok(())
}

fn required_pseudo_headers(headers: &Headers) -> bool {
    [":path", ":method", ":authority"]
        .iter()
        .all(|name| headers.get_bytes(name.as_bytes()).is_some_and(|v| !v.is_empty()))
}

fn add_callouts(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C,
         up_ptr: i32,
         up_len: i32,
         h_ptr: i32,
         h_len: i32,
         b_ptr: i32,
         b_len: i32,
         t_ptr: i32,
         t_len: i32,
         timeout: i32,
         token_ptr: i32|
         -> R {
            guard(&c, "proxy_http_call")?;
            let cluster = String::from_utf8_lossy(&read!(&mut c, up_ptr, up_len)).into_owned();
            let headers = Headers::from_pairs(abi::deserialize_pairs(&read!(&mut c, h_ptr, h_len)));
            let body = read!(&mut c, b_ptr, b_len);
            let trailers = Headers::from_pairs(abi::deserialize_pairs(&read!(&mut c, t_ptr, t_len)));
            let state = c.data();
            if !state.host.clusters.borrow().contains(&cluster) || !required_pseudo_headers(&headers) || timeout < 0 {
                return Ok(Status::BadArgument.code());
            }
            let token = state.host.token();
            let call = HttpCall {
                token,
                cluster,
                headers,
                body,
                trailers,
                timeout_ms: timeout as u32,
                context_id: state.current_context,
            };
            c.data_mut().http_calls.insert(token, call);
            Ok(ok_if(memory::write_u32(&mut c, token_ptr, token)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: C,
         up_ptr: i32,
         up_len: i32,
         svc_ptr: i32,
         svc_len: i32,
         m_ptr: i32,
         m_len: i32,
         md_ptr: i32,
         md_len: i32,
         msg_ptr: i32,
         msg_len: i32,
         timeout: i32,
         token_ptr: i32|
         -> R {
            guard(&c, "proxy_grpc_call")?;
            let cluster = read!(&mut c, up_ptr, up_len);
            let service = String::from_utf8_lossy(&read!(&mut c, svc_ptr, svc_len)).into_owned();
            let method = String::from_utf8_lossy(&read!(&mut c, m_ptr, m_len)).into_owned();
            let metadata = Headers::from_pairs(abi::deserialize_pairs(&read!(&mut c, md_ptr, md_len)));
            let message = read!(&mut c, msg_ptr, msg_len);
            grpc_open(&mut c, cluster, service, method, metadata, Some(message), timeout, token_ptr)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: C,
         up_ptr: i32,
         up_len: i32,
         svc_ptr: i32,
         svc_len: i32,
         m_ptr: i32,
         m_len: i32,
         md_ptr: i32,
         md_len: i32,
         token_ptr: i32|
         -> R {
            guard(&c, "proxy_grpc_stream")?;
            let cluster = read!(&mut c, up_ptr, up_len);
            let service = String::from_utf8_lossy(&read!(&mut c, svc_ptr, svc_len)).into_owned();
            let method = String::from_utf8_lossy(&read!(&mut c, m_ptr, m_len)).into_owned();
            let metadata = Headers::from_pairs(abi::deserialize_pairs(&read!(&mut c, md_ptr, md_len)));
            grpc_open(&mut c, cluster, service, method, metadata, None, 0, token_ptr)
        },
    )?;
    linker.func_wrap("env", "proxy_grpc_send", |mut c: C, token: i32, ptr: i32, len: i32, _end: i32| -> R {
        guard(&c, "proxy_grpc_send")?;
        let message = read!(&mut c, ptr, len);
        match c.data_mut().grpc_calls.get_mut(&(token as u32)) {
            Some(call) if call.stream => {
                call.messages.push(message);
                Ok(Status::Ok.code())
            }
            Some(_) => Ok(Status::BadArgument.code()),
            None => Ok(Status::NotFound.code()),
        }
    })?;
    linker.func_wrap("env", "proxy_grpc_cancel", |mut c: C, token: i32| -> R {
        guard(&c, "proxy_grpc_cancel")?;
        Ok(match c.data_mut().grpc_calls.remove(&(token as u32)) {
            Some(_) => Status::Ok.code(),
            None => Status::NotFound.code(),
        })
    })?;
    linker.func_wrap("env", "proxy_grpc_close", |mut c: C, token: i32| -> R {
        guard(&c, "proxy_grpc_close")?;
        Ok(match c.data_mut().grpc_calls.remove(&(token as u32)) {
            Some(_) => Status::Ok.code(),
            None => Status::NotFound.code(),
        })
    })?;
    linker.func_wrap("env", "proxy_get_status", |mut c: C, code_ptr: i32, ptr_ptr: i32, len_ptr: i32| -> R {
        guard(&c, "proxy_get_status")?;
        let (code, message) = c.data().status.clone();
        if !memory::write_u32(&mut c, code_ptr, code) {
            return Ok(Status::InvalidMemoryAccess.code());
        }
        Ok(copy_out(&mut c, &message, ptr_ptr, len_ptr)?.code())
    })?;
    Ok(())
}

/// The SDK encodes the cluster of a gRPC call as a `GrpcService` proto; a plain name is taken too.
fn grpc_cluster_known(state: &VmState, cluster: &[u8]) -> bool {
    let clusters = state.host.clusters.borrow();
    clusters.iter().any(|name| cluster == name.as_bytes() || contains(cluster, name.as_bytes()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[allow(clippy::too_many_arguments)]
fn grpc_open(
    c: &mut C,
    cluster: Vec<u8>,
    service: String,
    method: String,
    metadata: Headers,
    message: Option<Vec<u8>>,
    timeout: i32,
    token_ptr: i32,
) -> R {
    let state = c.data();
    if !grpc_cluster_known(state, &cluster) {
        return Ok(Status::ParseFailure.code());
    }
    let token = state.host.token();
    let stream = message.is_none();
    let call = GrpcCall {
        token,
        cluster,
        service,
        method,
        metadata,
        messages: message.into_iter().collect(),
        stream,
        timeout_ms: timeout as u32,
        context_id: state.current_context,
    };
    c.data_mut().grpc_calls.insert(token, call);
    Ok(ok_if(memory::write_u32(c, token_ptr, token)))
}

fn add_metrics_and_misc(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_define_metric", |mut c: C, kind: i32, ptr: i32, len: i32, out: i32| -> R {
        guard(&c, "proxy_define_metric")?;
        let kind = match kind {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            _ => return Ok(Status::BadArgument.code()),
        };
        let name = String::from_utf8_lossy(&read!(&mut c, ptr, len)).into_owned();
        let id = c.data().host.metrics.borrow_mut().define(kind, &name);
        Ok(ok_if(memory::write_u32(&mut c, out, id)))
    })?;
    linker.func_wrap("env", "proxy_get_metric", |mut c: C, id: i32, out: i32| -> R {
        guard(&c, "proxy_get_metric")?;
        let value = c.data().host.metrics.borrow().get(id as u32);
        match value {
            Ok(value) => Ok(ok_if(memory::write_u64(&mut c, out, value))),
            Err(status) => Ok(status.code()),
        }
    })?;
    linker.func_wrap("env", "proxy_record_metric", |c: C, id: i32, value: i64| -> R {
        guard(&c, "proxy_record_metric")?;
        Ok(c.data().host.metrics.borrow_mut().record(id as u32, value as u64).code())
    })?;
    linker.func_wrap("env", "proxy_increment_metric", |c: C, id: i32, offset: i64| -> R {
        guard(&c, "proxy_increment_metric")?;
        Ok(c.data().host.metrics.borrow_mut().increment(id as u32, offset).code())
    })?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |c: C, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> R {
            guard(&c, "proxy_call_foreign_function")?;
            Ok(Status::NotFound.code())
        },
    )?;
    linker.func_wrap("env", "emscripten_notify_memory_growth", |_: C, _: i32| {})?;
    linker.func_wrap("env", "pthread_equal", |_: C, a: i32, b: i32| -> i32 { i32::from(a == b) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_from_follows_envoy() {
        let mut body = b"hello".to_vec();
        assert_eq!(copy_from(&mut body, 0, 0, b"[w]"), Status::Ok);
        assert_eq!(body, b"[w]hello");
        assert_eq!(copy_from(&mut body, 0, 8, b"new"), Status::Ok);
        assert_eq!(body, b"new");
        assert_eq!(copy_from(&mut body, 3, 0, b"!"), Status::Ok);
        assert_eq!(body, b"new!");
        assert_eq!(copy_from(&mut body, 1, 0, b"x"), Status::BadArgument);
    }
}
