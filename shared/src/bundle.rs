//! The gateway bundle's configuration: an ordered list of layers, each naming a filter and
//! holding exactly the configuration that filter takes on its own. The bundle
//! (`filters/gateway`) and `palisade check` both parse it here, so they accept the same
//! documents and refuse the rest with the same messages.
//!
//! ```json
//! {"layers": [{"filter": "jwt-authn", "config": {"providers": {}}}, {"filter": "authz", "config": {}}]}
//! ```

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{from_json, ConfigError};

/// The filters a layer can run, by the names of their separate modules (a bundle cannot nest).
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
    /// Every filter, in the order of the demo's chain.
    pub const ALL: [Filter; 6] = [
        Filter::SecurityHeaders,
        Filter::JwtAuthn,
        Filter::Authz,
        Filter::RateLimit,
        Filter::RequestValidation,
        Filter::FieldEncryption,
    ];

    /// The name used in the configuration, in module file names and in logs.
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
    /// Kept as written, so the layer's filter parses the very bytes (duplicate keys included).
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

/// Parses the bundle's configuration. Each layer's own configuration is checked by its
/// filter's parser; a caller names that parser's errors `layers[i].config.<field>`.
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
        let err = parse(br#"{"layers":[{"filter":"gateway"}]}"#).unwrap_err();
        assert_eq!(err.field, "layers[0].filter", "a bundle cannot nest");
    }

    #[test]
    fn every_filter_parses_by_its_name() {
        for filter in Filter::ALL {
            let json = format!(r#"{{"layers":[{{"filter":"{}"}}]}}"#, filter.name());
            assert_eq!(parse(json.as_bytes()).unwrap()[0].filter, filter);
        }
    }
}
