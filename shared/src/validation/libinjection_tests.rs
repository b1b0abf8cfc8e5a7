//! The libinjection detectors against upstream: the vendored, patched libinjectionrs gives
//! the verdicts upstream 0.1.1 gave (recorded in `tests/data/libinjection-0.1.1-verdicts.txt`),
//! and our pre-checks never skip a string the detectors flag.

use super::injection::{is_plain_word, may_be_markup};

const CORPORA: [(&str, &str); 4] = [
    ("sqli.txt", include_str!("../../tests/data/sqli.txt")),
    ("xss.txt", include_str!("../../tests/data/xss.txt")),
    ("benign.txt", include_str!("../../tests/data/benign.txt")),
    ("known_false_positives.txt", include_str!("../../tests/data/known_false_positives.txt")),
];
const UPSTREAM: &str = include_str!("../../tests/data/libinjection-0.1.1-verdicts.txt");

/// SQL and HTML fragments the random corpus is built from.
const FRAGMENTS: &[&str] = &[
    "select",
    "union",
    "all",
    "from",
    "where",
    "or",
    "and",
    "not",
    "like",
    "order by",
    "1",
    "0",
    "42",
    "0x41",
    "1e5",
    ".5",
    "'",
    "\"",
    "`",
    "\\",
    "--",
    "-",
    "/*",
    "*/",
    "#",
    "(",
    ")",
    ",",
    ";",
    "=",
    "<",
    ">",
    "!",
    "|",
    "&",
    "+",
    "*",
    "/",
    "%",
    "@",
    "@@version",
    "$",
    ":",
    "?",
    "[",
    "]",
    "{",
    "}",
    "~",
    "^",
    " ",
    " ",
    "  ",
    "\t",
    "\n",
    "x",
    "abc",
    "users",
    "password",
    "sleep",
    "benchmark",
    "char",
    "concat",
    "table",
    "drop",
    "insert",
    "script",
    "img",
    "svg",
    "src",
    "href",
    "style",
    "onerror",
    "onload",
    "javascript:",
    "alert",
    "iframe",
    "<!--",
    "-->",
    "<!DOCTYPE",
    "&#x3C;",
    "&lt;",
    "xmlns",
    "O'Brien",
    "don't",
    "é",
    "à",
    "\u{a0}",
    "null",
    "true",
];

/// `count` strings of 1 to 12 fragments, from a fixed xorshift64 seed: the same on every run.
fn fragment_corpus(count: usize) -> Vec<String> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let pieces = 1 + (next() % 12) as usize;
            (0..pieces).map(|_| FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize]).collect()
        })
        .collect()
}

/// One line per verdict: SQLi (S or -), its fingerprint, XSS (X or -).
fn verdict(input: &str) -> String {
    let sqli = libinjectionrs::detect_sqli(input.as_bytes());
    assert_eq!(libinjectionrs::is_sqli(input.as_bytes()), sqli.is_injection(), "is_sqli on {input:?}");
    let xss = libinjectionrs::detect_xss(input.as_bytes()).is_injection();
    let fingerprint = sqli.fingerprint.as_ref().map(|f| f.as_str().to_string()).unwrap_or_default();
    format!("{} {fingerprint} {}", if sqli.is_injection() { 'S' } else { '-' }, if xss { 'X' } else { '-' })
}

/// FNV-1a over the verdicts of a corpus, to pin 20,000 results in one line.
fn digest<'a>(verdicts: impl Iterator<Item = &'a str>) -> u64 {
    verdicts.fold(0xcbf2_9ce4_8422_2325, |hash, line| {
        line.bytes().chain([b'\n']).fold(hash, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
    })
}

/// Every corpus line, named as in the verdict file (`sqli.txt:5`).
fn corpus_lines() -> Vec<(String, &'static str)> {
    CORPORA
        .iter()
        .flat_map(|(name, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
                .map(move |(i, line)| (format!("{name}:{}", i + 1), line))
        })
        .collect()
}

#[test]
fn patched_libinjection_gives_upstream_verdicts() {
    let expected: Vec<&str> = UPSTREAM.lines().filter(|l| !l.starts_with('#')).collect();
    let lines = corpus_lines();
    assert_eq!(expected.len(), lines.len() + 1, "one verdict per corpus line, then the random digest");
    for ((name, line), want) in lines.iter().zip(&expected) {
        assert_eq!(format!("{name} {}", verdict(line)), *want, "{line:?}");
    }
    let verdicts: Vec<String> = fragment_corpus(20_000).iter().map(|s| verdict(s)).collect();
    let flagged = verdicts.iter().filter(|v| v.starts_with('S') || v.ends_with('X')).count();
    let digest = digest(verdicts.iter().map(String::as_str));
    assert_eq!(expected.last().copied(), Some(format!("random 20000 flagged {flagged} digest {digest:016x}").as_str()));
}

/// The strings the pre-checks are tested on: every corpus line and 20,000 random fragment
/// strings, each also with `<` and `=` removed, with all but `[A-Za-z0-9_]` removed and with all
/// but letters, digits and `_` removed (non-ASCII too: `é`, and U+00A0 which is not a letter), so
/// that attack material reaches both pre-checks' "skip" side.
fn prefilter_corpus() -> Vec<String> {
    let base = corpus_lines().into_iter().map(|(_, line)| line.to_string()).chain(fragment_corpus(20_000));
    base.flat_map(|s| {
        let no_markup: String = s.chars().filter(|&c| c != '<' && c != '=').collect();
        let word: String = s.chars().filter(|&c| c.is_ascii_alphanumeric() || c == '_').collect();
        let unicode_word: String = s.chars().filter(|&c| c.is_alphanumeric() || c == '_').collect();
        [s, no_markup, word, unicode_word]
    })
    .collect()
}

#[test]
fn prefilters_never_hide_a_detection() {
    let corpus = prefilter_corpus();
    let mut skipped = (0, 0);
    for s in &corpus {
        if !may_be_markup(s) {
            skipped.0 += 1;
            assert!(!libinjectionrs::detect_xss(s.as_bytes()).is_injection(), "xss pre-check skips {s:?}");
        }
        if is_plain_word(s) {
            skipped.1 += 1;
            assert!(!libinjectionrs::detect_sqli(s.as_bytes()).is_injection(), "sqli pre-check skips {s:?}");
        }
    }
    // Not vacuous: most strings reach the "skip" side, among them ones full of attack words.
    println!("of {}: xss pre-check skips {}, sqli pre-check skips {}", corpus.len(), skipped.0, skipped.1);
    assert!(skipped.0 > corpus.len() / 3 && skipped.1 > corpus.len() / 4, "{skipped:?}");
    let attack_words = ["onerror", "javascript:", "<script", "union", "select"];
    assert!(attack_words
        .iter()
        .all(|w| corpus.iter().any(|s| !may_be_markup(s) && s.contains(w.trim_start_matches('<')))));
}

#[test]
fn prefilter_boundaries() {
    // One `<` or `=` is enough to reach the detector; the detector then decides.
    assert!(may_be_markup("<") && may_be_markup("a=b") && !may_be_markup("O'Brien said \"hi\" & left (5 > 3)"));
    assert!(libinjectionrs::detect_xss(b"x onerror=alert(1)").is_injection() && may_be_markup("x onerror=alert(1)"));
    assert!(!libinjectionrs::detect_xss(b"x onerror alert(1)").is_injection());
    assert!(is_plain_word("") && is_plain_word("1union") && !is_plain_word("1 union") && is_plain_word("Siobhán"));
    // U+00A0 and U+00E0 both hold the byte 0xA0, which libinjection reads as white space.
    assert!(!is_plain_word("1\u{a0}union") && !is_plain_word("1\u{e0}union"));
    assert!(libinjectionrs::detect_sqli(b"1union").fingerprint.is_some_and(|f| f.as_str() == "1U"));
    assert!(!libinjectionrs::detect_sqli(b"1union").is_injection(), "whitelisted: two tokens");
    for (word, fingerprint) in [("0b2union", "n1U"), ("0x1union", "1U"), ("1eunion", "nU"), ("Siobhán", "n")] {
        let result = libinjectionrs::detect_sqli(word.as_bytes());
        assert!(is_plain_word(word) && !result.is_injection(), "{word}");
        assert_eq!(result.fingerprint.as_ref().map(|f| f.as_str()), Some(fingerprint), "{word}");
    }
}
