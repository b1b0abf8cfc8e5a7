//! gateway: every Palisade layer in one VM and one filter hop.
//!
//! Configured by an ordered list of layers (see [`config`]), each with exactly the configuration
//! of its separate filter; it behaves as the chain of those filters in the same order. The
//! bundle reuses the filters' own contexts: its root context holds each layer's root context,
//! its HTTP context each layer's HTTP context (see [`flow`] for how the callbacks are driven).
//! What a layer takes from the host that must be per layer (its configuration, its tick, the
//! resumption of a stream it paused) goes through `palisade_glue::layer`. Each layer keeps its
//! own counters (`palisade.<filter>.*`), so the bundle's stats read like the chain's.

pub mod config;
mod flow;

use std::time::Duration;

use palisade_glue::layer::{enter_bundle, take_tick_request, with_layer_config};
use palisade_glue::log;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use config::Filter;
use flow::GatewayStream;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    enter_bundle(flow::resume);
    proxy_wasm::set_root_context(|_| Box::new(GatewayRoot::default()));
}}

/// A configured layer: its filter's root context and the tick period it asked for.
struct Layer {
    root: Box<dyn RootContext>,
    tick: Option<Duration>,
}

#[derive(Default)]
struct GatewayRoot {
    layers: Vec<Layer>,
    vm_configuration_size: usize,
    /// The tick period set with the host: the smallest any layer asks for.
    tick: Option<Duration>,
}

impl GatewayRoot {
    /// Sets the host's tick period to the smallest period a layer asks for.
    fn apply_tick(&mut self) {
        let wanted = self.layers.iter().filter_map(|l| l.tick).filter(|t| !t.is_zero()).min();
        if wanted != self.tick {
            let _ = hostcalls::set_tick_period(wanted.unwrap_or(Duration::ZERO));
            self.tick = wanted;
        }
    }

    fn configure_layer(&self, index: usize, filter: Filter, config: &[u8]) -> Option<Layer> {
        let mut root = config::root(filter);
        let field = format!("layers[{index}].config");
        let _ = take_tick_request();
        let configured = root.on_vm_start(self.vm_configuration_size)
            && with_layer_config(config, &field, || root.on_configure(config.len()));
        let tick = take_tick_request();
        if !configured {
            log(
                LogLevel::Error,
                &format!("palisade gateway: {field}: the {} layer rejected its configuration", filter.name()),
            );
            return None;
        }
        Some(Layer { root, tick })
    }
}

impl Context for GatewayRoot {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, num_trailers: usize) {
        // Only the layer that dispatched a call knows its token; the others ignore it.
        for layer in &mut self.layers {
            layer.root.on_http_call_response(token_id, num_headers, body_size, num_trailers);
        }
    }

    fn on_done(&mut self) -> bool {
        for layer in &mut self.layers {
            layer.root.on_done();
        }
        true
    }
}

impl RootContext for GatewayRoot {
    fn on_vm_start(&mut self, vm_configuration_size: usize) -> bool {
        self.vm_configuration_size = vm_configuration_size;
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes =
            hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        let configs = match config::parse(&bytes) {
            Ok(configs) => configs,
            Err(err) => {
                log(LogLevel::Error, &format!("palisade gateway: invalid configuration: {err}"));
                return false;
            }
        };
        let mut layers = Vec::with_capacity(configs.len());
        for (index, layer) in configs.iter().enumerate() {
            match self.configure_layer(index, layer.filter, &layer.config) {
                Some(configured) => layers.push(configured),
                None => return false,
            }
        }
        self.layers = layers;
        self.apply_tick();
        true
    }

    fn on_tick(&mut self) {
        let _ = take_tick_request();
        for layer in &mut self.layers {
            if layer.tick.is_some_and(|t| !t.is_zero()) {
                layer.root.on_tick();
                if let Some(tick) = take_tick_request() {
                    layer.tick = Some(tick);
                }
            }
        }
        self.apply_tick();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let layers = self.layers.iter().map(|layer| layer.root.create_http_context(context_id));
        Some(Box::new(GatewayStream::new(context_id, layers)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
