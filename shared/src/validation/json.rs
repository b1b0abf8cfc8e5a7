//! A bounded, iterative JSON scanner: checks syntax (RFC 8259) and the `json` limits with an
//! explicit stack, so no body can exhaust the call stack, and hands every decoded string (keys
//! and values, at every level) with its JSON Pointer to a visitor.
//!
//! On a route with a schema the same pass also builds a [`Node`] tree that borrows its strings
//! from the body, so the body is parsed once. Its nesting is within `max_depth` (at most 64),
//! which bounds the schema's recursion over it.

use std::borrow::Cow;

use super::config::JsonLimitsConfig;
use crate::config::ConfigError;

/// Deepest nesting a config may allow.
const MAX_DEPTH_LIMIT: usize = 64;

/// Compiled `json` limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    max_depth: usize,
    max_keys: usize,
    max_string_bytes: usize,
    max_array_items: usize,
}

impl JsonLimits {
    /// Checks the numbers.
    pub fn compile(config: &JsonLimitsConfig, field: &str) -> Result<Self, ConfigError> {
        if !(1..=MAX_DEPTH_LIMIT).contains(&config.max_depth) {
            return Err(ConfigError::new(
                format!("{field}.max_depth"),
                format!("must be between 1 and {MAX_DEPTH_LIMIT}"),
            ));
        }
        for (name, value) in [
            ("max_keys", config.max_keys),
            ("max_string_bytes", config.max_string_bytes),
            ("max_array_items", config.max_array_items),
        ] {
            if value == 0 {
                return Err(ConfigError::new(format!("{field}.{name}"), "must be at least 1"));
            }
        }
        Ok(Self {
            max_depth: config.max_depth,
            max_keys: config.max_keys,
            max_string_bytes: config.max_string_bytes,
            max_array_items: config.max_array_items,
        })
    }
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// Not UTF-8, or not JSON; the byte offset where it went wrong.
    Syntax(usize),
    /// A `json` limit was exceeded at this pointer; the string names the limit.
    Limit(String, &'static str),
    /// The visitor asked to stop.
    Stopped,
}

/// One step of a JSON Pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    /// An object member (borrowed from the body unless it had escapes).
    Key(Cow<'a, str>),
    /// An array item.
    Index(usize),
}

/// Renders a JSON Pointer (RFC 6901); keys are sanitized and truncated so that a pointer
/// written to a reply or a log can never carry a payload.
pub fn pointer(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        match segment {
            Segment::Key(key) => out.push_str(&super::rule::sanitize(&key.replace('~', "~0").replace('/', "~1"))),
            Segment::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// Whether a decoded string is an object key or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrRole {
    /// An object member name; the pointer is the object's.
    Key,
    /// A string value; the pointer is the value's.
    Value,
}

enum Frame {
    Object { keys: usize },
    Array { items: usize },
}

/// A parsed JSON value, for the schema; strings and names borrow from the body unless they
/// had escapes.
#[derive(Debug, Clone)]
pub enum Node<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number; always finite (a literal beyond f64's range, such as `1e400`, is refused).
    Number(f64),
    /// A decoded string.
    String(Cow<'a, str>),
    /// Items in order.
    Array(Vec<Node<'a>>),
    /// Members in body order. A repeated name stays once per occurrence, so the schema checks
    /// every copy, not just the one an upstream parser happens to keep.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl Node<'static> {
    /// The same value, from a config's `serde_json::Value` (`enum`, `const`).
    pub fn from_value(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Node::String(Cow::Owned(s.clone())),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_value).collect()),
            Value::Object(members) => Node::Object(
                members.iter().map(|(name, value)| (Cow::Owned(name.clone()), Node::from_value(value))).collect(),
            ),
        }
    }
}

/// The member name of the value starting now, when its container is an object.
fn member_name<'a>(stack: &[Frame], path: &[Segment<'a>]) -> Option<Cow<'a, str>> {
    match (stack.last(), path.last()) {
        (Some(Frame::Object { .. }), Some(Segment::Key(name))) => Some(name.clone()),
        _ => None,
    }
}

/// The containers still open while a tree is built, innermost last.
#[derive(Default)]
struct Builder<'a> {
    open: Vec<(Option<Cow<'a, str>>, Node<'a>)>,
    done: Option<Node<'a>>,
    /// A step the scanner never takes happened: the tree is not the body's.
    broken: bool,
}

impl<'a> Builder<'a> {
    /// Opens an array or object; `name` is its member name inside an object.
    fn open(&mut self, name: Option<Cow<'a, str>>, container: Node<'a>) {
        self.open.push((name, container));
    }

    /// Adds a complete value to the innermost open container, or makes it the root.
    fn add(&mut self, name: Option<Cow<'a, str>>, value: Node<'a>) {
        match (self.open.last_mut(), name) {
            (Some((_, Node::Object(members))), Some(name)) => members.push((name, value)),
            (Some((_, Node::Array(items))), None) => items.push(value),
            (None, None) if self.done.is_none() => self.done = Some(value),
            _ => self.broken = true,
        }
    }

    /// Closes the innermost container and adds it to its parent.
    fn close(&mut self) {
        match self.open.pop() {
            Some((name, container)) => self.add(name, container),
            None => self.broken = true,
        }
    }

    /// The whole tree; none unless every container was closed and nothing went amiss.
    fn finish(self) -> Option<Node<'a>> {
        (!self.broken && self.open.is_empty()).then_some(self.done).flatten()
    }
}

/// Scans `body`; `visit` gets each decoded string and returns false to stop.
pub fn scan(
    body: &[u8],
    limits: &JsonLimits,
    visit: &mut dyn FnMut(&[Segment], StrRole, &str) -> bool,
) -> Result<(), ScanError> {
    Scanner::new(body, limits, None)?.run(visit).map(drop)
}

/// Scans `body` as [`scan`] does and returns it as a tree.
pub fn parse<'a>(
    body: &'a [u8],
    limits: &JsonLimits,
    visit: &mut dyn FnMut(&[Segment], StrRole, &str) -> bool,
) -> Result<Node<'a>, ScanError> {
    let tree = Scanner::new(body, limits, Some(Builder::default()))?.run(visit)?;
    // Always a tree after a complete scan; refused rather than validated otherwise.
    tree.and_then(Builder::finish).ok_or(ScanError::Syntax(body.len()))
}

struct Scanner<'a, 'l> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    limits: &'l JsonLimits,
    stack: Vec<Frame>,
    path: Vec<Segment<'a>>,
    tree: Option<Builder<'a>>,
}

impl<'a, 'l> Scanner<'a, 'l> {
    fn new(body: &'a [u8], limits: &'l JsonLimits, tree: Option<Builder<'a>>) -> Result<Self, ScanError> {
        let text = std::str::from_utf8(body).map_err(|err| ScanError::Syntax(err.valid_up_to()))?;
        Ok(Scanner { text, bytes: text.as_bytes(), pos: 0, limits, stack: Vec::new(), path: Vec::new(), tree })
    }

    /// Scans the whole text; the tree's builder, when one is built.
    fn run(
        mut self,
        visit: &mut dyn FnMut(&[Segment], StrRole, &str) -> bool,
    ) -> Result<Option<Builder<'a>>, ScanError> {
        'value: loop {
            // A value starts here.
            self.skip_ws();
            match self.peek() {
                Some(b'{') => {
                    self.open()?;
                    self.build_open(Node::Object(Vec::new()));
                    self.stack.push(Frame::Object { keys: 0 });
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        self.stack.pop();
                        self.build_close();
                    } else {
                        self.key(visit)?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.open()?;
                    self.build_open(Node::Array(Vec::new()));
                    self.stack.push(Frame::Array { items: 0 });
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        self.stack.pop();
                        self.build_close();
                    } else {
                        self.next_item()?;
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    let value = self.string()?;
                    if !visit(&self.path, StrRole::Value, &value) {
                        return Err(ScanError::Stopped);
                    }
                    self.build_add(Node::String(value));
                }
                Some(b't') => {
                    self.literal(b"true")?;
                    self.build_add(Node::Bool(true));
                }
                Some(b'f') => {
                    self.literal(b"false")?;
                    self.build_add(Node::Bool(false));
                }
                Some(b'n') => {
                    self.literal(b"null")?;
                    self.build_add(Node::Null);
                }
                Some(b'-' | b'0'..=b'9') => {
                    let start = self.pos;
                    self.number()?;
                    if self.tree.is_some() {
                        // serde_json's reading of the literal (its parser is in the module
                        // anyway); it refuses one beyond f64's range.
                        let literal = self.text.get(start..self.pos).unwrap_or_default();
                        let n = serde_json::from_str::<f64>(literal).map_err(|_| ScanError::Syntax(start))?;
                        self.build_add(Node::Number(n));
                    }
                }
                _ => return Err(ScanError::Syntax(self.pos)),
            }
            // After a complete value: close containers or move to the next member/item.
            loop {
                self.skip_ws();
                match (self.stack.last(), self.peek()) {
                    (None, None) => return Ok(self.tree),
                    (None, Some(_)) => return Err(ScanError::Syntax(self.pos)),
                    (Some(Frame::Object { .. }), Some(b',')) => {
                        self.pos += 1;
                        self.path.pop();
                        self.key(visit)?;
                        continue 'value;
                    }
                    (Some(Frame::Object { .. }), Some(b'}')) | (Some(Frame::Array { .. }), Some(b']')) => {
                        self.pos += 1;
                        self.path.pop();
                        self.stack.pop();
                        self.build_close();
                    }
                    (Some(Frame::Array { .. }), Some(b',')) => {
                        self.pos += 1;
                        self.path.pop();
                        self.next_item()?;
                        continue 'value;
                    }
                    _ => return Err(ScanError::Syntax(self.pos)),
                }
            }
        }
    }

    fn build_open(&mut self, container: Node<'a>) {
        if let Some(tree) = &mut self.tree {
            tree.open(member_name(&self.stack, &self.path), container);
        }
    }

    fn build_add(&mut self, value: Node<'a>) {
        if let Some(tree) = &mut self.tree {
            tree.add(member_name(&self.stack, &self.path), value);
        }
    }

    fn build_close(&mut self) {
        if let Some(tree) = &mut self.tree {
            tree.close();
        }
    }

    fn open(&mut self) -> Result<(), ScanError> {
        self.pos += 1;
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.limit("max_depth"));
        }
        Ok(())
    }

    fn limit(&self, name: &'static str) -> ScanError {
        ScanError::Limit(pointer(&self.path), name)
    }

    fn next_item(&mut self) -> Result<(), ScanError> {
        let Some(Frame::Array { items }) = self.stack.last_mut() else {
            return Err(ScanError::Syntax(self.pos));
        };
        let index = *items;
        *items += 1;
        if *items > self.limits.max_array_items {
            return Err(self.limit("max_array_items"));
        }
        self.path.push(Segment::Index(index));
        Ok(())
    }

    fn key(&mut self, visit: &mut dyn FnMut(&[Segment], StrRole, &str) -> bool) -> Result<(), ScanError> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(ScanError::Syntax(self.pos));
        }
        let key = self.string()?;
        let Some(Frame::Object { keys }) = self.stack.last_mut() else {
            return Err(ScanError::Syntax(self.pos));
        };
        *keys += 1;
        if *keys > self.limits.max_keys {
            return Err(self.limit("max_keys"));
        }
        if !visit(&self.path, StrRole::Key, &key) {
            return Err(ScanError::Stopped);
        }
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(ScanError::Syntax(self.pos));
        }
        self.pos += 1;
        self.path.push(Segment::Key(key));
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(ScanError::Syntax(self.pos))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(ScanError::Syntax(self.pos)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(ScanError::Syntax(self.pos));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(ScanError::Syntax(self.pos));
            }
        }
        Ok(())
    }

    /// Decodes a string starting at its opening quote; borrowed from the body when it has no
    /// escape (most strings), so the common case allocates nothing.
    fn string(&mut self) -> Result<Cow<'a, str>, ScanError> {
        self.pos += 1;
        let start = self.pos;
        self.skip_plain();
        if self.peek() == Some(b'"') {
            let plain = self.text.get(start..self.pos).unwrap_or_default();
            if plain.len() > self.limits.max_string_bytes {
                return Err(self.limit("max_string_bytes"));
            }
            self.pos += 1;
            return Ok(Cow::Borrowed(plain));
        }
        self.pos = start;
        let mut out = String::new();
        loop {
            let start = self.pos;
            self.skip_plain();
            // The input is a &str and the run stops only at ASCII bytes, so it is whole UTF-8.
            out.push_str(self.text.get(start..self.pos).unwrap_or_default());
            if out.len() > self.limits.max_string_bytes {
                return Err(self.limit("max_string_bytes"));
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.peek().ok_or(ScanError::Syntax(self.pos))?;
                    self.pos += 1;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(ScanError::Syntax(self.pos - 1)),
                    }
                }
                _ => return Err(ScanError::Syntax(self.pos)),
            }
        }
    }

    /// Skips string bytes that need no decoding: up to a quote, a backslash or a control byte.
    fn skip_plain(&mut self) {
        self.pos += crate::byte_scan::plain_run(self.bytes.get(self.pos..).unwrap_or_default());
    }

    fn hex4(&mut self) -> Result<u32, ScanError> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(ScanError::Syntax(self.pos))?;
        let text = std::str::from_utf8(digits).map_err(|_| ScanError::Syntax(self.pos))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ScanError::Syntax(self.pos));
        }
        let value = u32::from_str_radix(text, 16).map_err(|_| ScanError::Syntax(self.pos))?;
        self.pos += 4;
        Ok(value)
    }

    /// `\uXXXX`, joining surrogate pairs; a lone surrogate is invalid (as serde_json says).
    fn unicode_escape(&mut self) -> Result<char, ScanError> {
        let at = self.pos;
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                return Err(ScanError::Syntax(at));
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(ScanError::Syntax(at));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or(ScanError::Syntax(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(json: &str) -> JsonLimits {
        JsonLimits::compile(&serde_json::from_str(json).unwrap(), "json").unwrap()
    }

    fn strings(body: &str) -> Result<Vec<(String, StrRole, String)>, ScanError> {
        let mut seen = Vec::new();
        scan(body.as_bytes(), &limits("{}"), &mut |path, role, s| {
            seen.push((pointer(path), role, s.to_string()));
            true
        })?;
        Ok(seen)
    }

    fn check(json_limits: &str, body: &str) -> Result<(), ScanError> {
        scan(body.as_bytes(), &limits(json_limits), &mut |_, _, _| true)
    }

    #[test]
    fn visits_every_string_with_its_pointer() {
        let seen = strings(r#"{"a":{"b/c":["x",{"d~":"y\u00e9\n"}]},"e":"\ud83d\ude00"}"#).unwrap();
        use StrRole::*;
        let expected = [
            ("", Key, "a"),
            ("/a", Key, "b/c"),
            ("/a/b~1c/0", Value, "x"),
            ("/a/b~1c/1", Key, "d~"),
            ("/a/b~1c/1/d~0", Value, "yé\n"),
            ("", Key, "e"),
            ("/e", Value, "😀"),
        ];
        let expected: Vec<_> = expected.iter().map(|(p, r, s)| (p.to_string(), *r, s.to_string())).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn accepts_exactly_what_serde_json_accepts() {
        let cases = [
            "0",
            "-0.5e+10",
            "\"s\"",
            "true",
            " null ",
            "[]",
            "{}",
            "[1,[2,{}]]",
            r#"{"a":1,"b":[true,false]}"#,
            "",
            "01",
            "1.",
            "-",
            ".5",
            "1e",
            "[1,]",
            "{,}",
            r#"{"a"}"#,
            r#"{"a":1,}"#,
            "[1 2]",
            "tru",
            "nul",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\t\"",
            "1 2",
            "{\"a\":1}}",
            "[",
            "\"abc",
            "{\"a\" 1}",
            "\"\\u12\"",
            "[1]x",
            "\u{feff}1",
        ];
        for case in cases {
            let ours = check("{}", case).is_ok();
            let tree = parse(case.as_bytes(), &limits("{}"), &mut |_, _, _| true).is_ok();
            let serde = serde_json::from_str::<serde_json::Value>(case).is_ok();
            assert_eq!(ours, serde, "{case:?}");
            assert_eq!(tree, serde, "{case:?}");
        }
        assert_eq!(scan(b"\"\xff\"", &limits("{}"), &mut |_, _, _| true), Err(ScanError::Syntax(1)));
        // serde_json refuses a number beyond f64; so does the tree the schema checks.
        assert!(check("{}", "[1e400]").is_ok());
        assert_eq!(parse(b"[1e400]", &limits("{}"), &mut |_, _, _| true).unwrap_err(), ScanError::Syntax(1));
    }

    /// The tree as a `serde_json::Value`, numbers as f64.
    fn to_value(node: &Node) -> serde_json::Value {
        use serde_json::Value;
        match node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Node::String(s) => Value::String(s.to_string()),
            Node::Array(items) => Value::Array(items.iter().map(to_value).collect()),
            Node::Object(members) => {
                Value::Object(members.iter().map(|(name, value)| (name.to_string(), to_value(value))).collect())
            }
        }
    }

    /// `value` with every number as f64, as the tree holds it.
    fn numbers_as_f64(value: serde_json::Value) -> serde_json::Value {
        to_value(&Node::from_value(&value))
    }

    #[test]
    fn the_tree_holds_what_serde_json_reads() {
        let order = include_str!("../../tests/data/order_4k.json");
        let cases = [
            order,
            r#"{"a":{"b/c":["x",{"d~":"y\u00e9\n"}]},"e":"\ud83d\ude00","\u0041":[]}"#,
            r#"[0,-0,1.5,-2e-3,1E+2,18446744073709551615,-9223372036854775808,123456789012345678901234567890]"#,
            r#"{"dup":1,"x":{},"dup":[true,false,null]}"#,
            r#" [ [ [ ] , { } ] , "" , "\"\\\/\b\f\n\r\t" ] "#,
            "\"only\"",
            "3",
        ];
        for case in cases {
            let tree = parse(case.as_bytes(), &limits("{}"), &mut |_, _, _| true).unwrap();
            let serde: serde_json::Value = serde_json::from_str(case).unwrap();
            assert_eq!(to_value(&tree), numbers_as_f64(serde), "{case}");
        }
        // Names and strings without escapes borrow from the body.
        let body = br#"{"plain":["text"],"esc\u0061ped":1}"#;
        let Node::Object(members) = parse(body, &limits("{}"), &mut |_, _, _| true).unwrap() else {
            panic!("not an object");
        };
        assert!(matches!(&members[0].0, Cow::Borrowed("plain")));
        assert!(
            matches!(&members[0].1, Node::Array(items) if matches!(&items[0], Node::String(Cow::Borrowed("text"))))
        );
        assert!(matches!(&members[1].0, Cow::Owned(name) if name == "escaped"));
    }

    #[test]
    fn a_builder_driven_out_of_order_yields_no_tree() {
        let name = || Some(Cow::Borrowed("a"));
        let mut unnamed_member = Builder::default();
        unnamed_member.open(None, Node::Object(Vec::new()));
        unnamed_member.add(None, Node::Null);
        unnamed_member.close();
        let mut named_item = Builder::default();
        named_item.open(None, Node::Array(Vec::new()));
        named_item.add(name(), Node::Null);
        named_item.close();
        let mut two_roots = Builder::default();
        two_roots.add(None, Node::Null);
        two_roots.add(None, Node::Null);
        let mut extra_close = Builder::default();
        extra_close.add(None, Node::Null);
        extra_close.close();
        let mut unclosed = Builder::default();
        unclosed.open(None, Node::Array(Vec::new()));
        for builder in [unnamed_member, named_item, two_roots, extra_close, unclosed] {
            assert!(builder.finish().is_none());
        }
        let mut fine = Builder::default();
        fine.open(None, Node::Object(Vec::new()));
        fine.add(name(), Node::Bool(true));
        fine.close();
        assert!(matches!(fine.finish(), Some(Node::Object(members)) if members.len() == 1));
    }

    #[test]
    fn the_tree_keeps_every_copy_of_a_repeated_name_in_order() {
        let tree = parse(br#"{"a":1,"b":2,"a":3}"#, &limits("{}"), &mut |_, _, _| true).unwrap();
        let Node::Object(members) = tree else { panic!("not an object") };
        let seen: Vec<(&str, f64)> = members
            .iter()
            .map(|(name, value)| match value {
                Node::Number(n) => (name.as_ref(), *n),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seen, [("a", 1.0), ("b", 2.0), ("a", 3.0)]);
    }

    #[test]
    fn building_the_tree_keeps_the_limits_and_the_visitor() {
        let limited = parse(br#"{"a":[1,2,3]}"#, &limits(r#"{"max_array_items":2}"#), &mut |_, _, _| true);
        assert_eq!(limited.unwrap_err(), ScanError::Limit("/a".into(), "max_array_items"));
        let stopped = parse(br#"["a","b"]"#, &limits("{}"), &mut |_, _, s| s != "b");
        assert_eq!(stopped.unwrap_err(), ScanError::Stopped);
        let hostile = "[".repeat(1_000_000);
        assert!(matches!(parse(hostile.as_bytes(), &limits("{}"), &mut |_, _, _| true), Err(ScanError::Limit(..))));
    }

    #[test]
    fn depth_at_its_boundary_and_far_beyond_without_recursion() {
        assert!(check(r#"{"max_depth":3}"#, "[[[1]]]").is_ok());
        assert_eq!(check(r#"{"max_depth":3}"#, "[[[[1]]]]"), Err(ScanError::Limit("/0/0/0".into(), "max_depth")));
        assert!(check(r#"{"max_depth":2}"#, r#"{"a":{"b":1}}"#).is_ok());
        assert!(check(r#"{"max_depth":2}"#, r#"{"a":{"b":[]}}"#).is_err());
        let hostile = "[".repeat(1_000_000);
        assert_eq!(check("{}", &hostile), Err(ScanError::Limit(pointer(&vec![Segment::Index(0); 32]), "max_depth")));
    }

    #[test]
    fn keys_strings_and_arrays_at_their_boundaries() {
        assert!(check(r#"{"max_keys":2}"#, r#"{"a":1,"b":2}"#).is_ok());
        assert_eq!(check(r#"{"max_keys":2}"#, r#"{"a":1,"b":2,"c":3}"#), Err(ScanError::Limit("".into(), "max_keys")));
        assert!(check(r#"{"max_string_bytes":3}"#, r#"["abc","\u00e9a"]"#).is_ok());
        assert_eq!(
            check(r#"{"max_string_bytes":3}"#, r#"{"k":"abcd"}"#),
            Err(ScanError::Limit("/k".into(), "max_string_bytes"))
        );
        assert!(check(r#"{"max_string_bytes":3}"#, r#"{"abcd":1}"#).is_err(), "keys count too");
        assert!(check(r#"{"max_array_items":2}"#, "[1,2]").is_ok());
        assert_eq!(
            check(r#"{"max_array_items":2}"#, r#"{"a":[1,2,3]}"#),
            Err(ScanError::Limit("/a".into(), "max_array_items"))
        );
    }

    #[test]
    fn visitor_can_stop_the_scan() {
        let result = scan(br#"["a","b"]"#, &limits("{}"), &mut |_, _, s| s != "a");
        assert_eq!(result, Err(ScanError::Stopped));
    }
}
