//! Configuration errors that name the field, and the JSON entry point every filter uses.
//!
//! Configs are parsed in two stages: serde structs with `deny_unknown_fields`, then a compiled
//! policy that is valid by construction. Both stages report [`ConfigError`]:
//!
//! ```text
//! routes[1].match.path.regex: invalid regex: unclosed group
//! ```

use std::fmt;

use serde::de::DeserializeOwned;

/// A rejected configuration: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path in the config, e.g. `routes[0].cors.allow_origins[2]`; empty for the root.
    pub field: String,
    /// What is wrong, lower case, no trailing period.
    pub problem: String,
}

impl ConfigError {
    /// An error at `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }

    /// Prefixes the field path with a parent, so nested compilers report full paths.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = join_path(parent, &self.field);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "config: {}", self.problem)
        } else {
            write!(f, "{}: {}", self.field, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Joins `parent` and `child` paths: `routes[0]` + `match` = `routes[0].match`.
pub fn join_path(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => parent.to_string(),
        _ if child.starts_with('[') => format!("{parent}{child}"),
        _ => format!("{parent}.{child}"),
    }
}

/// Parses a JSON config into `T`, naming the failing field on error.
///
/// An empty config is parsed as `{}`, so a filter with every field defaulted may omit it.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let field = err.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ConfigError::new(field, err.inner().to_string())
    })?;
    deserializer.end().map_err(|err| ConfigError::new("", err.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        routes: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn names_the_failing_field() {
        let err = from_json::<Outer>(br#"{"routes":[{"name":"a"},{"nam":"b"}]}"#).unwrap_err();
        assert_eq!(err.field, "routes[1].nam");
        assert!(err.problem.starts_with("unknown field `nam`"), "{}", err.problem);
        assert!(err.to_string().starts_with("routes[1].nam: unknown field"));
    }

    #[test]
    fn empty_config_is_an_empty_object() {
        assert_eq!(from_json::<Outer>(b"  ").unwrap().routes.len(), 0);
    }

    #[test]
    fn rejects_trailing_garbage_and_bad_syntax() {
        let err = from_json::<Outer>(b"{} x").unwrap_err();
        assert_eq!(err.field, "");
        assert!(err.to_string().starts_with("config: trailing characters"), "{err}");
        assert!(from_json::<Outer>(b"{").is_err());
    }

    #[test]
    fn nests_field_paths() {
        let err = ConfigError::new("regex", "invalid").within("routes[0].match").within("");
        assert_eq!(err.to_string(), "routes[0].match.regex: invalid");
        assert_eq!(join_path("a", "[2]"), "a[2]");
    }
}
