//! Injection detectors (libinjection's SQLi and XSS, path traversal, CR/LF) and where they run.
//!
//! Values are checked decoded, as the application will see them: query and form values
//! percent-decoded (and, when that changes them again, decoded a second time, against
//! double-encoding), cookies percent-decoded, JSON strings unescaped. Names are checked too; a
//! finding in a name is reported without the name, so a reply never echoes the payload.

use serde::Deserialize;

use super::config::{detector_locations, InjectionConfig};
use super::json::Segment;
use super::rule::{Place, Rule, Violation};
use super::traversal::has_traversal;
use crate::config::ConfigError;
use crate::http::percent_decode;

/// Where a detector can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// The URL path (traversal only).
    Path,
    /// Query parameters.
    Query,
    /// Fields of an `application/x-www-form-urlencoded` body.
    Form,
    /// String values and keys of a JSON body, at every level.
    Json,
    /// Cookie values.
    Cookie,
    /// The headers listed in `injection.headers` (CRLF: every header).
    Header,
}

/// The detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// libinjection SQLi.
    Sqli,
    /// libinjection XSS.
    Xss,
    /// `../` and NUL bytes.
    PathTraversal,
    /// CR or LF.
    Crlf,
}

impl Detector {
    const ALL: [Detector; 4] = [Detector::Sqli, Detector::Xss, Detector::PathTraversal, Detector::Crlf];

    fn rule(self) -> Rule {
        match self {
            Detector::Sqli => Rule::Sqli,
            Detector::Xss => Rule::Xss,
            Detector::PathTraversal => Rule::PathTraversal,
            Detector::Crlf => Rule::Crlf,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Detector::Sqli => "sqli",
            Detector::Xss => "xss",
            Detector::PathTraversal => "path_traversal",
            Detector::Crlf => "crlf",
        }
    }

    /// Whether the detector fires on a decoded value.
    pub fn detects(self, value: &str) -> bool {
        match self {
            Detector::Sqli => !is_plain_word(value) && libinjectionrs::is_sqli(value.as_bytes()),
            Detector::Xss => may_be_markup(value) && libinjectionrs::detect_xss(value.as_bytes()).is_injection(),
            Detector::PathTraversal => has_traversal(value),
            Detector::Crlf => crate::byte_scan::contains_either(value.as_bytes(), b'\r', b'\n'),
        }
    }
}

/// ASCII letters, digits, `_` and non-ASCII characters (but no 0xA0 byte) only: a value
/// libinjection's SQLi detector cannot flag. Skipping these keeps ids, enum values and names
/// like `Siobhán` cheap.
///
/// Why (libinjectionrs 0.1 `sqli/tokenizer.rs` and `sqli/mod.rs`, as libinjection's C): none of
/// these bytes ends a word (`parse_word`'s delimiters include 0xA0, the one non-ASCII byte
/// libinjection counts as white space) or starts a string, comment, variable or operator, and
/// with no quote and no comment neither a quote-context pass nor a MySQL re-parse runs. So the
/// value is one word; or, when it starts with a digit, `parse_number`'s token (a number, or a
/// bareword such as `0x`, `0b` or `1e`), after a bareword `0b` possibly a number (`0b2`), then
/// one word. Its fingerprint is `w`, `1w`, `nw` or `n1w` for a word type `w` (words never get
/// libinjection's `X` type). Of these shapes, libinjection's blacklist holds only `1U`
/// (`1union`), which its whitelist clears when the input has exactly two tokens.
/// `prefilters_never_hide_a_detection` checks this on every corpus and on random SQL-heavy
/// strings reduced to such words. (The XSS pre-check is [`may_be_markup`].)
pub(super) fn is_plain_word(value: &str) -> bool {
    value.bytes().all(|b| WORD_BYTES[usize::from(b)])
}

/// The bytes [`is_plain_word`] accepts, as a table: one load per byte.
const WORD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || byte == b'_' || (byte >= 0x80 && byte != 0xA0);
        b += 1;
    }
    table
};

/// Whether libinjection's XSS detector could flag `value`: only if it holds `<` or `=`. Most
/// prose, names, ids, dates and prices hold neither.
///
/// Why (libinjectionrs 0.1 `xss/detector.rs`, `xss/html5.rs`, as libinjection's C): a value is
/// flagged only on a DOCTYPE, an opening tag name, a comment, or an attribute value that
/// follows a black attribute name. The first three come only from the tag-open state, which
/// the tokenizer enters only on `<` (`state_data`). An attribute value that follows a name is
/// reached only through `=` (`state_attribute_name`, `state_after_attribute_name`); the one
/// value a quoted context starts in follows no name, so it flags nothing.
/// `prefilters_never_hide_a_detection` checks this on every corpus and on random
/// markup-heavy strings.
pub(super) fn may_be_markup(value: &str) -> bool {
    crate::byte_scan::contains_either(value.as_bytes(), b'<', b'=')
}

/// Builds libinjection's keyword index (built on first use, about 1.5 M instructions) at
/// configuration time rather than in the first request.
pub(super) fn warm_up() {
    let _ = libinjectionrs::is_sqli(b"1 union select 1");
}

fn place(location: Location) -> Place {
    match location {
        Location::Path => Place::Path,
        Location::Query => Place::Query,
        Location::Form => Place::Form,
        Location::Json => Place::Json,
        Location::Cookie => Place::Cookie,
        Location::Header => Place::Header,
    }
}

/// An allow-list entry: a field whose value may hold code or markup (no SQLi/XSS check).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// A query parameter, form field, cookie or header by name.
    Named(Location, String),
    /// A JSON pointer; `*` matches any one segment.
    Json(Vec<String>),
}

/// Compiled `injection`.
#[derive(Debug, Clone)]
pub struct InjectionPolicy {
    enabled: [[bool; 6]; 4],
    headers: Vec<String>,
    allowed: Vec<Allowed>,
}

impl InjectionPolicy {
    /// Checks the locations, header names and allow-list.
    pub fn compile(config: &InjectionConfig, field: &str) -> Result<Self, ConfigError> {
        let mut enabled = [[false; 6]; 4];
        for detector in Detector::ALL {
            for (i, &location) in detector_locations(config, detector).iter().enumerate() {
                let at = format!("{field}.{}[{i}]", detector.name());
                let fits = match detector {
                    Detector::Sqli | Detector::Xss => location != Location::Path,
                    Detector::PathTraversal | Detector::Crlf => true,
                };
                if !fits {
                    return Err(ConfigError::new(at, format!("{} does not run on the path", detector.name())));
                }
                if let Some(slot) = enabled.get_mut(detector as usize).and_then(|row| row.get_mut(location as usize)) {
                    *slot = true;
                }
            }
        }
        for (i, header) in config.headers.iter().enumerate() {
            let valid = !header.is_empty()
                && header.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !valid {
                return Err(ConfigError::new(format!("{field}.headers[{i}]"), "must be a lower-case header name"));
            }
        }
        let allowed = config
            .allow
            .iter()
            .enumerate()
            .map(|(i, entry)| compile_allowed(entry, &format!("{field}.allow[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self { enabled, headers: config.headers.clone(), allowed })
    }

    fn on(&self, detector: Detector, location: Location) -> bool {
        self.enabled.get(detector as usize).and_then(|row| row.get(location as usize)).copied().unwrap_or(false)
    }

    /// Whether any detector runs at `location` (so the body needs scanning).
    pub fn any_at(&self, location: Location) -> bool {
        Detector::ALL.iter().any(|&d| self.on(d, location))
    }

    fn allowed_name(&self, location: Location, name: &str) -> bool {
        self.allowed.iter().any(|a| matches!(a, Allowed::Named(l, n) if *l == location && n == name))
    }

    fn allowed_pointer(&self, path: &[Segment]) -> bool {
        self.allowed.iter().any(|a| match a {
            Allowed::Json(pattern) => {
                pattern.len() == path.len()
                    && pattern.iter().zip(path).all(|(p, segment)| {
                        p == "*"
                            || match segment {
                                Segment::Key(key) => p == key,
                                Segment::Index(i) => p.parse() == Ok(*i),
                            }
                    })
            }
            Allowed::Named(..) => false,
        })
    }

    /// Runs the detectors enabled at `location` on one value; `field` is its (safe to show)
    /// name. Stops when `report` returns true.
    fn check_value(
        &self,
        location: Location,
        field: Option<&str>,
        value: &str,
        allowed: bool,
        report: &mut dyn FnMut(Violation) -> bool,
    ) -> bool {
        for detector in Detector::ALL {
            let exempt = allowed && matches!(detector, Detector::Sqli | Detector::Xss);
            if exempt || !self.on(detector, location) || !detector.detects(value) {
                continue;
            }
            let mut violation = Violation::new(detector.rule(), place(location));
            if let Some(field) = field {
                violation = violation.field(field);
            }
            if report(violation) {
                return true;
            }
        }
        false
    }

    /// Checks raw `name=value` pairs (a query string or a form body).
    pub fn check_pairs(&self, location: Location, raw: &str, report: &mut dyn FnMut(Violation) -> bool) -> bool {
        if !self.any_at(location) {
            return false;
        }
        for (raw_name, raw_value) in crate::http::query_pairs(raw) {
            let name = percent_decode(raw_name, true);
            if self.check_encoded(location, None, raw_name, &name, false, report) {
                return true;
            }
            let value = percent_decode(raw_value, true);
            let allowed = self.allowed_name(location, &name);
            if self.check_encoded(location, Some(&name), raw_value, &value, allowed, report) {
                return true;
            }
        }
        false
    }

    /// Checks a field that is not percent-encoded (a multipart part): its name, its file name
    /// (as a value of the field) and its text content (`None` for a file's bytes).
    pub fn check_field(
        &self,
        location: Location,
        name: &str,
        filename: Option<&str>,
        content: Option<&str>,
        report: &mut dyn FnMut(Violation) -> bool,
    ) -> bool {
        if !self.any_at(location) {
            return false;
        }
        if self.check_encoded(location, None, name, name, false, report) {
            return true;
        }
        let allowed = self.allowed_name(location, name);
        filename
            .into_iter()
            .chain(content)
            .any(|value| self.check_encoded(location, Some(name), value, value, allowed, report))
    }

    /// Checks one percent-encoded value: traversal on the raw form (it decodes every layer
    /// itself), the others on the decoded form and, if decoding again changes it, on that too.
    fn check_encoded(
        &self,
        location: Location,
        field: Option<&str>,
        raw: &str,
        decoded: &str,
        allowed: bool,
        report: &mut dyn FnMut(Violation) -> bool,
    ) -> bool {
        if self.on(Detector::PathTraversal, location) && has_traversal(raw) {
            let mut violation = Violation::new(Rule::PathTraversal, place(location));
            if let Some(field) = field {
                violation = violation.field(field);
            }
            if report(violation) {
                return true;
            }
        }
        let without_traversal = |policy: &Self, value: &str, report: &mut dyn FnMut(Violation) -> bool| {
            let mut filtered = |v: Violation| v.rule != Rule::PathTraversal && report(v);
            policy.check_value(location, field, value, allowed, &mut filtered)
        };
        if without_traversal(self, decoded, report) {
            return true;
        }
        if decoded.contains('%') {
            let twice = percent_decode(decoded, false);
            if twice != decoded && without_traversal(self, &twice, report) {
                return true;
            }
        }
        false
    }

    /// Checks the URL path for traversal.
    pub fn check_path(&self, path: &str, report: &mut dyn FnMut(Violation) -> bool) -> bool {
        self.on(Detector::PathTraversal, Location::Path)
            && has_traversal(path)
            && report(Violation::new(Rule::PathTraversal, Place::Path))
    }

    /// Checks cookie values (percent-decoded) and names.
    pub fn check_cookies(&self, headers: &crate::http::Headers, report: &mut dyn FnMut(Violation) -> bool) -> bool {
        if !self.any_at(Location::Cookie) {
            return false;
        }
        for cookie in headers.get_all("cookie") {
            for (name, raw) in crate::http::cookie_pairs(cookie) {
                if self.check_value(Location::Cookie, None, name, false, report) {
                    return true;
                }
                let value = percent_decode(raw, false);
                let allowed = self.allowed_name(Location::Cookie, name);
                if self.check_encoded(Location::Cookie, Some(name), raw, &value, allowed, report) {
                    return true;
                }
            }
        }
        false
    }

    /// Checks the selected headers, and every header for CR/LF when enabled.
    pub fn check_headers(&self, headers: &crate::http::Headers, report: &mut dyn FnMut(Violation) -> bool) -> bool {
        if self.on(Detector::Crlf, Location::Header) {
            for (name, value) in headers.iter() {
                if Detector::Crlf.detects(value) && report(Violation::new(Rule::Crlf, Place::Header).field(name)) {
                    return true;
                }
            }
        }
        for name in &self.headers {
            let allowed = self.allowed_name(Location::Header, name);
            for value in headers.get_all(name) {
                let mut not_crlf = |v: Violation| v.rule != Rule::Crlf && report(v);
                if self.check_value(Location::Header, Some(name), value, allowed, &mut not_crlf) {
                    return true;
                }
            }
        }
        false
    }

    /// Checks one JSON string (a key, or a value at `path`).
    pub fn check_json(
        &self,
        path: &[Segment],
        role: super::json::StrRole,
        value: &str,
        report: &mut dyn FnMut(Violation) -> bool,
    ) -> bool {
        let mut with_pointer = |v: Violation| {
            // Rendered only for a finding: most strings have none.
            let pointer = super::json::pointer(path);
            let at = if pointer.is_empty() { "/".to_string() } else { pointer };
            let at = match role {
                super::json::StrRole::Key => format!("{at}: key"),
                super::json::StrRole::Value => at,
            };
            report(v.errors(vec![at]))
        };
        let allowed = role == super::json::StrRole::Value && self.allowed_pointer(path);
        self.check_value(Location::Json, None, value, allowed, &mut with_pointer)
    }
}

fn compile_allowed(entry: &str, field: &str) -> Result<Allowed, ConfigError> {
    let Some((location, name)) = entry.split_once(':').filter(|(_, name)| !name.is_empty()) else {
        return Err(ConfigError::new(field, "must be location:field, e.g. query:q or json:/a/b"));
    };
    let location = match location {
        "query" => Location::Query,
        "form" => Location::Form,
        "cookie" => Location::Cookie,
        "header" => Location::Header,
        "json" => {
            let Some(pointer) = name.strip_prefix('/') else {
                return Err(ConfigError::new(field, "a json field must be a JSON pointer starting with /"));
            };
            let segments = pointer.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
            return Ok(Allowed::Json(segments));
        }
        _ => return Err(ConfigError::new(field, "location must be query, form, cookie, header or json")),
    };
    let name = if location == Location::Header { name.to_ascii_lowercase() } else { name.to_string() };
    Ok(Allowed::Named(location, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

    fn policy(json: &str) -> InjectionPolicy {
        let config: InjectionConfig = serde_json::from_str(json).unwrap();
        InjectionPolicy::compile(&config, "injection").unwrap()
    }

    fn all(found: impl FnOnce(&mut dyn FnMut(Violation) -> bool) -> bool) -> Vec<(Rule, String)> {
        let mut seen = Vec::new();
        found(&mut |v: Violation| {
            seen.push((v.rule, v.errors.first().cloned().unwrap_or_else(|| v.location())));
            false
        });
        seen
    }

    #[test]
    fn query_values_are_decoded_and_named() {
        let p = policy("{}");
        let found = all(|r| p.check_pairs(Location::Query, "id=1%27%20OR%20%271%27%3D%271&q=hello", r));
        assert_eq!(found, [(Rule::Sqli, "query.id".to_string())]);
        let found = all(|r| p.check_pairs(Location::Query, "q=%3Cscript%3Ealert(1)%3C/script%3E", r));
        assert_eq!(found, [(Rule::Xss, "query.q".to_string())]);
        let double = all(|r| p.check_pairs(Location::Query, "q=%253Cscript%253Ealert(1)%253C/script%253E", r));
        assert_eq!(double, [(Rule::Xss, "query.q".to_string())], "double-encoded");
        let traversal = all(|r| p.check_pairs(Location::Query, "file=..%252f..%252fetc%252fpasswd", r));
        assert_eq!(traversal, [(Rule::PathTraversal, "query.file".to_string())]);
    }

    #[test]
    fn a_payload_in_a_name_is_not_echoed() {
        let p = policy("{}");
        let found = all(|r| p.check_pairs(Location::Query, "%3Cscript%3Ealert(1)%3C/script%3E=1", r));
        assert_eq!(found, [(Rule::Xss, "query".to_string())]);
    }

    #[test]
    fn allow_list_exempts_only_sqli_and_xss_on_that_field() {
        let p = policy(r#"{"allow":["query:html","json:/posts/*/body","cookie:prefs"]}"#);
        assert!(all(|r| p.check_pairs(Location::Query, "html=%3Cb%20onmouseover%3Dalert(1)%3Ex%3C/b%3E", r)).is_empty());
        assert_eq!(all(|r| p.check_pairs(Location::Query, "html=../../etc", r)).len(), 1, "traversal still checked");
        assert_eq!(all(|r| p.check_pairs(Location::Query, "other=%3Cscript%3Ex%3C/script%3E", r)).len(), 1);
        let path = [Segment::Key("posts".into()), Segment::Index(3), Segment::Key("body".into())];
        let xss = "<script>alert(1)</script>";
        assert!(all(|r| p.check_json(&path, super::super::json::StrRole::Value, xss, r)).is_empty());
        let other = [Segment::Key("posts".into()), Segment::Index(3), Segment::Key("title".into())];
        assert_eq!(
            all(|r| p.check_json(&other, super::super::json::StrRole::Value, xss, r)),
            [(Rule::Xss, "/posts/3/title".to_string())]
        );
        assert_eq!(
            all(|r| p.check_json(&path[..2], super::super::json::StrRole::Key, xss, r)),
            [(Rule::Xss, "/posts/3: key".to_string())],
            "keys are never allowed and never echoed"
        );
    }

    #[test]
    fn detectors_switch_per_location() {
        let p = policy(r#"{"sqli":["form"],"xss":[],"path_traversal":[],"crlf":[]}"#);
        assert!(all(|r| p.check_pairs(Location::Query, "id=1%27%20OR%20%271%27%3D%271", r)).is_empty());
        assert_eq!(all(|r| p.check_pairs(Location::Form, "id=1%27+OR+%271%27%3D%271", r)).len(), 1);
        assert!(!p.any_at(Location::Cookie));
        assert!(!p.check_path("/../etc", &mut |_| true));
    }

    #[test]
    fn cookies_headers_and_crlf() {
        let p = policy(r#"{"headers":["referer"],"crlf":["header","query"]}"#);
        let headers = Headers::from_pairs([
            ("cookie", "sid=abc; theme=%27%20UNION%20SELECT%20password%20FROM%20users--"),
            ("referer", "https://example.com/?q=<script>alert(1)</script>"),
            ("x-split", "a\r\nset-cookie: x=1"),
        ]);
        assert_eq!(all(|r| p.check_cookies(&headers, r)), [(Rule::Sqli, "cookie.theme".to_string())]);
        assert_eq!(
            all(|r| p.check_headers(&headers, r)),
            [(Rule::Crlf, "header.x-split".to_string()), (Rule::Xss, "header.referer".to_string())]
        );
        assert_eq!(all(|r| p.check_pairs(Location::Query, "to=a%0d%0aLocation:%20x", r)).len(), 1);
    }

    #[test]
    fn plain_words_skip_libinjection() {
        assert!(is_plain_word("union") && is_plain_word("user_42") && !is_plain_word("1 or 1"));
        assert!(!Detector::Sqli.detects("select"));
    }

    #[test]
    fn bad_allow_entries() {
        let cases = [
            (r#"{"allow":["path:/x"]}"#, "injection.allow[0]: location must be query, form, cookie, header or json"),
            (r#"{"allow":["query:"]}"#, "injection.allow[0]: must be location:field"),
            (r#"{"xss":["path"]}"#, "injection.xss[0]: xss does not run on the path"),
        ];
        for (json, expected) in cases {
            let config: InjectionConfig = serde_json::from_str(json).unwrap();
            let err = InjectionPolicy::compile(&config, "injection").unwrap_err().to_string();
            assert!(err.starts_with(expected), "{json}: {err}");
        }
    }
}
