//! JSON Pointers (RFC 6901) with one extension: a `*` segment matches every element of an
//! array and every member of an object.
//!
//! `/users/*/email` finds the `email` of each user. A numeric segment selects an array index or
//! an object member of that name, as RFC 6901 says; `-` (the element after the last) never
//! exists in a body and is refused. RFC 6901 has no escape for `*`, so a member literally named
//! `*` cannot be selected alone.

use std::ops::Range;

use crate::config::ConfigError;

use super::json::{Kind, Node};

/// One compiled segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A member name, or an array index when the value is an array and the name is numeric.
    Name(String, Option<usize>),
    /// Every element or member.
    Any,
}

/// A compiled pointer; never the whole document (a rule must name a field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    segments: Vec<Segment>,
}

/// What a pointer found in a document.
#[derive(Debug, Default, PartialEq)]
pub struct Found {
    /// Spans of the values found.
    pub values: Vec<Range<usize>>,
    /// Whether some expansion of the pointer did not resolve (a member or element missing, or
    /// a parent that is not a container).
    pub missing: bool,
}

impl Pointer {
    /// Parses `/a/~1b/*/0`; `field` names it in errors.
    pub fn parse(text: &str, field: &str) -> Result<Self, ConfigError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(ConfigError::new(field, "must be a JSON pointer starting with /"));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                segments.push(Segment::Any);
                continue;
            }
            if raw == "-" {
                return Err(ConfigError::new(field, "segment - never exists in a body"));
            }
            let name = unescape(raw).ok_or_else(|| ConfigError::new(field, "~ must be followed by 0 or 1"))?;
            let index = if name == "0" || (!name.starts_with('0') && !name.is_empty()) {
                name.parse::<usize>().ok()
            } else {
                None
            };
            segments.push(Segment::Name(name, index));
        }
        Ok(Self { text: text.to_string(), segments })
    }

    /// The pointer as written in config.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether two pointers can select the same value, or one a value inside the other's.
    pub fn overlaps(&self, other: &Pointer) -> bool {
        self.segments.iter().zip(&other.segments).all(|pair| match pair {
            (Segment::Any, _) | (_, Segment::Any) => true,
            (Segment::Name(a, _), Segment::Name(b, _)) => a == b,
        })
    }

    /// Every value the pointer selects in `root`.
    pub fn find(&self, root: &Node<'_>) -> Found {
        let mut found = Found::default();
        walk(root, &self.segments, &mut found);
        found
    }
}

fn walk(node: &Node<'_>, segments: &[Segment], found: &mut Found) {
    let Some((segment, rest)) = segments.split_first() else {
        found.values.push(node.span.clone());
        return;
    };
    match (&node.kind, segment) {
        (Kind::Object(members), Segment::Any) => members.iter().for_each(|(_, child)| walk(child, rest, found)),
        (Kind::Array(items), Segment::Any) => items.iter().for_each(|child| walk(child, rest, found)),
        (Kind::Object(members), Segment::Name(name, _)) => {
            let mut hit = false;
            for (_, child) in members.iter().filter(|(member, _)| member == name) {
                hit = true;
                walk(child, rest, found);
            }
            found.missing |= !hit;
        }
        (Kind::Array(items), Segment::Name(_, index)) => match index.and_then(|i| items.get(i)) {
            Some(child) => walk(child, rest, found),
            None => found.missing = true,
        },
        (Kind::String | Kind::Scalar, _) => found.missing = true,
    }
}

fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next()? {
                '0' => out.push('~'),
                '1' => out.push('/'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::json::parse;

    fn texts<'b>(body: &'b str, pointer: &str) -> (Vec<&'b str>, bool) {
        let found = Pointer::parse(pointer, "p").unwrap().find(&parse(body.as_bytes()).unwrap());
        (found.values.iter().map(|r| &body[r.clone()]).collect(), found.missing)
    }

    #[test]
    fn follows_rfc_6901_examples() {
        // RFC 6901 section 5.
        let doc = r#"{"foo":["bar","baz"],"":0,"a/b":1,"c%d":2,"e^f":3,"g|h":4,"i\\j":5,"k\"l":6," ":7,"m~n":8}"#;
        let cases = [
            ("/foo", r#"["bar","baz"]"#),
            ("/foo/0", r#""bar""#),
            ("/", "0"),
            ("/a~1b", "1"),
            ("/c%d", "2"),
            ("/e^f", "3"),
            ("/g|h", "4"),
            ("/i\\j", "5"),
            ("/k\"l", "6"),
            ("/ ", "7"),
            ("/m~0n", "8"),
        ];
        for (pointer, expected) in cases {
            assert_eq!(texts(doc, pointer), (vec![expected], false), "{pointer}");
        }
    }

    #[test]
    fn wildcard_expands_arrays_and_objects_and_reports_missing() {
        let doc = r#"{"users":[{"email":"a"},{"name":"b"},{"email":{"x":1}}],"by_id":{"7":{"email":"c"}}}"#;
        assert_eq!(texts(doc, "/users/*/email"), (vec![r#""a""#, r#"{"x":1}"#], true));
        assert_eq!(texts(doc, "/by_id/*/email"), (vec![r#""c""#], false));
        assert_eq!(texts(doc, "/by_id/7/email"), (vec![r#""c""#], false));
        assert_eq!(texts(doc, "/users/5/email"), (vec![], true));
        assert_eq!(texts(doc, "/users/01"), (vec![], true));
        assert_eq!(texts(r#"{"l":[]}"#, "/l/*/e"), (vec![], false));
        assert_eq!(texts(r#"{"a":"s"}"#, "/a/b"), (vec![], true));
        assert_eq!(texts(r#"{"a":1,"a":2}"#, "/a"), (vec!["1", "2"], false));
    }

    #[test]
    fn bad_pointers_are_refused_and_overlaps_detected() {
        assert_eq!(Pointer::parse("a", "p").unwrap_err().to_string(), "p: must be a JSON pointer starting with /");
        assert_eq!(Pointer::parse("/a~2", "p").unwrap_err().to_string(), "p: ~ must be followed by 0 or 1");
        assert_eq!(Pointer::parse("/a/-", "p").unwrap_err().to_string(), "p: segment - never exists in a body");
        let p = |s| Pointer::parse(s, "p").unwrap();
        assert!(p("/users/*/email").overlaps(&p("/users/0")));
        assert!(p("/a").overlaps(&p("/a/b")));
        assert!(!p("/a/b").overlaps(&p("/a/c")));
        assert!(!p("/users/*/email").overlaps(&p("/users/*/name")));
    }
}
