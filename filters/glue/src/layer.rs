//! Hooks that let a filter run as one layer of the gateway bundle (`filters/gateway`): every
//! layer in one VM and one filter hop.
//!
//! A few things a filter takes from the host must be per layer inside the bundle: its plugin
//! configuration, its tick period, and the resumption of a stream it paused (which must go on
//! with the next layers, not straight upstream). Filters use these hooks instead of the plain
//! host calls; without a bundle each hook is exactly the host call.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use palisade_core::http::Headers;
use palisade_core::identity::Identity;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

thread_local! {
    /// The bundle's resumer, once a bundle runs in this VM.
    static RESUMER: Cell<Option<fn(u32)>> = const { Cell::new(None) };
    /// The configuration of the layer being configured, and its field path in the bundle's.
    static LAYER_CONFIG: RefCell<Option<(Vec<u8>, String)>> = const { RefCell::new(None) };
    /// The tick period a layer asked for since the bundle last looked.
    static TICK_REQUEST: Cell<Option<Duration>> = const { Cell::new(None) };
    /// Whether a local reply was sent since the bundle last looked.
    static LOCAL_REPLY_SENT: Cell<bool> = const { Cell::new(false) };
    /// What the layers share while the bundle runs their header callbacks.
    static CALLBACK_CACHE: RefCell<Option<CallbackCache>> = const { RefCell::new(None) };
}

/// The request and response header maps as last read, each valid until a write through this
/// crate (the only way Palisade filters write headers); the identity a layer wrote.
#[derive(Default)]
struct CallbackCache {
    request: Option<Headers>,
    response: Option<Headers>,
    identity: Option<Rc<Identity>>,
}

impl CallbackCache {
    fn slot(&mut self, map: MapType) -> Option<&mut Option<Headers>> {
        match map {
            MapType::HttpRequestHeaders => Some(&mut self.request),
            MapType::HttpResponseHeaders => Some(&mut self.response),
            _ => None,
        }
    }
}

/// Runs `run` (the bundle running its layers' header callbacks) with the header maps read from
/// the host once: each layer would otherwise read the same map again, and a read costs Envoy
/// more than the rest of a light layer. A write through this crate drops the map it wrote, so a
/// later layer reads it afresh, as a separate filter would. An identity a layer writes to
/// filter state reaches the later layers as it is, without the host call and the JSON parse
/// (40k wasm instructions for a typical token's claims). Outside, every read is a host call.
pub fn with_callback_cache<R>(run: impl FnOnce() -> R) -> R {
    CALLBACK_CACHE.with(|cache| *cache.borrow_mut() = Some(CallbackCache::default()));
    let result = run();
    CALLBACK_CACHE.with(|cache| *cache.borrow_mut() = None);
    result
}

/// Notes the identity a layer just wrote to filter state, for the later layers of this callback.
pub(crate) fn identity_written(identity: Rc<Identity>) {
    CALLBACK_CACHE.with(|cache| {
        if let Some(cache) = cache.borrow_mut().as_mut() {
            cache.identity = Some(identity);
        }
    });
}

/// The identity an earlier layer wrote in this callback, if any.
pub(crate) fn written_identity() -> Option<Rc<Identity>> {
    CALLBACK_CACHE.with(|cache| cache.borrow().as_ref().and_then(|cache| cache.identity.clone()))
}

/// The cached copy of `map`, or the host's through `read` (kept when the cache is on).
pub(crate) fn cached_header_map(map: MapType, read: impl FnOnce() -> Headers) -> Headers {
    let hit = CALLBACK_CACHE
        .with(|cache| cache.borrow_mut().as_mut().and_then(|cache| cache.slot(map)).and_then(|slot| slot.clone()));
    if let Some(headers) = hit {
        return headers;
    }
    let headers = read();
    CALLBACK_CACHE.with(|cache| {
        if let Some(slot) = cache.borrow_mut().as_mut().and_then(|cache| cache.slot(map)) {
            *slot = Some(headers.clone());
        }
    });
    headers
}

/// Forgets the cached copy of `map`: about to be written.
pub(crate) fn header_map_written(map: MapType) {
    CALLBACK_CACHE.with(|cache| {
        if let Some(slot) = cache.borrow_mut().as_mut().and_then(|cache| cache.slot(map)) {
            *slot = None;
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_maps_are_read_once_per_bundle_callback_until_written() {
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Headers::from_pairs([(":path", format!("/v{}", reads.get()))])
        };
        let path = |headers: Headers| headers.get(":path").map(str::to_string);
        // Outside a bundle callback every read goes to the host.
        cached_header_map(MapType::HttpRequestHeaders, read);
        cached_header_map(MapType::HttpRequestHeaders, read);
        assert_eq!(reads.get(), 2);
        with_callback_cache(|| {
            assert_eq!(path(cached_header_map(MapType::HttpRequestHeaders, read)).as_deref(), Some("/v3"));
            assert_eq!(path(cached_header_map(MapType::HttpRequestHeaders, read)).as_deref(), Some("/v3"));
            // Each map has its own copy; trailers are never cached.
            cached_header_map(MapType::HttpResponseHeaders, read);
            cached_header_map(MapType::HttpRequestTrailers, read);
            cached_header_map(MapType::HttpRequestTrailers, read);
            assert_eq!(reads.get(), 6);
            // A write drops that map only: the next read sees what the layer left.
            header_map_written(MapType::HttpRequestHeaders);
            assert_eq!(path(cached_header_map(MapType::HttpRequestHeaders, read)).as_deref(), Some("/v7"));
            cached_header_map(MapType::HttpResponseHeaders, read);
            assert_eq!(reads.get(), 7);
        });
        cached_header_map(MapType::HttpRequestHeaders, read);
        assert_eq!(reads.get(), 8, "the cache ends with the callback");
    }

    #[test]
    fn an_identity_written_reaches_the_later_layers_of_the_same_callback_only() {
        let alice = Rc::new(Identity { provider: "corp".into(), subject: Some("alice".into()), ..Identity::default() });
        // A separate filter: nothing is kept, every read goes to filter state.
        identity_written(Rc::clone(&alice));
        assert_eq!(written_identity(), None);
        with_callback_cache(|| {
            assert_eq!(written_identity(), None, "nothing written yet: read filter state");
            identity_written(Rc::clone(&alice));
            let handed = written_identity().unwrap();
            assert!(Rc::ptr_eq(&handed, &alice), "the same identity, not a parsed copy");
        });
        assert_eq!(written_identity(), None, "the next callback reads filter state again");
        with_callback_cache(|| assert_eq!(written_identity(), None, "nor does another stream's callback see it"));
    }
}
