//! One compiled policy: the header operations every response gets, and the CORS rules.
//!
//! Order of the operations: remove the leaky headers, then the preset (with `hsts`, `csp`
//! and `csp_report_only` in place of the preset's values), then the `headers` rules as
//! written. A `headers` rule for a name replaces the preset's entry and the leaky removal of
//! that name; it may not name a header a structured field (`hsts`, `csp`, ...) already sets.

use super::config::{HeaderMode, PolicyConfig};
use super::cors::Cors;
use super::header::{checked_name, checked_value, DEFAULT_LEAKY_HEADERS};
use super::{csp, hsts};
use crate::config::{join_path, ConfigError};
use crate::decision::{independent, HeaderOp};

/// A compiled policy, valid by construction.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The route's name, for audit lines.
    pub name: Option<String>,
    /// Header operations for every response, in order.
    pub ops: Vec<HeaderOp>,
    /// CORS rules, when this filter owns CORS for the route.
    pub cors: Option<Cors>,
    /// Whether `ops` can be applied in one pass ([`independent`]).
    pub independent: bool,
}

/// A header a structured field sets, and the field's name.
struct Structured {
    name: &'static str,
    field: &'static str,
    value: String,
}

impl Policy {
    /// Compiles a policy; `field` names it in errors (`default`, `routes[2].policy`).
    pub fn compile(config: &PolicyConfig, field: &str, name: Option<String>) -> Result<Self, ConfigError> {
        let structured = structured_headers(config, field)?;
        let rules = header_rules(config, field, &structured)?;
        let leaky = match &config.leaky_headers {
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, name)| checked_name(name, &format!("{}[{i}]", join_path(field, "leaky_headers"))))
                .collect::<Result<Vec<_>, _>>()?,
            None => DEFAULT_LEAKY_HEADERS.iter().map(|name| name.to_string()).collect(),
        };
        let ruled = |name: &str| rules.iter().any(|op| op.name() == name);

        let mut ops: Vec<HeaderOp> = leaky.into_iter().filter(|name| !ruled(name)).map(HeaderOp::Remove).collect();
        for (name, value, mode) in config.preset.entries() {
            if ruled(name) {
                continue;
            }
            match structured.iter().find(|s| s.name == *name) {
                Some(s) => ops.push(HeaderOp::Set(s.name.into(), s.value.clone())),
                None => ops.push(to_op(name.to_string(), Some(value.to_string()), *mode)),
            }
        }
        for s in &structured {
            if !config.preset.entries().iter().any(|(name, _, _)| *name == s.name) {
                ops.push(HeaderOp::Set(s.name.into(), s.value.clone()));
            }
        }
        ops.extend(rules);

        let cors = config.cors.as_ref().map(|cors| Cors::compile(cors, &join_path(field, "cors"))).transpose()?;
        let independent = independent(&ops.iter().collect::<Vec<_>>());
        Ok(Self { name, ops, cors, independent })
    }
}

fn structured_headers(config: &PolicyConfig, field: &str) -> Result<Vec<Structured>, ConfigError> {
    let mut out = Vec::new();
    if let Some(config) = &config.hsts {
        let value = hsts::render(config, &join_path(field, "hsts"))?;
        out.push(Structured { name: "strict-transport-security", field: "hsts", value });
    }
    if let Some(config) = &config.csp {
        let value = csp::render(config, &join_path(field, "csp"))?;
        out.push(Structured { name: "content-security-policy", field: "csp", value });
    }
    if let Some(config) = &config.csp_report_only {
        let value = csp::render(config, &join_path(field, "csp_report_only"))?;
        out.push(Structured { name: "content-security-policy-report-only", field: "csp_report_only", value });
    }
    Ok(out)
}

fn header_rules(config: &PolicyConfig, field: &str, structured: &[Structured]) -> Result<Vec<HeaderOp>, ConfigError> {
    let mut rules = Vec::with_capacity(config.headers.len());
    for (i, rule) in config.headers.iter().enumerate() {
        let at = format!("{}[{i}]", join_path(field, "headers"));
        let name = checked_name(&rule.name, &format!("{at}.name"))?;
        if let Some(s) = structured.iter().find(|s| s.name == name) {
            return Err(ConfigError::new(format!("{at}.name"), format!("{name} is already set by {}", s.field)));
        }
        let value = match (rule.mode, &rule.value) {
            (HeaderMode::Remove, Some(_)) => {
                return Err(ConfigError::new(format!("{at}.value"), "not allowed with mode remove"))
            }
            (HeaderMode::Remove, None) => None,
            (_, None) => return Err(ConfigError::new(format!("{at}.value"), "required unless mode is remove")),
            (_, Some(value)) => Some(checked_value(value, &format!("{at}.value"))?),
        };
        rules.push(to_op(name, value, rule.mode));
    }
    Ok(rules)
}

fn to_op(name: String, value: Option<String>, mode: HeaderMode) -> HeaderOp {
    match (mode, value) {
        (HeaderMode::Set, Some(value)) => HeaderOp::Set(name, value),
        (HeaderMode::SetIfAbsent, Some(value)) => HeaderOp::SetIfAbsent(name, value),
        (HeaderMode::Append, Some(value)) => HeaderOp::Append(name, value),
        // `header_rules` guarantees a value for every mode but remove.
        (HeaderMode::Remove, _) | (_, None) => HeaderOp::Remove(name),
    }
}
