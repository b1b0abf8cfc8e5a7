//! Hooks that let a filter run as one layer of the gateway bundle (`filters/gateway`): every
//! layer in one VM and one filter hop.
//!
//! A few things a filter takes from the host must be per layer inside the bundle: its plugin
//! configuration, its tick period, and the resumption of a stream it paused (which must go on
//! with the next layers, not straight upstream). Filters use these hooks instead of the plain
//! host calls; without a bundle each hook is exactly the host call.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use proxy_wasm::hostcalls;

thread_local! {
    /// The bundle's resumer, once a bundle runs in this VM.
    static RESUMER: Cell<Option<fn(u32)>> = const { Cell::new(None) };
    /// The configuration of the layer being configured, and its field path in the bundle's.
    static LAYER_CONFIG: RefCell<Option<(Vec<u8>, String)>> = const { RefCell::new(None) };
    /// The tick period a layer asked for since the bundle last looked.
    static TICK_REQUEST: Cell<Option<Duration>> = const { Cell::new(None) };
    /// Whether a local reply was sent since the bundle last looked.
    static LOCAL_REPLY_SENT: Cell<bool> = const { Cell::new(false) };
}

/// Makes this VM a bundle: `resume(context_id)` continues a stream a layer paused.
pub fn enter_bundle(resume: fn(u32)) {
    RESUMER.with(|r| r.set(Some(resume)));
}

fn in_bundle() -> bool {
    RESUMER.with(Cell::get).is_some()
}

/// Runs `configure` with `config` as the plugin configuration [`crate::load_config`] reads;
/// errors name their field under `field` (e.g. `layers[1].config`).
pub fn with_layer_config<R>(config: &[u8], field: &str, configure: impl FnOnce() -> R) -> R {
    LAYER_CONFIG.with(|c| *c.borrow_mut() = Some((config.to_vec(), field.to_string())));
    let result = configure();
    LAYER_CONFIG.with(|c| *c.borrow_mut() = None);
    result
}

/// The configuration of the layer being configured: (bytes, field path of its root).
pub(crate) fn layer_config() -> Option<(Vec<u8>, String)> {
    LAYER_CONFIG.with(|c| c.borrow().clone())
}

/// Asks for `on_tick` every `period`. In a bundle the request is recorded for the bundle,
/// which ticks at the smallest period its layers ask for.
pub fn set_tick_period(period: Duration) {
    if in_bundle() {
        TICK_REQUEST.with(|t| t.set(Some(period)));
    } else {
        let _ = hostcalls::set_tick_period(period);
    }
}

/// The tick period asked for since the last call (for the bundle).
pub fn take_tick_request() -> Option<Duration> {
    TICK_REQUEST.with(Cell::take)
}

/// Resumes the request of `context_id` (the effective context), paused in its headers phase.
/// In a bundle the next layers run first, and the request goes upstream only if they all let it.
pub fn resume_http_request(context_id: u32) {
    match RESUMER.with(Cell::get) {
        Some(resume) => resume(context_id),
        None => {
            let _ = hostcalls::resume_http_request();
        }
    }
}

pub(crate) fn note_local_reply() {
    LOCAL_REPLY_SENT.with(|s| s.set(true));
}

/// Whether [`crate::send_reply`] ran since the last call (for the bundle).
pub fn take_local_reply() -> bool {
    LOCAL_REPLY_SENT.with(Cell::take)
}
