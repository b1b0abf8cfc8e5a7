//! Path normalization before matching, so `/admin/../admin`, `/%61dmin` or `//admin` cannot
//! slip past a rule written for `/admin`.
//!
//! Steps, on the path without its query string:
//! 1. every `%XX` escape is decoded once; an escape that is not `%` plus two hex digits is
//!    invalid; `%2F` is invalid unless `escaped_slashes` is `decode`;
//! 2. the decoded bytes must be UTF-8 (this rejects overlong forms such as `%c0%ae`) with no
//!    control character (`%00`, CR, LF, DEL) and no `\` (raw or `%5C`);
//! 3. a `%XX` left after decoding means double encoding (`%252e`): invalid, because an upstream
//!    that decodes again would see something else than what was authorized;
//! 4. `//` merges into `/`, `.` segments go, `..` removes the previous segment; `..` above the
//!    root is invalid, and so is a `.` or `..` segment carrying a `;` parameter (`..;/`, which
//!    Tomcat and Jetty treat as `..`).
//!
//! A trailing `/` is kept. An invalid path is denied before any policy runs.

use super::config::EscapedSlashes;

/// Why a path cannot be normalized safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Does not start with `/` (also the empty path of CONNECT).
    NotAbsolute,
    /// Contains `#`.
    Fragment,
    /// A `%` not followed by two hex digits.
    InvalidEscape,
    /// `%2F` while escaped slashes are rejected.
    EncodedSlash,
    /// `\`, raw or encoded.
    Backslash,
    /// A control character, raw or encoded (`%00`).
    ControlCharacter,
    /// The decoded bytes are not UTF-8.
    InvalidUtf8,
    /// An escape survived one decoding (`%252e`).
    DoubleEncoding,
    /// `..` would leave the root.
    AboveRoot,
    /// `.` or `..` with a `;` parameter.
    DotSegmentParameter,
}

/// Normalizes `path` (query already removed) as described in the module doc.
pub fn normalize(path: &str, escaped_slashes: EscapedSlashes) -> Result<String, PathError> {
    if is_plain(path) {
        return Ok(path.to_string());
    }
    normalize_escaped(path, escaped_slashes)
}

/// The full normalization, for paths that are not plain.
fn normalize_escaped(path: &str, escaped_slashes: EscapedSlashes) -> Result<String, PathError> {
    if path.contains('#') {
        return Err(PathError::Fragment);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode(path.as_bytes(), escaped_slashes)?;
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;
    if has_escape(decoded.as_bytes()) {
        return Err(PathError::DoubleEncoding);
    }
    resolve_segments(&decoded)
}

/// Percent-encodes a normalized path for forwarding: every byte outside RFC 3986 `pchar` and
/// `/` is escaped, so a decoded `%`, `?`, `#` or space cannot change the URL's meaning upstream.
pub fn encode_for_forwarding(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The common case, already normal: absolute, no escape, backslash, control character or `#`,
/// and no empty, `.` or `..` segment (no `//` and no `/.`).
fn is_plain(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && bytes.iter().all(|&b| b >= 0x20 && b != 0x7f && b != b'%' && b != b'\\' && b != b'#')
        && !bytes.windows(2).any(|w| matches!(w, [b'/', b'/' | b'.']))
}

fn decode(bytes: &[u8], escaped_slashes: EscapedSlashes) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        let byte = if byte == b'%' {
            let (hi, lo, tail) = match rest {
                [hi, lo, tail @ ..] => (hex(*hi), hex(*lo), tail),
                _ => return Err(PathError::InvalidEscape),
            };
            rest = tail;
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::InvalidEscape);
            };
            let decoded = hi << 4 | lo;
            if decoded == b'/' && escaped_slashes == EscapedSlashes::Reject {
                return Err(PathError::EncodedSlash);
            }
            decoded
        } else {
            byte
        };
        if byte == b'\\' {
            return Err(PathError::Backslash);
        }
        if byte < 0x20 || byte == 0x7f {
            return Err(PathError::ControlCharacter);
        }
        out.push(byte);
    }
    Ok(out)
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn has_escape(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| matches!(w, [b'%', hi, lo] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit()))
}

fn resolve_segments(path: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    // The path starts with '/', so the first split item is empty and skipped like `//`.
    for segment in path.split('/') {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
            }
            _ if segment.starts_with(".;") || segment.starts_with("..;") => return Err(PathError::DotSegmentParameter),
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathError::*;

    fn norm(path: &str) -> Result<String, PathError> {
        normalize(path, EscapedSlashes::Reject)
    }

    #[test]
    fn resolves_dot_segments_and_merges_slashes() {
        for (raw, expected) in [
            ("/", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("//admin", "/admin"),
            ("/api//v1///users", "/api/v1/users"),
            ("/./admin", "/admin"),
            ("/admin/.", "/admin/"),
            ("/admin/../admin", "/admin"),
            ("/public/../admin", "/admin"),
            ("/a/b/../../admin", "/admin"),
            ("/a/b/..", "/a/"),
            ("/..a/...", "/..a/..."),
            ("/a;jsessionid=1/b", "/a;jsessionid=1/b"),
            ("/caf%C3%A9", "/café"),
        ] {
            assert_eq!(norm(raw).as_deref(), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn decodes_once_so_encoded_dots_resolve() {
        for (raw, expected) in [
            ("/%61dmin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/%2e/admin", "/admin"),
            ("/a%20b", "/a b"),
        ] {
            assert_eq!(norm(raw).as_deref(), Ok(expected), "{raw}");
        }
    }

    /// Payloads from the OWASP Path Traversal page and its encoding variants.
    #[test]
    fn owasp_path_traversal_payloads_are_resolved_or_rejected() {
        for (raw, expected) in [
            ("/../../../etc/passwd", Err(AboveRoot)),
            ("/%2e%2e%2f%2e%2e%2fetc%2fpasswd", Err(EncodedSlash)),
            ("/%2e%2e/%2e%2e/etc/passwd", Err(AboveRoot)),
            ("/..%2f..%2fetc/passwd", Err(EncodedSlash)),
            ("/%2e%2e%5c%2e%2e%5cwindows", Err(Backslash)),
            ("/..\\..\\windows\\win.ini", Err(Backslash)),
            ("/..%5c..%5cwindows", Err(Backslash)),
            ("/%252e%252e%252fetc%252fpasswd", Err(DoubleEncoding)),
            ("/%252e%252e/admin", Err(DoubleEncoding)),
            ("/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", Err(InvalidUtf8)),
            ("/%c0%af/etc", Err(InvalidUtf8)),
            ("/%e0%80%ae%e0%80%ae/etc", Err(InvalidUtf8)),
            ("/%uff0e%uff0e/etc", Err(InvalidEscape)),
            ("/etc/passwd%00.png", Err(ControlCharacter)),
            ("/etc/passwd\u{0}", Err(ControlCharacter)),
            ("/a%0d%0aSet-Cookie:x", Err(ControlCharacter)),
            ("/a%7f", Err(ControlCharacter)),
            ("/admin/..;/secret", Err(DotSegmentParameter)),
            ("/admin/.;/secret", Err(DotSegmentParameter)),
            ("/a/%", Err(InvalidEscape)),
            ("/a/%4", Err(InvalidEscape)),
            ("/a/%zz", Err(InvalidEscape)),
            ("/a#frag", Err(Fragment)),
            ("admin", Err(NotAbsolute)),
            ("", Err(NotAbsolute)),
            ("/....//....//etc/passwd", Ok("/..../..../etc/passwd".to_string())),
            ("/images/../../etc/passwd", Err(AboveRoot)),
            ("/images/%2e%2e/%2e%2e/etc/passwd", Err(AboveRoot)),
        ] {
            assert_eq!(norm(raw), expected, "{raw}");
        }
    }

    #[test]
    fn forwarding_re_encodes_what_decoding_revealed() {
        let normalized = norm("/a%20b/100%25/x%3Fy/caf%C3%A9/%23").unwrap();
        assert_eq!(normalized, "/a b/100%/x?y/café/#");
        let forwarded = encode_for_forwarding(&normalized);
        assert_eq!(forwarded, "/a%20b/100%25/x%3Fy/caf%C3%A9/%23");
        assert_eq!(norm(&forwarded), Ok(normalized));
        assert_eq!(encode_for_forwarding("/a-b_c~d/e;f=g:h@i"), "/a-b_c~d/e;f=g:h@i");
    }

    /// Random paths over an alphabet of traversal ingredients: normalizing never panics, the
    /// result has no empty, `.` or `..` segment and no backslash, and it survives forwarding.
    #[test]
    fn random_paths_normalize_to_canonical_forms() {
        const PIECES: [&str; 16] =
            ["/", ".", "..", "%2e", "%2E", "%2f", "%25", "%5c", "\\", "a", "%41", ";", "%", "%c0%ae", "%00", "%20"];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = next() % 12;
            let mut path = String::from("/");
            for _ in 0..len {
                path.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            if is_plain(&path) {
                assert_eq!(normalize_escaped(&path, EscapedSlashes::Reject).as_ref(), Ok(&path), "fast path {path}");
            }
            for mode in [EscapedSlashes::Reject, EscapedSlashes::Decode] {
                let Ok(normalized) = normalize(&path, mode) else { continue };
                accepted += 1;
                assert!(normalized.starts_with('/'), "{path} -> {normalized}");
                assert!(!normalized.contains('\\'), "{path} -> {normalized}");
                let inner = normalized.trim_end_matches('/');
                assert!(
                    inner.split('/').skip(1).all(|s| !s.is_empty() && s != "." && s != ".."),
                    "{path} -> {normalized}"
                );
                assert_eq!(normalize(&encode_for_forwarding(&normalized), mode).as_ref(), Ok(&normalized), "{path}");
            }
        }
        assert!(accepted > 1_000, "the generator must also produce valid paths ({accepted})");
    }

    #[test]
    fn escaped_slashes_decode_when_configured() {
        assert_eq!(normalize("/a%2Fb", EscapedSlashes::Decode).as_deref(), Ok("/a/b"));
        assert_eq!(normalize("/x/..%2f..%2fetc", EscapedSlashes::Decode), Err(AboveRoot));
        assert_eq!(normalize("/public/..%2Fadmin", EscapedSlashes::Decode).as_deref(), Ok("/admin"));
        assert_eq!(normalize("/a%5cb", EscapedSlashes::Decode), Err(Backslash));
        assert_eq!(norm("/a%2Fb"), Err(EncodedSlash));
    }
}
