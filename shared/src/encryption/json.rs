//! A strict JSON reader that keeps byte spans, so the body is edited in place.
//!
//! Only the encrypted values change: member order, duplicate names, whitespace and number
//! precision outside them stay exactly as the client or upstream sent them (re-serializing a
//! `serde_json::Value` would sort members and round big numbers). Duplicate member names are all
//! visited, so `{"email":"a","email":"b"}` cannot smuggle a plaintext copy past a rule.
//!
//! [`parse_for`] builds only the containers that the rules' pointers can enter and checks the
//! rest of the body just as strictly without building it: a 4 KiB order whose rules name three
//! fields of `/customer` need not allocate a node for each of its fifty line items.

use std::borrow::Cow;
use std::ops::Range;

use super::pointer::Segment;

/// Nesting deeper than this is refused (recursion must not exhaust the wasm stack).
pub const MAX_DEPTH: usize = 128;

/// A parsed value: where it is in the body and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    /// Byte range of the value's JSON text (quotes included for strings).
    pub span: Range<usize>,
    /// The value's kind and children.
    pub kind: Kind<'a>,
}

/// What a [`Node`] holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind<'a> {
    /// Members in body order, duplicates kept, names decoded.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    /// Elements in order.
    Array(Vec<Node<'a>>),
    /// A string; the span includes the quotes.
    String,
    /// A number, `true`, `false` or `null`.
    Scalar,
    /// An object or array that no selected path enters ([`parse_for`]): checked, not built.
    Opaque,
}

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// Not UTF-8, bad syntax, or trailing data.
    Syntax,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// Parses a whole document, building every container.
pub fn parse(body: &[u8]) -> Result<Node<'_>, JsonError> {
    parse_with(body, Build::All)
}

/// Parses a whole document, building only the containers on the way into `paths` (pointer
/// segments from the root); every other container becomes [`Kind::Opaque`]. What a walk along
/// one of `paths` finds is the same as in [`parse`]'s tree, and a body is accepted or refused
/// exactly as [`parse`] does. With no paths, the body is only checked.
pub fn parse_for<'a>(body: &'a [u8], paths: &[&[Segment]]) -> Result<Node<'a>, JsonError> {
    parse_with(body, Build::Along(paths))
}

fn parse_with<'a>(body: &'a [u8], build: Build<'_, '_>) -> Result<Node<'a>, JsonError> {
    let text = std::str::from_utf8(body).map_err(|_| JsonError::Syntax)?;
    let mut reader = Reader { text, bytes: body, pos: 0 };
    reader.skip_ws();
    let node = reader.value(0, build)?;
    reader.skip_ws();
    if reader.pos == body.len() {
        Ok(node)
    } else {
        Err(JsonError::Syntax)
    }
}

/// Which containers below a value to build.
#[derive(Clone, Copy)]
enum Build<'p, 's> {
    /// Every one.
    All,
    /// Those the remaining segments of these paths enter.
    Along(&'p [&'s [Segment]]),
}

impl<'s> Build<'_, 's> {
    /// Whether the value's own children are needed: some path goes on below it.
    fn enters(&self) -> bool {
        match self {
            Build::All => true,
            Build::Along(paths) => paths.iter().any(|path| !path.is_empty()),
        }
    }

    /// The rest of each path that continues into the member `name` or the element `index`.
    fn child(&self, name: Option<&str>, index: Option<usize>) -> Option<Vec<&'s [Segment]>> {
        let Build::Along(paths) = self else { return None };
        Some(
            paths
                .iter()
                .filter_map(|path| match path.split_first() {
                    Some((Segment::Any, rest)) => Some(rest),
                    Some((Segment::Name(wanted, wanted_index), rest)) => {
                        let hit = match name {
                            Some(name) => wanted == name,
                            None => wanted_index.is_some() && *wanted_index == index,
                        };
                        hit.then_some(rest)
                    }
                    None => None,
                })
                .collect(),
        )
    }
}

/// Decodes the JSON string literal `raw` (quotes included).
pub fn decode_string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(JsonError::Syntax)
        }
    }

    fn value(&mut self, depth: usize, build: Build<'_, '_>) -> Result<Node<'a>, JsonError> {
        let start = self.pos;
        let kind = match self.peek().ok_or(JsonError::Syntax)? {
            b'{' | b'[' if !build.enters() => {
                self.skip_container(depth + 1)?;
                Kind::Opaque
            }
            b'{' => self.object(depth + 1, build)?,
            b'[' => self.array(depth + 1, build)?,
            b'"' => {
                self.string()?;
                Kind::String
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            _ => self.number()?,
        };
        Ok(Node { span: start..self.pos, kind })
    }

    fn object(&mut self, depth: usize, build: Build<'_, '_>) -> Result<Kind<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.eat(b'{')?;
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Kind::Object(members));
        }
        loop {
            self.skip_ws();
            let name = self.name()?;
            self.skip_ws();
            self.eat(b':')?;
            self.skip_ws();
            let paths = build.child(Some(name.as_ref()), None);
            let value = self.value(depth, paths.as_deref().map_or(Build::All, Build::Along))?;
            members.push((name, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Kind::Object(members));
                }
                _ => return Err(JsonError::Syntax),
            }
        }
    }

    fn array(&mut self, depth: usize, build: Build<'_, '_>) -> Result<Kind<'a>, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.eat(b'[')?;
        let mut elements = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Kind::Array(elements));
        }
        loop {
            self.skip_ws();
            let paths = build.child(None, Some(elements.len()));
            elements.push(self.value(depth, paths.as_deref().map_or(Build::All, Build::Along))?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Kind::Array(elements));
                }
                _ => return Err(JsonError::Syntax),
            }
        }
    }

    /// Checks an object or array (at `depth`, counted as [`Reader::object`] does) as strictly as
    /// building it would, without building it. The nesting is tracked in a stack of closers, so
    /// an unbuilt subtree costs no recursion either.
    fn skip_container(&mut self, depth: usize) -> Result<(), JsonError> {
        let mut closers: Vec<u8> = Vec::new();
        loop {
            // A container opens here.
            if depth + closers.len() > MAX_DEPTH {
                return Err(JsonError::TooDeep);
            }
            let object = self.peek() == Some(b'{');
            self.pos += 1;
            closers.push(if object { b'}' } else { b']' });
            self.skip_ws();
            if self.peek() == closers.last().copied() {
                self.pos += 1;
                closers.pop();
            } else if self.skip_item(object)? {
                continue;
            }
            // After a complete value: close containers or move to the next member or element.
            loop {
                let Some(&closer) = closers.last() else { return Ok(()) };
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.skip_ws();
                        if self.skip_item(closer == b'}')? {
                            break;
                        }
                    }
                    Some(byte) if byte == closer => {
                        self.pos += 1;
                        closers.pop();
                    }
                    _ => return Err(JsonError::Syntax),
                }
            }
        }
    }

    /// One member (`"name": value`, when `member`) or element, up to its value: a scalar or
    /// string is consumed (false), a container's opening is left for the caller (true).
    fn skip_item(&mut self, member: bool) -> Result<bool, JsonError> {
        if member {
            self.name()?;
            self.skip_ws();
            self.eat(b':')?;
            self.skip_ws();
        }
        match self.peek().ok_or(JsonError::Syntax)? {
            b'{' | b'[' => Ok(true),
            b'"' => self.string().map(|_| false),
            b't' => self.literal(b"true").map(|_| false),
            b'f' => self.literal(b"false").map(|_| false),
            b'n' => self.literal(b"null").map(|_| false),
            _ => self.number().map(|_| false),
        }
    }

    /// A member name, decoded: borrowed from the body unless it holds an escape. A name JSON
    /// cannot decode (a lone surrogate) is a syntax error.
    fn name(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let start = self.pos;
        let escaped = self.string()?;
        let raw = self.text.get(start..self.pos).ok_or(JsonError::Syntax)?;
        if escaped {
            decode_string(raw).ok_or(JsonError::Syntax)
        } else {
            raw.get(1..raw.len() - 1).map(Cow::Borrowed).ok_or(JsonError::Syntax)
        }
    }

    /// Skips a string literal, checking escapes and refusing raw control characters; true when
    /// it held an escape.
    fn string(&mut self) -> Result<bool, JsonError> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            // Skip plain bytes in one pass; stop at a quote, a backslash or a control byte.
            self.pos += crate::byte_scan::plain_run(self.bytes.get(self.pos..).unwrap_or_default());
            match self.peek().ok_or(JsonError::Syntax)? {
                b'"' => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek().ok_or(JsonError::Syntax)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 1..self.pos + 5).ok_or(JsonError::Syntax)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(JsonError::Syntax);
                            }
                            self.pos += 5;
                        }
                        _ => return Err(JsonError::Syntax),
                    }
                }
                0x00..=0x1f => return Err(JsonError::Syntax),
                _ => self.pos += 1,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<Kind<'a>, JsonError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(Kind::Scalar)
        } else {
            Err(JsonError::Syntax)
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<Kind<'a>, JsonError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(JsonError::Syntax),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.require_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.require_digits()?;
        }
        Ok(Kind::Scalar)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn require_digits(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            Err(JsonError::Syntax)
        } else {
            Ok(())
        }
    }
}

/// Replaces disjoint byte ranges of `body`; `edits` must be sorted by start.
pub fn splice(body: &[u8], edits: &[(Range<usize>, String)]) -> Vec<u8> {
    let grown: usize = edits.iter().map(|(_, text)| text.len()).sum();
    let mut out = Vec::with_capacity(body.len() + grown);
    let mut at = 0;
    for (range, text) in edits {
        if range.start < at || range.end > body.len() {
            continue; // Unreachable for edits built from one parse; never emit a broken body.
        }
        out.extend_from_slice(body.get(at..range.start).unwrap_or_default());
        out.extend_from_slice(text.as_bytes());
        at = range.end;
    }
    out.extend_from_slice(body.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::pointer::Pointer;

    #[test]
    fn accepts_exactly_what_serde_json_accepts() {
        let cases: &[&str] = &[
            "{}",
            "[]",
            "0",
            "-0",
            "1.5e+3",
            "-12.0E-2",
            "\"a\\u00e9\\n\"",
            " {\"a\" : [1, {\"b\":null}] } ",
            "true",
            "false",
            "null",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "\"\\x\"",
            "\"a\tb\"",
            "{\"a\" 1}",
            "[1 2]",
            "tru",
            "nul",
            "{\"a\":1}}",
            "",
            " ",
            "\"\\u12\"",
            "[\"\\ud800\"]",
            "{1:2}",
            "\"\u{7f}\"",
            "-",
            "[-]",
            "1 2",
            "{\"a\":1,\"a\":2}",
        ];
        for case in cases {
            let ours = parse(case.as_bytes()).is_ok();
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(case).is_ok();
            // Lone surrogates are valid syntax; serde_json refuses them only when decoding.
            let expected = serde || *case == "[\"\\ud800\"]";
            assert_eq!(ours, expected, "{case:?}");
            // Checked without being built, the verdict is the same.
            assert_eq!(parse_for(case.as_bytes(), &[]).is_ok(), expected, "unbuilt {case:?}");
        }
        assert_eq!(parse(b"\xff"), Err(JsonError::Syntax));
        // A member name JSON cannot decode is refused in an unbuilt object too.
        assert_eq!(parse_for(br#"[{"\ud800":1}]"#, &[]), Err(JsonError::Syntax));
        assert_eq!(parse(br#"[{"\ud800":1}]"#), Err(JsonError::Syntax));
    }

    #[test]
    fn unbuilt_containers_are_opaque_and_selected_ones_are_built() {
        let body = br#"{"customer": {"email": "a@x.io", "tags": ["x"]}, "items": [{"sku": "A"}, {"sku": "B"}]}"#;
        let email = Pointer::parse("/customer/email", "p").unwrap();
        let node = parse_for(body, &[email.segments()]).unwrap();
        let Kind::Object(members) = &node.kind else { panic!("the root is built") };
        let Kind::Object(customer) = &members[0].1.kind else { panic!("/customer is built") };
        assert_eq!(customer[0].1.kind, Kind::String);
        // On the path's end or off it: spans only.
        assert_eq!(customer[1].1.kind, Kind::Opaque);
        assert_eq!(&body[customer[1].1.span.clone()], br#"["x"]"#);
        assert_eq!(members[1].1.kind, Kind::Opaque);
        assert_eq!(&body[members[1].1.span.clone()], br#"[{"sku": "A"}, {"sku": "B"}]"#);
        assert_eq!(email.find(&node), email.find(&parse(body).unwrap()));
    }

    #[test]
    fn spans_cover_values_and_names_are_decoded() {
        let body = br#"{"a\u0062": "x", "n": [1, -2.5e3]}"#;
        let node = parse(body).unwrap();
        assert_eq!(node.span, 0..body.len());
        let Kind::Object(members) = node.kind else { panic!("object") };
        assert_eq!(members[0].0, "ab");
        assert_eq!(&body[members[0].1.span.clone()], b"\"x\"");
        let Kind::Array(items) = &members[1].1.kind else { panic!("array") };
        assert_eq!(&body[items[1].span.clone()], b"-2.5e3");
    }

    #[test]
    fn depth_is_limited() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(deep.as_bytes()), Err(JsonError::TooDeep));
        let deep_objects = "{\"a\":".repeat(100_000);
        assert_eq!(parse(deep_objects.as_bytes()), Err(JsonError::TooDeep));
        // The same limit when nothing is built, at the root or below a built container.
        assert!(parse_for(ok.as_bytes(), &[]).is_ok());
        assert_eq!(parse_for(deep.as_bytes(), &[]), Err(JsonError::TooDeep));
        assert_eq!(parse_for(deep_objects.as_bytes(), &[]), Err(JsonError::TooDeep));
        let first = Pointer::parse("/0", "p").unwrap();
        assert!(parse_for(ok.as_bytes(), &[first.segments()]).is_ok());
        assert_eq!(parse_for(deep.as_bytes(), &[first.segments()]), Err(JsonError::TooDeep));
    }

    #[test]
    fn splice_replaces_ranges_in_order() {
        let body = b"{\"a\":1,\"b\":22}";
        let out = splice(body, &[(5..6, "\"x\"".into()), (11..13, "null".into())]);
        assert_eq!(out, b"{\"a\":\"x\",\"b\":null}");
        assert_eq!(decode_string("\"a\\\"b\"").unwrap(), "a\"b");
        assert_eq!(decode_string("x"), None);
    }
}
