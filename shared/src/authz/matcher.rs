//! String matchers for every value list: Istio's forms (`abc`, `abc*`, `*abc`, `*`), path
//! templates (`/files/{*}/meta`, `/docs/{**}`), and Palisade's typed forms (exact, prefix,
//! suffix, glob, regex). All are compiled at configure time.
//!
//! Globs: `*` matches any run of characters within one `/`-separated segment, `**` any run
//! across segments. They are matched directly (no regex): the set of input positions reachable
//! after each token, so a match costs tokens x length, never backtracking.

use regex_lite::Regex;

use super::config::ValueConfig;
use crate::config::ConfigError;
use crate::route::full_match_regex;

/// How the values of one field are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatchOptions {
    /// Compare ASCII case-insensitively (hosts).
    pub ignore_case: bool,
    /// Accept Istio path templates `{*}` and `{**}` in plain strings (paths).
    pub path_templates: bool,
    /// Plain strings are Istio peer principals: `spiffe://` is implied when no scheme is given.
    pub spiffe: bool,
    /// `*` asks only that the value be there, empty or not: a header's presence, which Istio
    /// translates to Envoy's `present_match` (elsewhere `*` is any non-empty value).
    pub presence: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Istio's `*`: any non-empty value.
    Present,
    /// A header's `*`: any value, empty included.
    Any,
    Glob(Vec<GlobToken>),
    Regex(Regex),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobToken {
    Literal(String),
    /// `*`: any run without `/`.
    Star,
    /// `**`: any run.
    DoubleStar,
}

/// One compiled value pattern.
#[derive(Debug, Clone)]
pub struct StringMatcher {
    kind: Kind,
    ignore_case: bool,
}

impl StringMatcher {
    /// Compiles one configured value; `field` names it in errors.
    pub fn compile(config: &ValueConfig, field: &str, options: MatchOptions) -> Result<Self, ConfigError> {
        let text = match config {
            ValueConfig::Istio(text)
            | ValueConfig::Exact(text)
            | ValueConfig::Prefix(text)
            | ValueConfig::Suffix(text)
            | ValueConfig::Glob(text)
            | ValueConfig::Regex(text) => text,
        };
        if text.is_empty() {
            return Err(ConfigError::new(field, "must not be empty"));
        }
        let case = if options.ignore_case { "(?i)" } else { "" };
        let kind = match config {
            ValueConfig::Istio(text) => istio_kind(text, field, options)?,
            ValueConfig::Exact(text) => Kind::Exact(text.clone()),
            ValueConfig::Prefix(text) => Kind::Prefix(text.clone()),
            ValueConfig::Suffix(text) => Kind::Suffix(text.clone()),
            ValueConfig::Glob(text) => Kind::Glob(glob_tokens(text)),
            ValueConfig::Regex(text) => Kind::Regex(full_match_regex(&format!("{case}{text}"), field)?),
        };
        Ok(Self { kind, ignore_case: options.ignore_case })
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        let eq = |a: &str, b: &str| if self.ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
        match &self.kind {
            Kind::Exact(exact) => eq(value, exact),
            Kind::Prefix(prefix) => value.get(..prefix.len()).is_some_and(|head| eq(head, prefix)),
            Kind::Suffix(suffix) => {
                value.len() >= suffix.len() && value.get(value.len() - suffix.len()..).is_some_and(|t| eq(t, suffix))
            }
            Kind::Present => !value.is_empty(),
            Kind::Any => true,
            Kind::Glob(tokens) => glob_matches(tokens, value.as_bytes(), self.ignore_case),
            Kind::Regex(regex) => regex.is_match(value),
        }
    }
}

fn istio_kind(text: &str, field: &str, options: MatchOptions) -> Result<Kind, ConfigError> {
    if text == "*" {
        return Ok(if options.presence { Kind::Any } else { Kind::Present });
    }
    if options.path_templates && (text.contains("{*}") || text.contains("{**}")) {
        let glob = text.replace("{**}", "\u{0}").replace("{*}", "\u{1}");
        if glob.contains('*') || glob.contains('{') || glob.contains('}') {
            return Err(ConfigError::new(field, "a path template allows only {*} and {**} as wildcards"));
        }
        let glob = glob.replace('\u{0}', "**").replace('\u{1}', "*");
        return Ok(Kind::Glob(glob_tokens(&glob)));
    }
    let spiffe = |s: &str| {
        if options.spiffe && !s.contains("://") {
            format!("spiffe://{s}")
        } else {
            s.to_string()
        }
    };
    match (text.strip_prefix('*'), text.strip_suffix('*')) {
        (_, Some(prefix)) if !prefix.contains('*') => Ok(Kind::Prefix(spiffe(prefix))),
        (Some(suffix), _) if !suffix.contains('*') => Ok(Kind::Suffix(suffix.to_string())),
        _ if text.contains('*') => Err(ConfigError::new(
            field,
            "`*` is allowed only at the start or the end; use {\"glob\": ...} or {\"regex\": ...}",
        )),
        _ => Ok(Kind::Exact(spiffe(text))),
    }
}

/// Splits a glob into literals, `*` and `**`.
fn glob_tokens(glob: &str) -> Vec<GlobToken> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '*' {
            literal.push(c);
            continue;
        }
        if !literal.is_empty() {
            tokens.push(GlobToken::Literal(std::mem::take(&mut literal)));
        }
        if chars.peek() == Some(&'*') {
            chars.next();
            tokens.push(GlobToken::DoubleStar);
        } else {
            tokens.push(GlobToken::Star);
        }
    }
    if !literal.is_empty() {
        tokens.push(GlobToken::Literal(literal));
    }
    tokens
}

/// Tracks which input positions each token can end at; matches when the end is reachable.
fn glob_matches(tokens: &[GlobToken], input: &[u8], ignore_case: bool) -> bool {
    let mut reach = vec![false; input.len() + 1];
    let mut next = vec![false; input.len() + 1];
    if let Some(start) = reach.first_mut() {
        *start = true;
    }
    for token in tokens {
        match token {
            GlobToken::Literal(literal) => {
                let literal = literal.as_bytes();
                next.iter_mut().for_each(|slot| *slot = false);
                for (position, _) in reach.iter().enumerate().filter(|(_, reached)| **reached) {
                    let fits = input.get(position..position + literal.len()).is_some_and(|window| {
                        if ignore_case {
                            window.eq_ignore_ascii_case(literal)
                        } else {
                            window == literal
                        }
                    });
                    if let Some(slot) = next.get_mut(position + literal.len()).filter(|_| fits) {
                        *slot = true;
                    }
                }
            }
            GlobToken::Star => {
                let mut carried = false;
                for (position, (slot, reached)) in next.iter_mut().zip(&reach).enumerate() {
                    *slot = *reached || carried;
                    carried = *slot && input.get(position).is_some_and(|byte| *byte != b'/');
                }
            }
            GlobToken::DoubleStar => {
                let mut seen = false;
                for (slot, reached) in next.iter_mut().zip(&reach) {
                    seen |= *reached;
                    *slot = seen;
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
    }
    reach.last().copied().unwrap_or(false)
}

/// A value list and its negation: matches when any value of the input matches `any` (if set)
/// and no value matches `none` (if set).
#[derive(Debug, Clone, Default)]
pub struct ValueSet {
    any: Vec<StringMatcher>,
    none: Vec<StringMatcher>,
}

impl ValueSet {
    /// Compiles `values` and `not_values` found at `field` / `not_field`.
    pub fn compile(
        values: &[ValueConfig],
        not_values: &[ValueConfig],
        (field, not_field): (&str, &str),
        options: MatchOptions,
    ) -> Result<Self, ConfigError> {
        Ok(Self { any: compile_list(values, field, options)?, none: compile_list(not_values, not_field, options)? })
    }

    /// Whether neither list is set.
    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.none.is_empty()
    }

    /// Whether the input values satisfy both lists; an absent value satisfies only the negation.
    /// `values` yields the input's values afresh on each call.
    pub fn matches<'a, I: Iterator<Item = &'a str>>(&self, values: impl Fn() -> I) -> bool {
        let hit = |list: &[StringMatcher]| values().any(|v| list.iter().any(|m| m.matches(v)));
        (self.any.is_empty() || hit(&self.any)) && (self.none.is_empty() || !hit(&self.none))
    }
}

/// Compiles a list of values, naming each by index.
pub fn compile_list(
    values: &[ValueConfig],
    field: &str,
    options: MatchOptions,
) -> Result<Vec<StringMatcher>, ConfigError> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| StringMatcher::compile(value, &format!("{field}[{i}]"), options))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(value: ValueConfig, options: MatchOptions) -> StringMatcher {
        StringMatcher::compile(&value, "v", options).unwrap()
    }

    fn istio(text: &str) -> StringMatcher {
        compile(ValueConfig::Istio(text.into()), MatchOptions::default())
    }

    #[test]
    fn istio_forms() {
        let table: [(&str, &str, bool); 12] = [
            ("admin", "admin", true),
            ("admin", "Admin", false),
            ("admin", "admins", false),
            ("/api/*", "/api/", true),
            ("/api/*", "/api/v1/x", true),
            ("/api/*", "/api", false),
            ("*/info", "/a/b/info", true),
            ("*/info", "/a/b/infos", false),
            ("*", "x", true),
            ("*", "", false),
            ("a", "", false),
            ("é*", "éa", true),
        ];
        for (pattern, value, expected) in table {
            assert_eq!(istio(pattern).matches(value), expected, "{pattern} vs {value}");
        }
    }

    #[test]
    fn typed_forms_and_globs() {
        let table: [(ValueConfig, &str, bool); 16] = [
            (ValueConfig::Exact("a*".into()), "a*", true),
            (ValueConfig::Exact("a*".into()), "ab", false),
            (ValueConfig::Prefix("/api".into()), "/apix", true),
            (ValueConfig::Suffix(".json".into()), "/x.json", true),
            (ValueConfig::Suffix(".json".into()), "json", false),
            (ValueConfig::Glob("/api/*/users".into()), "/api/v1/users", true),
            (ValueConfig::Glob("/api/*/users".into()), "/api/v1/v2/users", false),
            (ValueConfig::Glob("/api/*/users".into()), "/api//users", true),
            (ValueConfig::Glob("/api/**".into()), "/api/a/b/c", true),
            (ValueConfig::Glob("/api/**".into()), "/api", false),
            (ValueConfig::Glob("/a.b/*".into()), "/aXb/c", false),
            (ValueConfig::Glob("/**/secret".into()), "/x/y/secret", true),
            (ValueConfig::Glob("team-*".into()), "team-red", true),
            (ValueConfig::Regex("/users/[0-9]+".into()), "/users/42", true),
            (ValueConfig::Regex("/users/[0-9]+".into()), "/users/42/x", false),
            (ValueConfig::Regex("a|b".into()), "ab", false),
        ];
        for (config, value, expected) in table {
            let label = format!("{config:?} vs {value}");
            assert_eq!(compile(config, MatchOptions::default()).matches(value), expected, "{label}");
        }
    }

    #[test]
    fn globs_tokenize_and_never_backtrack() {
        use GlobToken::*;
        assert_eq!(glob_tokens("/a/*/b/**"), [Literal("/a/".into()), Star, Literal("/b/".into()), DoubleStar]);
        assert_eq!(glob_tokens("***"), [DoubleStar, Star]);
        let many = compile(ValueConfig::Glob("/**a**a**a**a**a**a**b".into()), MatchOptions::default());
        assert!(!many.matches(&format!("/{}", "a".repeat(5000))));
        assert!(many.matches("/aaaaaab"));
        let star = compile(ValueConfig::Glob("/*".into()), MatchOptions::default());
        assert!(star.matches("/") && star.matches("/é") && !star.matches("/a/"));
        let empty_segment = compile(ValueConfig::Glob("*".into()), MatchOptions::default());
        assert!(empty_segment.matches("") && !empty_segment.matches("a/b"));
    }

    #[test]
    fn path_templates() {
        let opts = MatchOptions { path_templates: true, ..MatchOptions::default() };
        let one = compile(ValueConfig::Istio("/files/{*}/meta".into()), opts);
        assert!(one.matches("/files/a/meta"));
        assert!(!one.matches("/files/a/b/meta"));
        let many = compile(ValueConfig::Istio("/docs/{**}".into()), opts);
        assert!(many.matches("/docs/a/b"));
        let err = StringMatcher::compile(&ValueConfig::Istio("/a/{*}/*".into()), "p", opts).unwrap_err();
        assert_eq!(err.to_string(), "p: a path template allows only {*} and {**} as wildcards");
    }

    #[test]
    fn hosts_ignore_case_and_principals_imply_spiffe() {
        let host = MatchOptions { ignore_case: true, ..MatchOptions::default() };
        assert!(compile(ValueConfig::Istio("*.Example.com".into()), host).matches("API.example.COM"));
        assert!(compile(ValueConfig::Glob("*.example.com".into()), host).matches("API.EXAMPLE.com"));
        assert!(compile(ValueConfig::Regex("api\\.example\\.com".into()), host).matches("API.example.com"));
        let spiffe = MatchOptions { spiffe: true, ..MatchOptions::default() };
        let istio_form = compile(ValueConfig::Istio("cluster.local/ns/prod/sa/web".into()), spiffe);
        assert!(istio_form.matches("spiffe://cluster.local/ns/prod/sa/web"));
        assert!(!istio_form.matches("cluster.local/ns/prod/sa/web"));
        let full = compile(ValueConfig::Istio("spiffe://cluster.local/ns/prod/*".into()), spiffe);
        assert!(full.matches("spiffe://cluster.local/ns/prod/sa/web"));
        assert!(!full.matches("spiffe://cluster.local/ns/production/sa/web"));
        assert!(compile(ValueConfig::Istio("*/sa/web".into()), spiffe).matches("spiffe://td/ns/x/sa/web"));
    }

    #[test]
    fn value_sets_combine_any_and_none() {
        let set = ValueSet::compile(
            &[ValueConfig::Istio("/api/*".into())],
            &[ValueConfig::Istio("/api/admin*".into())],
            ("paths", "notPaths"),
            MatchOptions::default(),
        )
        .unwrap();
        assert!(set.matches(|| ["/api/users"].into_iter()));
        assert!(!set.matches(|| ["/api/admin/x"].into_iter()));
        assert!(!set.matches(|| ["/web"].into_iter()));
        assert!(!set.matches(std::iter::empty));
        let only_not =
            ValueSet::compile(&[], &[ValueConfig::Istio("x".into())], ("a", "b"), MatchOptions::default()).unwrap();
        assert!(only_not.matches(std::iter::empty), "an absent value is not one of the excluded");
    }

    #[test]
    fn rejects_bad_patterns() {
        for (config, problem) in [
            (
                ValueConfig::Istio("a*b".into()),
                "v: `*` is allowed only at the start or the end; use {\"glob\": ...} or {\"regex\": ...}",
            ),
            (ValueConfig::Istio("".into()), "v: must not be empty"),
            (ValueConfig::Regex("(".into()), "v: invalid regex"),
        ] {
            let err = StringMatcher::compile(&config, "v", MatchOptions::default()).unwrap_err().to_string();
            assert!(err.starts_with(problem), "{err}");
        }
    }
}
