//! HTTP/1.1 framing shared by the test client and the echo upstream; parsing itself is httparse.

use std::io::{self, BufRead, Read};

/// Largest message head (start line and headers) accepted.
pub const MAX_HEAD: usize = 256 * 1024;
/// Largest number of headers accepted in one message.
pub const MAX_HEADERS: usize = 512;

/// Reads up to the blank line that ends a message head; `None` when the peer closed first.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let limit = (MAX_HEAD + 1).saturating_sub(head.len()) as u64;
        let n = reader.take(limit).read_until(b'\n', &mut line)?;
        if n == 0 {
            return if head.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        // Tolerate blank lines before a start line (RFC 9112 section 2.2).
        if head.is_empty() && is_blank(&line) {
            continue;
        }
        head.extend_from_slice(&line);
        if is_blank(&line) {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `content-length`.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
    /// Until the peer closes (responses only).
    UntilClose,
}

/// The framing that the headers declare (RFC 9112 section 6.3: chunked wins over a length);
/// `otherwise` when they declare none. Err on a content-length that is not a number.
pub fn framing(headers: &[(String, String)], otherwise: Framing) -> Result<Framing, &'static str> {
    let chunked = values(headers, "transfer-encoding")
        .last()
        .is_some_and(|te| te.rsplit(',').next().map(str::trim) == Some("chunked"));
    if chunked {
        return Ok(Framing::Chunked);
    }
    match values(headers, "content-length").next() {
        Some(len) => len.parse().map(Framing::Length).map_err(|_| "bad content-length"),
        None => Ok(otherwise),
    }
}

/// Reads a body delimited by `framing`.
pub fn read_body(reader: &mut impl Read, framing: Framing) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    match framing {
        Framing::None => {}
        Framing::Length(len) => {
            reader.take(len).read_to_end(&mut body)?;
            if body.len() as u64 != len {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Framing::Chunked => {
            chunked_transfer::Decoder::new(reader).read_to_end(&mut body)?;
        }
        Framing::UntilClose => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok(body)
}

/// The values of a header, trimmed and lower-cased, name compared case-insensitively.
pub fn values<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_ascii_lowercase())
}

/// Header pairs from httparse, values lossily decoded (non-UTF-8 bytes become U+FFFD).
pub fn header_pairs(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect()
}
