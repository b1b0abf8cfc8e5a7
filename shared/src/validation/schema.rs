//! A documented subset of JSON Schema 2020-12, compiled at configure time.
//!
//! Why a subset: the maintained crates (`jsonschema`, `boon`) pull in URL, IDNA and full regex
//! machinery and made the filter's `.wasm` several times larger than everything else in it
//! (measured: see the README and the commit message). This subset covers what request bodies
//! need, and every keyword it does not know is a config error, never silently ignored:
//!
//! - `type` (string or array of: null, boolean, object, array, number, integer, string),
//!   `enum`, `const`
//! - objects: `properties`, `required`, `additionalProperties` (boolean or schema),
//!   `minProperties`, `maxProperties`
//! - arrays: `items` (one schema for every item), `minItems`, `maxItems`, `uniqueItems`
//! - strings: `minLength`, `maxLength` (in code points), `pattern` (regex-lite syntax,
//!   unanchored as the spec says), `format`: email, uuid, date-time, date, time, ipv4, ipv6,
//!   uri, hostname
//! - numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`
//! - combinators: `allOf`, `anyOf`, `oneOf`, `not`; boolean schemas `true` / `false`
//! - annotations accepted and ignored: `$schema`, `$id`, `$comment`, `title`, `description`,
//!   `default`, `examples`, `deprecated`, `readOnly`, `writeOnly`
//!
//! Errors name the instance's JSON Pointer and the failing keyword (`/age: minimum`), never the
//! value.

use std::borrow::Cow;

use super::pattern::Pattern;
use serde_json::{Map, Value};

use super::json::{pointer, Node, Segment};
use crate::config::ConfigError;

/// Most errors reported for one body.
const MAX_ERRORS: usize = 16;

/// A compiled schema.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    always: Option<bool>,
    types: Vec<Type>,
    enumeration: Option<Vec<Node<'static>>>,
    constant: Option<Node<'static>>,
    properties: Vec<(String, Schema)>,
    required: Vec<String>,
    additional: Option<Box<Schema>>,
    min_properties: Option<usize>,
    max_properties: Option<usize>,
    items: Option<Box<Schema>>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    unique_items: bool,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<Pattern>,
    format: Option<Format>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    multiple_of: Option<f64>,
    all_of: Vec<Schema>,
    any_of: Vec<Schema>,
    one_of: Vec<Schema>,
    not: Option<Box<Schema>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    Integer,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Email,
    Uuid,
    DateTime,
    Date,
    Time,
    Ipv4,
    Ipv6,
    Uri,
    Hostname,
}

const ANNOTATIONS: [&str; 10] = [
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

impl Schema {
    /// Compiles `value`; `field` names it in errors (`routes[0].schema`).
    pub fn compile(value: &Value, field: &str) -> Result<Self, ConfigError> {
        let object = match value {
            Value::Bool(b) => return Ok(Self { always: Some(*b), ..Self::default() }),
            Value::Object(object) => object,
            _ => return Err(ConfigError::new(field, "a schema must be an object or a boolean")),
        };
        let mut schema = Self::default();
        for (key, value) in object {
            let at = format!("{field}.{key}");
            match key.as_str() {
                "type" => schema.types = compile_types(value, &at)?,
                "enum" => {
                    let Value::Array(values) = value else {
                        return Err(ConfigError::new(at, "must be an array"));
                    };
                    schema.enumeration = Some(values.iter().map(Node::from_value).collect());
                }
                "const" => schema.constant = Some(Node::from_value(value)),
                "properties" => {
                    for (name, sub) in as_object(value, &at)? {
                        schema.properties.push((name.clone(), Schema::compile(sub, &format!("{at}.{name}"))?));
                    }
                }
                "required" => schema.required = string_array(value, &at)?,
                "additionalProperties" => schema.additional = Some(Box::new(Schema::compile(value, &at)?)),
                "minProperties" => schema.min_properties = Some(count(value, &at)?),
                "maxProperties" => schema.max_properties = Some(count(value, &at)?),
                "items" => schema.items = Some(Box::new(Schema::compile(value, &at)?)),
                "minItems" => schema.min_items = Some(count(value, &at)?),
                "maxItems" => schema.max_items = Some(count(value, &at)?),
                "uniqueItems" => {
                    schema.unique_items = value.as_bool().ok_or_else(|| ConfigError::new(&at, "must be a boolean"))?
                }
                "minLength" => schema.min_length = Some(count(value, &at)?),
                "maxLength" => schema.max_length = Some(count(value, &at)?),
                "pattern" => {
                    let pattern = value.as_str().ok_or_else(|| ConfigError::new(&at, "must be a string"))?;
                    schema.pattern = Some(
                        Pattern::new(pattern).map_err(|err| ConfigError::new(&at, format!("invalid regex: {err}")))?,
                    );
                }
                "format" => schema.format = Some(compile_format(value, &at)?),
                "minimum" => schema.minimum = Some(number(value, &at)?),
                "maximum" => schema.maximum = Some(number(value, &at)?),
                "exclusiveMinimum" => schema.exclusive_minimum = Some(number(value, &at)?),
                "exclusiveMaximum" => schema.exclusive_maximum = Some(number(value, &at)?),
                "multipleOf" => {
                    let n = number(value, &at)?;
                    if n <= 0.0 {
                        return Err(ConfigError::new(at, "must be greater than 0"));
                    }
                    schema.multiple_of = Some(n);
                }
                "allOf" => schema.all_of = schema_array(value, &at)?,
                "anyOf" => schema.any_of = schema_array(value, &at)?,
                "oneOf" => schema.one_of = schema_array(value, &at)?,
                "not" => schema.not = Some(Box::new(Schema::compile(value, &at)?)),
                key if ANNOTATIONS.contains(&key) => {}
                _ => return Err(ConfigError::new(at, "unsupported keyword (see the supported JSON Schema subset)")),
            }
        }
        Ok(schema)
    }

    /// Validates `value`; returns the failing pointers with their keyword (empty when valid).
    pub fn validate(&self, value: &Node) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(value, &mut Vec::new(), &mut errors);
        errors
    }

    /// Whether `value` is valid (stops at the first error).
    fn is_valid(&self, value: &Node) -> bool {
        let mut errors = Vec::new();
        self.check(value, &mut Vec::new(), &mut errors);
        errors.is_empty()
    }

    fn check<'v>(&self, value: &'v Node, path: &mut Vec<Segment<'v>>, errors: &mut Vec<String>) {
        let mut fail = |keyword: &str, path: &[Segment], errors: &mut Vec<String>| {
            if errors.len() < MAX_ERRORS {
                let at = pointer(path);
                errors.push(format!("{}: {keyword}", if at.is_empty() { "/" } else { &at }));
            }
        };
        if let Some(always) = self.always {
            if !always {
                fail("false", path, errors);
            }
            return;
        }
        if !self.types.is_empty() && !self.types.iter().any(|t| t.matches(value)) {
            fail("type", path, errors);
            return;
        }
        if self.enumeration.as_ref().is_some_and(|values| !values.iter().any(|v| json_equal(v, value))) {
            fail("enum", path, errors);
        }
        if self.constant.as_ref().is_some_and(|c| !json_equal(c, value)) {
            fail("const", path, errors);
        }
        match value {
            Node::Object(object) => self.check_object(object, path, errors, &mut fail),
            Node::Array(items) => {
                if self.min_items.is_some_and(|min| items.len() < min) {
                    fail("minItems", path, errors);
                }
                if self.max_items.is_some_and(|max| items.len() > max) {
                    fail("maxItems", path, errors);
                }
                if self.unique_items
                    && items.iter().enumerate().any(|(i, a)| items.iter().skip(i + 1).any(|b| json_equal(a, b)))
                {
                    fail("uniqueItems", path, errors);
                }
                if let Some(schema) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        path.push(Segment::Index(i));
                        schema.check(item, path, errors);
                        path.pop();
                    }
                }
            }
            Node::String(s) => {
                let chars = s.chars().count();
                if self.min_length.is_some_and(|min| chars < min) {
                    fail("minLength", path, errors);
                }
                if self.max_length.is_some_and(|max| chars > max) {
                    fail("maxLength", path, errors);
                }
                if self.pattern.as_ref().is_some_and(|re| !re.is_match(s)) {
                    fail("pattern", path, errors);
                }
                if self.format.is_some_and(|format| !format.matches(s)) {
                    fail("format", path, errors);
                }
            }
            Node::Number(n) => {
                let n = *n;
                let checks = [
                    ("minimum", self.minimum.is_some_and(|m| n < m)),
                    ("maximum", self.maximum.is_some_and(|m| n > m)),
                    ("exclusiveMinimum", self.exclusive_minimum.is_some_and(|m| n <= m)),
                    ("exclusiveMaximum", self.exclusive_maximum.is_some_and(|m| n >= m)),
                    ("multipleOf", self.multiple_of.is_some_and(|m| !is_multiple(n, m))),
                ];
                for (keyword, failed) in checks {
                    if failed {
                        fail(keyword, path, errors);
                    }
                }
            }
            _ => {}
        }
        for schema in &self.all_of {
            schema.check(value, path, errors);
        }
        if !self.any_of.is_empty() && !self.any_of.iter().any(|s| s.is_valid(value)) {
            fail("anyOf", path, errors);
        }
        if !self.one_of.is_empty() && self.one_of.iter().filter(|s| s.is_valid(value)).count() != 1 {
            fail("oneOf", path, errors);
        }
        if self.not.as_ref().is_some_and(|s| s.is_valid(value)) {
            fail("not", path, errors);
        }
    }

    fn check_object<'v>(
        &self,
        object: &'v [(Cow<'v, str>, Node<'v>)],
        path: &mut Vec<Segment<'v>>,
        errors: &mut Vec<String>,
        fail: &mut impl FnMut(&str, &[Segment], &mut Vec<String>),
    ) {
        if self.min_properties.is_some_and(|min| object.len() < min) {
            fail("minProperties", path, errors);
        }
        if self.max_properties.is_some_and(|max| object.len() > max) {
            fail("maxProperties", path, errors);
        }
        for name in &self.required {
            if !object.iter().any(|(present, _)| present == name) {
                let mut missing = path.clone();
                missing.push(Segment::Key(name.clone().into()));
                fail("required", &missing, errors);
            }
        }
        for (name, item) in object {
            path.push(Segment::Key(Cow::Borrowed(name.as_ref())));
            match self.properties.iter().find(|(known, _)| known == name) {
                Some((_, schema)) => schema.check(item, path, errors),
                None => {
                    if let Some(additional) = &self.additional {
                        if additional.always == Some(false) {
                            fail("additionalProperties", path, errors);
                        } else {
                            additional.check(item, path, errors);
                        }
                    }
                }
            }
            path.pop();
        }
    }
}

impl Type {
    fn matches(self, value: &Node) -> bool {
        match (self, value) {
            (Type::Null, Node::Null)
            | (Type::Boolean, Node::Bool(_))
            | (Type::Object, Node::Object(_))
            | (Type::Array, Node::Array(_))
            | (Type::Number, Node::Number(_))
            | (Type::String, Node::String(_)) => true,
            (Type::Integer, Node::Number(n)) => n.is_finite() && n.fract() == 0.0,
            _ => false,
        }
    }
}

/// JSON equality as the spec defines it: numbers compare by value (1 == 1.0), members by name
/// in any order.
fn json_equal(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::Null, Node::Null) => true,
        (Node::Bool(x), Node::Bool(y)) => x == y,
        (Node::Number(x), Node::Number(y)) => x == y,
        (Node::String(x), Node::String(y)) => x == y,
        (Node::Array(x), Node::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b)),
        (Node::Object(x), Node::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.iter().any(|(name, w)| name == k && json_equal(v, w)))
        }
        _ => false,
    }
}

fn is_multiple(n: f64, of: f64) -> bool {
    let quotient = n / of;
    quotient.is_finite() && (quotient - quotient.round()).abs() < 1e-9
}

fn compile_types(value: &Value, field: &str) -> Result<Vec<Type>, ConfigError> {
    let names = match value {
        Value::String(name) => vec![name.clone()],
        Value::Array(_) => string_array(value, field)?,
        _ => return Err(ConfigError::new(field, "must be a type name or an array of them")),
    };
    names
        .iter()
        .map(|name| {
            Ok(match name.as_str() {
                "null" => Type::Null,
                "boolean" => Type::Boolean,
                "object" => Type::Object,
                "array" => Type::Array,
                "number" => Type::Number,
                "integer" => Type::Integer,
                "string" => Type::String,
                other => return Err(ConfigError::new(field, format!("unknown type `{other}`"))),
            })
        })
        .collect()
}

fn compile_format(value: &Value, field: &str) -> Result<Format, ConfigError> {
    Ok(match value.as_str() {
        Some("email") => Format::Email,
        Some("uuid") => Format::Uuid,
        Some("date-time") => Format::DateTime,
        Some("date") => Format::Date,
        Some("time") => Format::Time,
        Some("ipv4") => Format::Ipv4,
        Some("ipv6") => Format::Ipv6,
        Some("uri") => Format::Uri,
        Some("hostname") => Format::Hostname,
        _ => {
            return Err(ConfigError::new(
                field,
                "unsupported format (email, uuid, date-time, date, time, ipv4, ipv6, uri, hostname)",
            ))
        }
    })
}

fn as_object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ConfigError> {
    value.as_object().ok_or_else(|| ConfigError::new(field, "must be an object"))
}

fn string_array(value: &Value, field: &str) -> Result<Vec<String>, ConfigError> {
    let Value::Array(items) = value else {
        return Err(ConfigError::new(field, "must be an array of strings"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| ConfigError::new(format!("{field}[{i}]"), "must be a string"))
        })
        .collect()
}

fn schema_array(value: &Value, field: &str) -> Result<Vec<Schema>, ConfigError> {
    let Value::Array(items) = value else {
        return Err(ConfigError::new(field, "must be a non-empty array of schemas"));
    };
    if items.is_empty() {
        return Err(ConfigError::new(field, "must be a non-empty array of schemas"));
    }
    items.iter().enumerate().map(|(i, item)| Schema::compile(item, &format!("{field}[{i}]"))).collect()
}

fn count(value: &Value, field: &str) -> Result<usize, ConfigError> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| ConfigError::new(field, "must be a non-negative integer"))
}

fn number(value: &Value, field: &str) -> Result<f64, ConfigError> {
    value.as_f64().ok_or_else(|| ConfigError::new(field, "must be a number"))
}

impl Format {
    fn matches(self, s: &str) -> bool {
        match self {
            Format::Email => is_email(s),
            Format::Uuid => is_uuid(s),
            Format::DateTime => s.split_once(['T', 't']).is_some_and(|(date, time)| is_date(date) && is_time(time)),
            Format::Date => is_date(s),
            Format::Time => is_time(s),
            Format::Ipv4 => s.parse::<std::net::Ipv4Addr>().is_ok(),
            Format::Ipv6 => s.parse::<std::net::Ipv6Addr>().is_ok(),
            Format::Uri => is_uri(s),
            Format::Hostname => is_hostname(s),
        }
    }
}

/// `local@domain`: a dot-atom local part (RFC 5322 without quoted strings) and a host name.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let atom = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|part| !part.is_empty() && part.chars().all(atom))
        && is_hostname(domain)
        && domain.contains('.')
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// RFC 4122 textual form, any version.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// RFC 3339 `full-date`, with real month lengths.
fn is_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Some(year), Some(month), Some(day)) = (digits(y, 4), digits(m, 2), digits(d, 2)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// RFC 3339 `full-time`: `hh:mm:ss[.frac](Z|±hh:mm)`.
fn is_time(s: &str) -> bool {
    let (clock, offset_ok) = if let Some(clock) = s.strip_suffix(['Z', 'z']) {
        (clock, true)
    } else if s.len() > 6 && s.is_char_boundary(s.len() - 6) {
        let (clock, offset) = s.split_at(s.len() - 6);
        let ok = (offset.starts_with('+') || offset.starts_with('-'))
            && offset.get(3..4) == Some(":")
            && offset.get(1..3).and_then(|h| digits(h, 2)).is_some_and(|h| h <= 23)
            && offset.get(4..6).and_then(|m| digits(m, 2)).is_some_and(|m| m <= 59);
        (clock, ok)
    } else {
        return false;
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let (Some(h), Some(m), Some(sec), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    offset_ok
        && digits(h, 2).is_some_and(|h| h <= 23)
        && digits(m, 2).is_some_and(|m| m <= 59)
        && digits(sec, 2).is_some_and(|s| s <= 60)
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// An absolute URI: `scheme:rest` with an RFC 3986 scheme and no spaces or controls.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\"{}|\\^`".contains(c))
}

#[cfg(test)]
mod tests {
    use super::super::json::{parse, JsonLimits};
    use super::*;
    use serde_json::json;

    /// Validates `value` as a body would be: its JSON text through the scanner's tree.
    fn errors(schema: Value, value: Value) -> Vec<String> {
        let text = value.to_string();
        let limits = JsonLimits::compile(&Default::default(), "json").unwrap();
        let tree = parse(text.as_bytes(), &limits, &mut |_, _, _| true).unwrap();
        Schema::compile(&schema, "schema").unwrap().validate(&tree)
    }

    #[test]
    fn reports_pointers_and_keywords_never_values() {
        let schema = json!({
            "type": "object",
            "required": ["name", "age"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 5},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}
            }
        });
        assert!(errors(schema.clone(), json!({"name": "Ann", "age": 30, "tags": ["a"]})).is_empty());
        let found = errors(schema, json!({"name": "SECRET-VALUE", "tags": ["a", "c", "b"], "x/y": 1}));
        assert_eq!(
            found,
            ["/age: required", "/name: maxLength", "/tags: maxItems", "/tags/1: enum", "/x~1y: additionalProperties"]
        );
        assert!(!found.concat().contains("SECRET"));
    }

    #[test]
    fn every_keyword_at_its_boundary() {
        let cases: Vec<(Value, Value, bool)> = vec![
            (json!({"minLength": 2}), json!("éa"), true),
            (json!({"minLength": 2}), json!("é"), false),
            (json!({"maxLength": 2}), json!("ab"), true),
            (json!({"maxLength": 2}), json!("abc"), false),
            (json!({"minimum": 1}), json!(1), true),
            (json!({"minimum": 1}), json!(0.99), false),
            (json!({"maximum": 1}), json!(1.0), true),
            (json!({"maximum": 1}), json!(1.01), false),
            (json!({"exclusiveMinimum": 1}), json!(1), false),
            (json!({"exclusiveMinimum": 1}), json!(1.5), true),
            (json!({"exclusiveMaximum": 1}), json!(1), false),
            (json!({"exclusiveMaximum": 1}), json!(0), true),
            (json!({"multipleOf": 0.01}), json!(19.99), true),
            (json!({"multipleOf": 0.01}), json!(19.999), false),
            (json!({"minItems": 1}), json!([]), false),
            (json!({"maxItems": 1}), json!([1]), true),
            (json!({"uniqueItems": true}), json!([1, 1.0]), false),
            (json!({"uniqueItems": true}), json!([1, "1"]), true),
            (json!({"minProperties": 1}), json!({}), false),
            (json!({"maxProperties": 1}), json!({"a": 1}), true),
            (json!({"type": "integer"}), json!(1.0), true),
            (json!({"type": "integer"}), json!(1.5), false),
            (json!({"type": ["string", "null"]}), json!(null), true),
            (json!({"type": "number"}), json!("1"), false),
            (json!({"const": {"a": [1]}}), json!({"a": [1.0]}), true),
            (json!({"enum": [1, "x"]}), json!("y"), false),
            (json!({"pattern": "^[a-z]+$"}), json!("abc"), true),
            (json!({"pattern": "[0-9]"}), json!("ab1c"), true),
            (json!({"pattern": "^[a-z]+$"}), json!("ab1"), false),
            (json!({"pattern": "^[a-z]+$"}), json!(5), true),
            (json!({"anyOf": [{"type": "string"}, {"minimum": 3}]}), json!(2), false),
            (json!({"oneOf": [{"minimum": 1}, {"minimum": 2}]}), json!(3), false),
            (json!({"oneOf": [{"minimum": 1}, {"minimum": 2}]}), json!(1), true),
            (json!({"allOf": [{"minimum": 1}, {"maximum": 2}]}), json!(3), false),
            (json!({"not": {"type": "null"}}), json!(null), false),
            (json!(true), json!({"anything": 1}), true),
            (json!(false), json!(1), false),
            (json!({"additionalProperties": {"type": "string"}}), json!({"a": 1}), false),
            (json!({"title": "t", "$schema": "https://json-schema.org/draft/2020-12/schema"}), json!(1), true),
        ];
        for (schema, value, valid) in cases {
            assert_eq!(errors(schema.clone(), value.clone()).is_empty(), valid, "{schema} {value}");
        }
    }

    #[test]
    fn every_copy_of_a_repeated_member_is_checked() {
        // An upstream parser may keep the first copy or the last: both must be valid.
        let schema = Schema::compile(&json!({"properties": {"qty": {"maximum": 10}}}), "schema").unwrap();
        let limits = JsonLimits::compile(&Default::default(), "json").unwrap();
        for body in [r#"{"qty":1,"qty":99}"#, r#"{"qty":99,"qty":1}"#] {
            let tree = parse(body.as_bytes(), &limits, &mut |_, _, _| true).unwrap();
            assert_eq!(schema.validate(&tree), ["/qty: maximum"], "{body}");
        }
    }

    #[test]
    fn numbers_compare_by_value_whatever_their_spelling() {
        let cases = [
            (json!({"enum": [100]}), "1e2", true),
            (json!({"enum": [100]}), "100.0", true),
            (json!({"const": 0}), "-0", true),
            (json!({"type": "integer"}), "1E2", true),
            (json!({"type": "integer"}), "1.5e1", true),
            (json!({"type": "integer"}), "1.25e1", false),
            (json!({"type": "integer"}), "18446744073709551616", true),
            (json!({"maximum": 9007199254740992u64}), "9007199254740993", true),
        ];
        let limits = JsonLimits::compile(&Default::default(), "json").unwrap();
        for (schema, body, valid) in cases {
            let tree = parse(body.as_bytes(), &limits, &mut |_, _, _| true).unwrap();
            let errors = Schema::compile(&schema, "schema").unwrap().validate(&tree);
            assert_eq!(errors.is_empty(), valid, "{schema} {body}: {errors:?}");
        }
    }

    #[test]
    fn formats() {
        let cases = [
            ("email", "o'brien@example.co.uk", true),
            ("email", "a.b+tag@sub.example.com", true),
            ("email", "no-at.example.com", false),
            ("email", "a@localhost", false),
            ("email", "a..b@example.com", false),
            ("email", "a b@example.com", false),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", true),
            ("uuid", "123e4567-e89b-12d3-a456-42661417400", false),
            ("uuid", "123e4567e89b12d3a456426614174000", false),
            ("date-time", "1985-04-12T23:20:50.52Z", true),
            ("date-time", "1996-12-19T16:39:57-08:00", true),
            ("date-time", "1990-12-31T23:59:60Z", true),
            ("date-time", "1996-12-19 16:39:57Z", false),
            ("date-time", "1996-12-19T16:39:57", false),
            ("date-time", "1996-12-19T24:00:00Z", false),
            ("date", "2024-02-29", true),
            ("date", "2023-02-29", false),
            ("date", "2023-13-01", false),
            ("time", "08:30:06+01:00", true),
            ("time", "08:30Z", false),
            ("ipv4", "192.168.0.1", true),
            ("ipv4", "256.1.1.1", false),
            ("ipv6", "::1", true),
            ("ipv6", "1::2::3", false),
            ("uri", "https://example.com/a?b=c", true),
            ("uri", "/relative", false),
            ("uri", "https://exa mple.com", false),
            ("hostname", "api.example.com", true),
            ("hostname", "-bad.example.com", false),
        ];
        for (format, value, valid) in cases {
            assert_eq!(errors(json!({"format": format}), json!(value)).is_empty(), valid, "{format} {value}");
        }
    }

    #[test]
    fn bad_schemas_name_the_keyword() {
        let cases = [
            (json!({"type": 1}), "schema.type: must be a type name or an array of them"),
            (json!({"properties": {"a": {"minimum": "x"}}}), "schema.properties.a.minimum: must be a number"),
            (json!({"items": {"pattern": "["}}), "schema.items.pattern: invalid regex"),
            (json!({"anyOf": []}), "schema.anyOf: must be a non-empty array of schemas"),
            (json!({"required": [1]}), "schema.required[0]: must be a string"),
            (json!({"format": "credit-card"}), "schema.format: unsupported format"),
            (json!({"patternProperties": {}}), "schema.patternProperties: unsupported keyword"),
            (json!({"multipleOf": 0}), "schema.multipleOf: must be greater than 0"),
            (json!({"minLength": -1}), "schema.minLength: must be a non-negative integer"),
            (json!("string"), "schema: a schema must be an object or a boolean"),
        ];
        for (schema, expected) in cases {
            let err = Schema::compile(&schema, "schema").unwrap_err().to_string();
            assert!(err.starts_with(expected), "{schema}: got {err}");
        }
    }

    #[test]
    fn error_list_is_bounded() {
        let schema = json!({"items": {"type": "string"}});
        let many: Vec<Value> = (0..100).map(|i| json!(i)).collect();
        assert_eq!(errors(schema, Value::Array(many)).len(), MAX_ERRORS);
    }
}
