//! Path traversal and NUL bytes, through up to three layers of percent-encoding, with `\` as a
//! separator and the overlong UTF-8 dots and slashes old IIS servers decoded.
//!
//! A value is refused when any decoding layer holds a `..` path segment (bounded by `/`, `\`,
//! the start or the end, or `..;` as Tomcat reads it) or a NUL byte. `...` and `a..b` pass.

/// Percent-decoding layers examined (`%252e` is two layers deep).
const LAYERS: usize = 3;

/// Overlong UTF-8 encodings of `.`, `/` and `\` (percent-encoded, lower case).
const OVERLONG: [&str; 6] = ["%c0%ae", "%e0%80%ae", "%c0%af", "%e0%80%af", "%c1%9c", "%c1%1c"];

/// Whether `raw` (as received, not yet decoded) holds a traversal or a NUL byte.
pub fn has_traversal(raw: &str) -> bool {
    // Without a `%` no layer decodes to anything new, and every overlong form starts with one:
    // the loop below would check this layer alone (most paths and values take this way).
    if !raw.contains('%') {
        return has_dot_dot_segment(raw) || raw.contains('\0');
    }
    in_some_layer(raw)
}

/// Decodes up to [`LAYERS`] layers, checking each.
fn in_some_layer(raw: &str) -> bool {
    let mut layer = raw.to_string();
    for _ in 0..LAYERS {
        if has_dot_dot_segment(&layer) || layer.contains('\0') || has_overlong(&layer) {
            return true;
        }
        let decoded = decode_bytes(&layer);
        if decoded == layer.as_bytes() {
            return false;
        }
        // A NUL can hide in invalid UTF-8 (`%00%ff`): check bytes before lossy conversion.
        if decoded.contains(&0) {
            return true;
        }
        layer = String::from_utf8_lossy(&decoded).into_owned();
    }
    has_dot_dot_segment(&layer) || layer.contains('\0')
}

fn has_dot_dot_segment(value: &str) -> bool {
    value.as_bytes().windows(2).any(|pair| pair == b"..")
        && value.split(['/', '\\']).any(|segment| segment == ".." || segment.starts_with("..;"))
}

fn has_overlong(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    OVERLONG.iter().any(|encoding| lower.contains(encoding))
}

/// One layer of percent-decoding (no `+`), invalid escapes kept as they are.
fn decode_bytes(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            if let (Some(hi), Some(lo)) = (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex)) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(byte);
        i += 1;
    }
    out
}

fn hex(byte: &u8) -> Option<u8> {
    (*byte as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_traversal_in_every_encoding() {
        let attacks = [
            "../etc/passwd",
            "/files/../../etc/passwd",
            "..",
            "a/..",
            "..\\windows\\win.ini",
            "a\\..\\b",
            "%2e%2e/etc/passwd",
            "%2E%2E%2Fetc",
            "..%2fetc",
            "..%5c..%5cboot.ini",
            "%252e%252e%252fetc",
            "%25252e%25252e/etc",
            "..%252f..%252fetc",
            ".%2e/x",
            "%c0%ae%c0%ae/etc",
            "..%c0%afetc",
            "/..;/admin",
            "file.txt%00.png",
            "file.txt\0.png",
            "%2500",
            "%00%ff",
        ];
        for attack in attacks {
            assert!(has_traversal(attack), "{attack}");
        }
    }

    #[test]
    fn the_shortcut_without_percent_signs_agrees_with_decoding_every_layer() {
        let pieces = ["..", ".", "/", "\\", "..;", "a", "\0", "%2e", "%2f", "%25", "%00", "%c0%ae", "%", "x/"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut value = String::new();
            for _ in 0..state % 7 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                value.push_str(pieces[(state >> 20) as usize % pieces.len()]);
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            assert_eq!(has_traversal(&value), in_some_layer(&value), "{value:?}");
        }
    }

    #[test]
    fn passes_ordinary_dots_and_percent_signs() {
        let benign = [
            "/api/v1/users",
            "wait...",
            "a..b",
            "v1..v2",
            "...",
            "/files/.hidden",
            "./relative",
            "50% off",
            "100%",
            "%zz",
            "1.5.2",
            "https://example.com/a/b",
            "C:\\Program Files\\app",
        ];
        for value in benign {
            assert!(!has_traversal(value), "{value}");
        }
    }
}
