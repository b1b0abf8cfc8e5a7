//! A JSON Schema `pattern`, compiled once at load.
//!
//! regex-lite (chosen for its size) matches with a PikeVM, which walks every repetition of a
//! bounded count as its own state: `^[A-Z0-9-]{3,32}$` on a 20-character value costs thousands
//! of steps, and was a third of the body check's instructions. The shape of most ID patterns,
//! an anchored bracket class of literal characters and ranges with a count, is therefore
//! checked directly; every other pattern, and any class with escapes, negation, nesting or set
//! operations, goes to regex-lite. Both agree on every input (tested against regex-lite).

use regex_lite::Regex;

/// A compiled `pattern`.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `^[ranges]{min,max}$`: the whole value is `min..=max` characters, each in a range.
    Class { ranges: Vec<(char, char)>, min: usize, max: Option<usize> },
    /// Anything else.
    Regex(Regex),
}

impl Pattern {
    /// Compiles `pattern` (regex-lite syntax); the error is regex-lite's.
    pub fn new(pattern: &str) -> Result<Self, regex_lite::Error> {
        // Compiled even when the fast form applies, so both accept the same patterns.
        let regex = Regex::new(pattern)?;
        Ok(anchored_class(pattern).unwrap_or(Pattern::Regex(regex)))
    }

    /// Whether `value` matches (anywhere, as JSON Schema's `pattern` is unanchored).
    pub fn is_match(&self, value: &str) -> bool {
        match self {
            Pattern::Class { ranges, min, max } => {
                let mut count = 0;
                for c in value.chars() {
                    if !ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) {
                        return false;
                    }
                    count += 1;
                }
                count >= *min && max.is_none_or(|max| count <= max)
            }
            Pattern::Regex(regex) => regex.is_match(value),
        }
    }
}

/// `^[...]` + optional count + `$`, or `None` for any other shape.
fn anchored_class(pattern: &str) -> Option<Pattern> {
    let body = pattern.strip_prefix("^[")?.strip_suffix('$')?;
    let (class, count) = body.split_once(']')?;
    if class.is_empty() || class.starts_with('^') || class.contains(['\\', '[', '&', '~']) || class.contains("--") {
        return None;
    }
    let (min, max) = count_of(count)?;
    let chars: Vec<char> = class.chars().collect();
    let mut ranges = Vec::new();
    let mut i = 0;
    while let Some(&lo) = chars.get(i) {
        match (chars.get(i + 1), chars.get(i + 2)) {
            (Some('-'), Some(&hi)) => {
                if hi < lo {
                    return None;
                }
                ranges.push((lo, hi));
                i += 3;
            }
            _ => {
                ranges.push((lo, lo));
                i += 1;
            }
        }
    }
    Some(Pattern::Class { ranges, min, max })
}

/// The repetition after the class: nothing, `+`, `*`, `?`, `{n}`, `{m,}` or `{m,n}`.
fn count_of(count: &str) -> Option<(usize, Option<usize>)> {
    match count {
        "" => Some((1, Some(1))),
        "+" => Some((1, None)),
        "*" => Some((0, None)),
        "?" => Some((0, Some(1))),
        _ => {
            let inner = count.strip_prefix('{')?.strip_suffix('}')?;
            let number = |s: &str| s.parse::<usize>().ok().filter(|_| s.bytes().all(|b| b.is_ascii_digit()));
            match inner.split_once(',') {
                None => number(inner).map(|n| (n, Some(n))),
                Some((m, "")) => number(m).map(|m| (m, None)),
                Some((m, n)) => {
                    let (m, n) = (number(m)?, number(n)?);
                    (m <= n).then_some((m, Some(n)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATTERNS: &[&str] = &[
        "^[A-Z0-9-]{3,32}$",
        "^[a-z]+$",
        "^[a-z0-9_]*$",
        "^[ab]?$",
        "^[0-9]{4}$",
        "^[0-9]{2,}$",
        "^[-a]{1,2}$",
        "^[a-]{1,2}$",
        "^[é-ü]{1,3}$",
        // Not the fast form: regex-lite decides.
        "^[^a-z]+$",
        "^[\\d]+$",
        "^[a-z]+",
        "[a-z]+$",
        "^[a-z]+$|^x$",
        "^[a-z]{2,3}?$",
        "^[[:alpha:]]+$",
        "^[a-z&&[^x]]+$",
        "^[a-z]{ 2}$",
    ];

    /// Every string over a small alphabet up to length 4, plus longer and odd ones.
    fn inputs() -> Vec<String> {
        let alphabet = ['a', 'b', 'z', 'A', 'Z', '0', '9', '-', '_', 'x', 'é', 'ü', '\n', ' '];
        let mut all = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            frontier = frontier.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            all.extend(frontier.iter().cloned());
        }
        all.extend(["SKU-00001-WIDGET-BLUE", &"A".repeat(32), &"A".repeat(33), "abc\n", "ab", "aé"].map(String::from));
        all
    }

    #[test]
    fn the_fast_form_agrees_with_regex_lite_on_every_input() {
        let inputs = inputs();
        for pattern in PATTERNS {
            let Ok(compiled) = Pattern::new(pattern) else {
                continue;
            };
            let regex = Regex::new(pattern).unwrap();
            for input in &inputs {
                assert_eq!(compiled.is_match(input), regex.is_match(input), "{pattern:?} on {input:?}");
            }
        }
    }

    #[test]
    fn only_plain_anchored_classes_take_the_fast_form() {
        let fast = |p: &str| matches!(Pattern::new(p), Ok(Pattern::Class { .. }));
        assert!(fast("^[A-Z0-9-]{3,32}$") && fast("^[a-z]+$") && fast("^[0-9]{4}$") && fast("^[a-]{1,2}$"));
        for slow in ["^[^a-z]+$", "^[\\d]+$", "^[a-z]+", "^[a-z]+$|^x$", "^[[:alpha:]]+$", "^[a-z]{3,2}$", "^[z-a]$"] {
            assert!(!fast(slow), "{slow}");
        }
        assert!(Pattern::new("^[a-z").is_err(), "invalid patterns are still refused");
    }
}
