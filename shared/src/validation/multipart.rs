//! `multipart/form-data` bodies (RFC 7578 over RFC 2046 section 5.1), read strictly so that
//! their fields can be inspected like those of a URL-encoded form.
//!
//! Frameworks hand multipart fields to applications exactly as they hand URL-encoded ones, so
//! a form check that skipped them could be bypassed by switching the content type. A body
//! that does not parse exactly (a preamble, a missing close delimiter, header folding, an
//! unknown `Content-Disposition` parameter, an encoded part) is refused rather than skipped:
//! a lenient backend parser reading what this one skipped is how WAFs are bypassed.

/// The `boundary` parameter: 1 to 70 of RFC 2046's `bchars`, not ending in a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    bytes: [u8; MAX_BOUNDARY],
    len: u8,
}

/// RFC 2046's limit on a boundary's length.
const MAX_BOUNDARY: usize = 70;

impl Boundary {
    /// The boundary of a `multipart/form-data` content type, quoted or not; `None` when it is
    /// missing, repeated or not a valid boundary.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let mut found = None;
        for param in value.split(';').skip(1) {
            let (name, raw) = param.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("boundary") {
                continue;
            }
            let raw = raw.trim();
            let text = match raw.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"')?,
                None => raw,
            };
            if found.is_some() {
                return None;
            }
            found = Some(Self::new(text.as_bytes())?);
        }
        found
    }

    fn new(text: &[u8]) -> Option<Self> {
        let valid = !text.is_empty()
            && text.len() <= MAX_BOUNDARY
            && !text.ends_with(b" ")
            && text.iter().all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(b));
        if !valid {
            return None;
        }
        let mut bytes = [0; MAX_BOUNDARY];
        bytes[..text.len()].copy_from_slice(text);
        Some(Self { bytes, len: text.len() as u8 })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// One part: its field name, its file name when it carries a file, and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` parameter.
    pub name: &'a str,
    /// The `filename` parameter, for a file.
    pub filename: Option<&'a str>,
    /// The bytes between the part's headers and the next delimiter.
    pub content: &'a [u8],
}

/// The parts of `body`, or `None` when it is not exactly a multipart body under `boundary`:
/// it must open with the first delimiter and end with the close delimiter (and at most a
/// CRLF), every part must name its field in a `form-data` disposition, and no part may use a
/// `Content-Transfer-Encoding` other than the identity ones.
pub fn parts<'a>(body: &'a [u8], boundary: &Boundary) -> Option<Vec<Part<'a>>> {
    let boundary = boundary.as_bytes();
    let mut rest = body.strip_prefix(b"--")?.strip_prefix(boundary)?;
    let mut parts = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(b"--") {
            return (after.is_empty() || after == b"\r\n").then_some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        // Every part has headers (its disposition), ended by a blank line.
        let end = find(rest, b"\r\n\r\n").filter(|_| !rest.starts_with(b"\r\n"))?;
        let (head, after_head) = (&rest[..end + 2], &rest[end + 4..]);
        let (content, next) = split_at_delimiter(after_head, boundary)?;
        parts.push(part(head, content)?);
        rest = next;
    }
}

/// The content up to the next `CRLF--boundary`, and what follows that delimiter.
fn split_at_delimiter<'a>(data: &'a [u8], boundary: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let mut from = 0;
    loop {
        let at = from + find(&data[from..], b"\r\n--")?;
        let after = &data[at + 4..];
        if let Some(next) = after.strip_prefix(boundary) {
            return Some((&data[..at], next));
        }
        from = at + 1;
    }
}

/// A part from its header block (lines ending in CRLF) and content.
fn part<'a>(head: &'a [u8], content: &'a [u8]) -> Option<Part<'a>> {
    let head = std::str::from_utf8(head).ok()?;
    let mut disposition = None;
    for line in head.split_terminator("\r\n") {
        // Folded (obsolete) and malformed header lines are refused.
        let (name, value) = line.split_once(':')?;
        if name.is_empty() || name.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'-')) {
            return None;
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-disposition") {
            if disposition.is_some() {
                return None;
            }
            disposition = Some(form_data(value)?);
        } else if name.eq_ignore_ascii_case("content-transfer-encoding")
            && !["7bit", "8bit", "binary"].iter().any(|identity| value.eq_ignore_ascii_case(identity))
        {
            return None;
        }
    }
    let (name, filename) = disposition?;
    Some(Part { name, filename, content })
}

/// `form-data; name="..."[; filename="..."]`: the name and the file name.
fn form_data(value: &str) -> Option<(&str, Option<&str>)> {
    let mut params = value.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("form-data") {
        return None;
    }
    let (mut name, mut filename) = (None, None);
    for param in params {
        let (key, raw) = param.split_once('=')?;
        let raw = raw.trim();
        let text = match raw.strip_prefix('"') {
            // Browsers percent-encode `"` and send no backslash escapes: refuse them rather
            // than guess how the backend unescapes.
            Some(quoted) => quoted.strip_suffix('"').filter(|t| !t.contains(['"', '\\']))?,
            None if !raw.is_empty() && !raw.contains(['"', '\\', ' ']) => raw,
            None => return None,
        };
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "name" => &mut name,
            "filename" => &mut filename,
            // `filename*` (RFC 5987) and anything else: not what RFC 7578 senders write.
            _ => return None,
        };
        if slot.replace(text).is_some() {
            return None;
        }
    }
    Some((name?, filename))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boundary(text: &str) -> Boundary {
        Boundary::new(text.as_bytes()).unwrap()
    }

    /// The example of RFC 7578 section 4.1 (CRLF line ends), with a text field after it.
    const BODY: &str = "--AaB03x\r\n\
        Content-Disposition: form-data; name=\"submit-name\"\r\n\r\n\
        Larry\r\n\
        --AaB03x\r\n\
        Content-Disposition: form-data; name=\"files\"; filename=\"file1.txt\"\r\n\
        Content-Type: text/plain\r\n\r\n\
        ... contents of file1.txt ...\r\n\
        --AaB03x\r\n\
        content-disposition: FORM-DATA; name=note\r\n\r\n\
        line one\r\n--not the boundary\r\n\
        --AaB03x--\r\n";

    #[test]
    fn reads_rfc_7578_parts() {
        let parts = parts(BODY.as_bytes(), &boundary("AaB03x")).unwrap();
        assert_eq!(
            parts,
            [
                Part { name: "submit-name", filename: None, content: b"Larry" },
                Part { name: "files", filename: Some("file1.txt"), content: b"... contents of file1.txt ..." },
                Part { name: "note", filename: None, content: b"line one\r\n--not the boundary" },
            ]
        );
        let empty = "--b\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--b--";
        assert_eq!(super::parts(empty.as_bytes(), &boundary("b")).unwrap()[0].content, b"");
        assert_eq!(super::parts(b"--b--", &boundary("b")), Some(vec![]));
    }

    #[test]
    fn boundaries_come_from_the_content_type() {
        let of = |value: &str| {
            Boundary::from_content_type(value).map(|b| String::from_utf8_lossy(b.as_bytes()).into_owned())
        };
        assert_eq!(of("multipart/form-data; boundary=AaB03x").as_deref(), Some("AaB03x"));
        assert_eq!(of("multipart/form-data; charset=utf-8; Boundary=\"a b:c\"").as_deref(), Some("a b:c"));
        let longest = "x".repeat(70);
        assert_eq!(of(&format!("multipart/form-data; boundary={longest}")), Some(longest.clone()));
        for bad in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=\"unterminated",
            "multipart/form-data; boundary=\"ends-in-space \"",
            "multipart/form-data; boundary=a{b}",
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; noequals",
        ] {
            assert_eq!(of(bad), None, "{bad}");
        }
        assert_eq!(of(&format!("multipart/form-data; boundary={longest}x")), None);
    }

    #[test]
    fn anything_not_exactly_multipart_is_refused() {
        let part = |headers: &str| format!("--b\r\n{headers}\r\n\r\nv\r\n--b--");
        for bad in [
            "preamble\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--".to_string(),
            "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b".to_string(),
            "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv".to_string(),
            "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--epilogue".to_string(),
            "--b\nContent-Disposition: form-data; name=a\n\nv\n--b--".to_string(),
            part("Content-Disposition: form-data"),
            part("Content-Disposition: attachment; name=a"),
            part("Content-Disposition: form-data; name=a; name=b"),
            part("Content-Disposition: form-data; name=\"a\\\"b\""),
            part("Content-Disposition: form-data; name=\"a\"; filename*=UTF-8''x.txt"),
            part("Content-Disposition: form-data; name=a; size=3"),
            part("Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b"),
            part("Content-Disposition: form-data;\r\n name=a"),
            part("Content-Disposition: form-data; name=a\r\nContent-Transfer-Encoding: base64"),
            part("Content-Type: text/plain"),
        ] {
            assert_eq!(parts(bad.as_bytes(), &boundary("b")), None, "{bad:?}");
        }
        let identity = part("Content-Disposition: form-data; name=a\r\nContent-Transfer-Encoding: 8BIT");
        assert_eq!(parts(identity.as_bytes(), &boundary("b")).unwrap()[0].name, "a");
    }
}
