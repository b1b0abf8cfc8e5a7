//! The bundle's configuration: an ordered list of layers, each with exactly the configuration
//! its separate filter takes.
//!
//! ```json
//! {"layers": [{"filter": "jwt-authn", "config": {"providers": []}}, {"filter": "authz", "config": {}}]}
//! ```

use palisade_core::config::{from_json, ConfigError};
use proxy_wasm::traits::RootContext;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The filters a layer can run, by the names of their separate modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filter {
    SecurityHeaders,
    JwtAuthn,
    Authz,
    RateLimit,
    RequestValidation,
    FieldEncryption,
}

impl Filter {
    /// A new root context of the filter.
    pub fn root(self) -> Box<dyn RootContext> {
        match self {
            Self::SecurityHeaders => palisade_security_headers::root(),
            Self::JwtAuthn => palisade_jwt_authn::root(),
            Self::Authz => palisade_authz::root(),
            Self::RateLimit => palisade_rate_limit::root(),
            Self::RequestValidation => palisade_request_validation::root(),
            Self::FieldEncryption => palisade_field_encryption::root(),
        }
    }

    /// The name used in the configuration (and in logs).
    pub fn name(self) -> &'static str {
        match self {
            Self::SecurityHeaders => "security-headers",
            Self::JwtAuthn => "jwt-authn",
            Self::Authz => "authz",
            Self::RateLimit => "rate-limit",
            Self::RequestValidation => "request-validation",
            Self::FieldEncryption => "field-encryption",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    layers: Vec<RawLayer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    filter: Filter,
    /// Absent: the layer gets an empty configuration, like a separate filter without one.
    #[serde(default)]
    config: Option<Box<RawValue>>,
}

/// One layer: its filter and the configuration bytes that filter will read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerConfig {
    pub filter: Filter,
    pub config: Vec<u8>,
}

/// Parses the bundle's configuration. Each layer's own configuration is checked later, by its
/// filter, when the bundle configures it.
pub fn parse(bytes: &[u8]) -> Result<Vec<LayerConfig>, ConfigError> {
    let raw: Raw = from_json(bytes)?;
    if raw.layers.is_empty() {
        return Err(ConfigError::new("layers", "at least one layer is required"));
    }
    Ok(raw
        .layers
        .into_iter()
        .map(|layer| LayerConfig {
            filter: layer.filter,
            config: layer.config.map(|c| c.get().as_bytes().to_vec()).unwrap_or_default(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_layer_config_verbatim() {
        let layers =
            parse(br#"{"layers":[{"filter":"authz","config":{"policies": [ ]}},{"filter":"security-headers"}]}"#)
                .unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].filter, Filter::Authz);
        assert_eq!(layers[0].config, br#"{"policies": [ ]}"#);
        assert_eq!(layers[1].filter, Filter::SecurityHeaders);
        assert!(layers[1].config.is_empty());
    }

    #[test]
    fn names_the_failing_field() {
        let err = parse(br#"{"layers":[{"filter":"authz"},{"filter":"waf"}]}"#).unwrap_err();
        assert_eq!(err.field, "layers[1].filter");
        assert!(err.problem.contains("unknown variant `waf`"), "{err}");
        let err = parse(br#"{"layers":[{"filter":"authz","cfg":{}}]}"#).unwrap_err();
        assert_eq!(err.field, "layers[0].cfg");
        assert_eq!(parse(br#"{"layers":[]}"#).unwrap_err().field, "layers");
        assert!(parse(b"").unwrap_err().to_string().starts_with("config: missing field `layers`"));
    }

    #[test]
    fn every_filter_has_its_module_name() {
        for filter in [
            Filter::SecurityHeaders,
            Filter::JwtAuthn,
            Filter::Authz,
            Filter::RateLimit,
            Filter::RequestValidation,
            Filter::FieldEncryption,
        ] {
            let json = format!(r#"{{"layers":[{{"filter":"{}"}}]}}"#, filter.name());
            assert_eq!(parse(json.as_bytes()).unwrap()[0].filter, filter);
        }
    }
}
