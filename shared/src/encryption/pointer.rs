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
    /// For each value, in order, the span of its record id when a [`RecordId`] was given:
    /// `None` when that record has no usable id.
    pub records: Vec<Option<Range<usize>>>,
    /// Whether some expansion of the pointer did not resolve (a member or element missing, or
    /// a parent that is not a container).
    pub missing: bool,
}

/// Where a value's record id is, relative to the value: a Relative JSON Pointer
/// (draft-bhutton-relative-json-pointer-00) without the `#` form: `1/id` is the member `id` of
/// the object (or array) holding the value, `2/id` one level further up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordId {
    text: String,
    up: usize,
    segments: Vec<Segment>,
}

impl RecordId {
    /// Parses `1/id` for values selected by `path`; `field` names it in errors. The id must be
    /// outside the value (at least one level up), at most at the document root, and one value
    /// (no `*`).
    pub fn parse(text: &str, path: &Pointer, field: &str) -> Result<Self, ConfigError> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (count, rest) = text.split_at(digits);
        let shape = "must be a relative JSON pointer such as 1/id (levels up from the value, then a JSON pointer)";
        let up = match count {
            "0" => {
                return Err(ConfigError::new(
                    field,
                    "must go up at least 1 level: the id cannot be inside the encrypted value",
                ))
            }
            _ if count.is_empty() || count.starts_with('0') => return Err(ConfigError::new(field, shape)),
            _ => count.parse::<usize>().map_err(|_| ConfigError::new(field, shape))?,
        };
        if rest.starts_with('#') {
            return Err(ConfigError::new(
                field,
                "the # form (member name or index) is not supported: name an id member",
            ));
        }
        if rest.is_empty() {
            return Err(ConfigError::new(field, "must name a member below the ancestor, such as 1/id"));
        }
        let pointer = Pointer::parse(rest, field).map_err(|_| ConfigError::new(field, shape))?;
        if pointer.segments.contains(&Segment::Any) {
            return Err(ConfigError::new(field, "must select one value: * is not allowed"));
        }
        if up > path.segments.len() {
            return Err(ConfigError::new(
                field,
                format!("goes up {up} levels, above the document root of {}", path.as_str()),
            ));
        }
        Ok(Self { text: text.to_string(), up, segments: pointer.segments })
    }

    /// The relative pointer as written in config.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The absolute pointer the id has for values selected by `path` (for overlap checks).
    pub fn absolute(&self, path: &Pointer) -> Pointer {
        let keep = path.segments.len().saturating_sub(self.up);
        let mut segments: Vec<Segment> = path.segments.iter().take(keep).cloned().collect();
        segments.extend(self.segments.iter().cloned());
        Pointer { text: format!("{} + {}", path.as_str(), self.text), segments }
    }

    /// The id's span within `record` when it is exactly one string or number.
    fn resolve(&self, record: &Node<'_>) -> Option<Range<usize>> {
        let mut at = record;
        for segment in &self.segments {
            let Segment::Name(name, index) = segment else { return None };
            at = match &at.kind {
                Kind::Object(members) => {
                    let mut hits = members.iter().filter(|(member, _)| member == name).map(|(_, child)| child);
                    let one = hits.next()?;
                    // Duplicate names make the id ambiguous: the upstream may keep either.
                    if hits.next().is_some() {
                        return None;
                    }
                    one
                }
                Kind::Array(items) => items.get((*index)?)?,
                Kind::String | Kind::Scalar | Kind::Opaque => return None,
            };
        }
        // The caller checks that a scalar is a string or a number.
        match at.kind {
            Kind::String | Kind::Scalar => Some(at.span.clone()),
            Kind::Object(_) | Kind::Array(_) | Kind::Opaque => None,
        }
    }
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

    /// The compiled segments, from the document root.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The paths from the document root that finding this pointer's values (and, with
    /// `record`, their record ids) walks: what [`super::json::parse_for`] must build.
    pub fn reach(&self, record: Option<&RecordId>) -> Vec<Vec<Segment>> {
        let mut paths = vec![self.segments.clone()];
        paths.extend(record.map(|record| record.absolute(self).segments));
        paths
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
        self.find_in_records(root, None)
    }

    /// Every value the pointer selects in `root`, with each value's record id when `record`
    /// is given.
    pub fn find_in_records(&self, root: &Node<'_>, record: Option<&RecordId>) -> Found {
        let mut walk = Walk { record, ancestors: Vec::new(), found: Found::default() };
        walk.visit(root, &self.segments);
        walk.found
    }
}

/// One traversal; `ancestors` holds the containers above the node being visited.
struct Walk<'p, 'n, 'b> {
    record: Option<&'p RecordId>,
    ancestors: Vec<&'n Node<'b>>,
    found: Found,
}

impl<'n, 'b> Walk<'_, 'n, 'b> {
    fn visit(&mut self, node: &'n Node<'b>, segments: &[Segment]) {
        let Some((segment, rest)) = segments.split_first() else {
            self.found.values.push(node.span.clone());
            if let Some(record) = self.record {
                let holder = self.ancestors.len().checked_sub(record.up).and_then(|i| self.ancestors.get(i));
                self.found.records.push(holder.and_then(|holder| record.resolve(holder)));
            }
            return;
        };
        self.ancestors.push(node);
        match (&node.kind, segment) {
            (Kind::Object(members), Segment::Any) => members.iter().for_each(|(_, child)| self.visit(child, rest)),
            (Kind::Array(items), Segment::Any) => items.iter().for_each(|child| self.visit(child, rest)),
            (Kind::Object(members), Segment::Name(name, _)) => {
                let mut hit = false;
                for (_, child) in members.iter().filter(|(member, _)| member == name) {
                    hit = true;
                    self.visit(child, rest);
                }
                self.found.missing |= !hit;
            }
            (Kind::Array(items), Segment::Name(_, index)) => match index.and_then(|i| items.get(i)) {
                Some(child) => self.visit(child, rest),
                None => self.found.missing = true,
            },
            // Opaque: never on a path the parse was given (json::parse_for).
            (Kind::String | Kind::Scalar | Kind::Opaque, _) => self.found.missing = true,
        }
        self.ancestors.pop();
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
    fn record_ids_are_found_relative_to_each_value() {
        let body =
            r#"{"id":0,"users":[{"id":"a","email":"x","c":{"email":"y"}},{"email":"z"},{"id":1,"id":2,"email":"w"}]}"#;
        let root = parse(body.as_bytes()).unwrap();
        let ids = |path: &str, record: &str| {
            let path = Pointer::parse(path, "p").unwrap();
            let record = RecordId::parse(record, &path, "r").unwrap();
            let found = path.find_in_records(&root, Some(&record));
            assert_eq!(found.values.len(), found.records.len());
            found.records.iter().map(|r| r.clone().map(|r| &body[r])).collect::<Vec<_>>()
        };
        // Each user's own id; none for a user without one or with two.
        assert_eq!(ids("/users/*/email", "1/id"), [Some(r#""a""#), None, None]);
        assert_eq!(ids("/users/*/c/email", "2/id"), [Some(r#""a""#)]);
        assert_eq!(ids("/users/*/email", "3/id"), [Some("0"), Some("0"), Some("0")]);
        assert_eq!(ids("/users/0/email", "2/0/id"), [Some(r#""a""#)]);
        // An object is no id.
        assert_eq!(ids("/users/0/email", "1/c"), [None]);
        // Without a record, no record spans.
        assert!(Pointer::parse("/id", "p").unwrap().find(&root).records.is_empty());
        let path = Pointer::parse("/users/*/email", "p").unwrap();
        let absolute = RecordId::parse("1/id", &path, "r").unwrap().absolute(&path);
        assert!(absolute.overlaps(&Pointer::parse("/users/3/id", "p").unwrap()));
        assert!(!absolute.overlaps(&path));
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
