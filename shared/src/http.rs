//! The plain-data view of a request and a response that filters hand to the core.
//!
//! Header names are lower-cased on the way in, as Envoy does (`Http::LowerCaseString`), and
//! order is kept, so a rule sees exactly what the proxy would forward.

use std::net::IpAddr;

use crate::decision::HeaderOp;

/// An ordered multimap of headers with lower-case names, as Envoy keeps them.
///
/// Names and values live in one string, each pair as four offsets into it: a map read from
/// the proxy costs two allocations whatever its size, not two per header.
#[derive(Clone, Default)]
pub struct Headers {
    /// Names and values, concatenated (removed pairs leave their text behind).
    text: String,
    /// Per pair: name start, name end, value start, value end, as offsets into `text`.
    spans: Vec<[u32; 4]>,
}

impl Headers {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from pairs, lower-casing every name.
    pub fn from_pairs<K: AsRef<str>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut headers = Self::new();
        for (name, value) in pairs {
            headers.add(name.as_ref(), value);
        }
        headers
    }

    /// An empty map with room for `capacity` pairs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { text: String::new(), spans: Vec::with_capacity(capacity) }
    }

    /// Appends an owned pair, lower-casing the name.
    pub fn push_owned(&mut self, name: String, value: String) {
        self.add(&name, value);
    }

    /// Decodes proxy-wasm's map encoding (what `proxy_get_header_map_pairs` returns: a count,
    /// then a key and a value length per pair, then each key and value followed by a NUL),
    /// lower-casing names; values that are not UTF-8 are kept lossily. The buffer becomes the
    /// map's text, so no pair is copied. A truncated encoding yields the pairs before the cut.
    pub fn from_map_encoding(mut bytes: Vec<u8>) -> Self {
        let word = |bytes: &[u8], at: usize| -> Option<usize> {
            let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
            usize::try_from(u32::from_le_bytes(raw)).ok()
        };
        let Some(count) = word(&bytes, 0) else {
            return Self::new();
        };
        let Some(data_start) = count.checked_mul(8).and_then(|n| n.checked_add(4)).filter(|n| *n <= bytes.len()) else {
            return Self::new();
        };
        let mut spans = Vec::with_capacity(count);
        let mut at = data_start;
        for i in 0..count {
            let (Some(name_len), Some(value_len)) = (word(&bytes, 4 + i * 8), word(&bytes, 8 + i * 8)) else {
                break;
            };
            let name_end = at.saturating_add(name_len);
            let value_start = name_end.saturating_add(1);
            let value_end = value_start.saturating_add(value_len);
            if value_end > bytes.len() {
                break;
            }
            let offset = |n: usize| u32::try_from(n - data_start).unwrap_or(u32::MAX);
            spans.push([offset(at), offset(name_end), offset(value_start), offset(value_end)]);
            bytes[at..name_end].make_ascii_lowercase();
            at = value_end + 1;
        }
        bytes.drain(..data_start);
        match String::from_utf8(bytes) {
            Ok(text) if spans.iter().all(|span| span.iter().all(|&n| text.is_char_boundary(n as usize))) => {
                Self { text, spans }
            }
            // Rare: a value (or name) that is not UTF-8. Rebuild pair by pair, lossily.
            Ok(text) => Self::lossy(text.as_bytes(), &spans),
            Err(err) => Self::lossy(err.as_bytes(), &spans),
        }
    }

    /// proxy-wasm's map encoding of this map after `ops` (what `proxy_set_header_map_pairs`
    /// takes), written in one pass into one allocation.
    ///
    /// Equal to encoding the map after [`Headers::apply`] when the operations are
    /// [`independent`](crate::decision::independent): a pair stays unless a `Set` or `Remove`
    /// names it, then come the values of `Set`, `Append` and absent `SetIfAbsent`, in order.
    /// Names are written as given: the proxy lower-cases them.
    pub fn encode_after_independent(&self, ops: &[&HeaderOp]) -> Vec<u8> {
        let text = self.text.as_bytes();
        let kept: Vec<(&str, &str)> = self
            .spans
            .iter()
            .filter(|span| {
                !ops.iter().any(|op| matches!(op, HeaderOp::Remove(n) | HeaderOp::Set(n, _) if named(text, span, n)))
            })
            .map(|span| self.pair(span))
            .collect();
        let added = ops.iter().filter_map(|op| match op {
            HeaderOp::Set(name, value) | HeaderOp::Append(name, value) => Some((name.as_str(), value.as_str())),
            HeaderOp::SetIfAbsent(name, value) if !self.contains(name) => Some((name.as_str(), value.as_str())),
            HeaderOp::SetIfAbsent(..) | HeaderOp::Remove(_) => None,
        });
        encode_pairs(kept.iter().copied().chain(added))
    }

    fn lossy(bytes: &[u8], spans: &[[u32; 4]]) -> Self {
        let mut headers = Self::with_capacity(spans.len());
        for &[a, b, c, d] in spans {
            let text =
                |from: u32, to: u32| String::from_utf8_lossy(bytes.get(from as usize..to as usize).unwrap_or(&[]));
            headers.add(&text(a, b), text(c, d).into_owned());
        }
        headers
    }

    fn pair(&self, span: &[u32; 4]) -> (&str, &str) {
        let [a, b, _, _] = *span;
        // Offsets are char boundaries by construction (`add`, `from_map_encoding`).
        (self.text.get(a as usize..b as usize).unwrap_or_default(), self.value(span))
    }

    fn value(&self, span: &[u32; 4]) -> &str {
        let [_, _, c, d] = *span;
        self.text.get(c as usize..d as usize).unwrap_or_default()
    }

    /// Whether the pair's name is `name`, ASCII case-insensitively; compares bytes only, so a
    /// lookup costs no string slicing for the pairs it skips.
    fn is_named(&self, span: &[u32; 4], name: &str) -> bool {
        named(self.text.as_bytes(), span, name)
    }

    /// The first value of `name`, as Envoy's `get_header_map_value` returns it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.spans.iter().find(|span| self.is_named(span, name)).map(|span| self.value(span))
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.spans.iter().filter(move |span| self.is_named(span, name)).map(|span| self.value(span))
    }

    /// Whether `name` is present at all.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a value (Envoy's `addCopy`).
    pub fn add(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        let offset = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let name_start = self.text.len();
        self.text.push_str(name);
        // ASCII case changes keep the text valid UTF-8.
        self.text[name_start..].make_ascii_lowercase();
        let name_end = self.text.len();
        self.text.push_str(&value);
        self.spans.push([offset(name_start), offset(name_end), offset(name_end), offset(self.text.len())]);
    }

    /// Replaces every value of `name` with one (Envoy's `setCopy`).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.add(name, value);
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        let text = self.text.as_bytes();
        self.spans.retain(|&[a, b, _, _]| {
            !text.get(a as usize..b as usize).is_some_and(|key| key.eq_ignore_ascii_case(name.as_bytes()))
        });
    }

    /// All pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|span| self.pair(span))
    }

    /// How many pairs (not distinct names) the map holds.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the map holds no pair.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Applies header operations in order.
    pub fn apply(&mut self, ops: &[HeaderOp]) {
        for op in ops {
            op.apply_to(self);
        }
    }
}

/// proxy-wasm's map encoding: the count, a (name length, value length) word pair per pair,
/// then each name and value followed by a NUL. The pairs are walked twice: once to size the
/// buffer, once to fill it in place.
pub fn encode_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Vec<u8> {
    let (count, text) = pairs.clone().fold((0, 0), |(n, t), (name, value)| (n + 1, t + name.len() + value.len() + 2));
    let mut out = vec![0; 4 + 8 * count + text];
    let word = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(slot) = out.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
        at + bytes.len()
    };
    let (mut lengths, mut data) = (put(0, &word(count)), 4 + 8 * count);
    for (name, value) in pairs {
        lengths = put(lengths, &word(name.len()));
        lengths = put(lengths, &word(value.len()));
        // The NUL after each is already there.
        data = put(data, name.as_bytes()) + 1;
        data = put(data, value.as_bytes()) + 1;
    }
    out
}

/// Whether the pair at `span` of `text` is named `name`, ASCII case-insensitively. Lengths
/// are compared first, from the span alone: most names differ in length.
#[inline]
fn named(text: &[u8], &[a, b, _, _]: &[u32; 4], name: &str) -> bool {
    b.wrapping_sub(a) as usize == name.len()
        && text.get(a as usize..b as usize).is_some_and(|key| key.eq_ignore_ascii_case(name.as_bytes()))
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Headers").field("pairs", &self.iter().collect::<Vec<_>>()).finish()
    }
}

/// What the core needs to know about a request, read once in the headers phase.
///
/// Request headers are unavailable to a filter after `on_http_request_headers` returns, so
/// everything a later phase needs is captured here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestView {
    /// `:method`, as sent.
    pub method: String,
    /// `:path`, including the query string, as sent.
    pub path: String,
    /// `:authority` (the host, possibly with a port).
    pub authority: String,
    /// `:scheme`.
    pub scheme: String,
    /// All headers, pseudo-headers included, lower-case names.
    pub headers: Headers,
    /// The downstream peer's address (`source.address`), when known.
    pub source_ip: Option<IpAddr>,
    /// The URI SAN of the downstream mTLS peer certificate (`connection.uri_san_peer_certificate`).
    pub peer_principal: Option<String>,
    /// The matched Envoy route's name (`xds.route_name`), when the route has one.
    pub route_name: Option<String>,
}

impl RequestView {
    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        split_query(&self.path).0
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        split_query(&self.path).1
    }

    /// The host without a port or a trailing dot (`Example.com.:8443` -> `Example.com`),
    /// compared case-insensitively by callers. `example.com.` is `example.com` to DNS and to
    /// servers such as nginx behind Envoy, so a rule about one host must hold for the other.
    pub fn host(&self) -> &str {
        let host = host_without_port(&self.authority);
        host.strip_suffix('.').unwrap_or(host)
    }
}

/// What the core needs to know about a response (upstream or local reply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseView {
    /// `:status`; 0 when the status is missing or not a number.
    pub status: u16,
    /// All headers, lower-case names.
    pub headers: Headers,
}

/// Whether `s` is an RFC 9110 token (`tchar`s only, not empty): a header or cookie name.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` holds only visible ASCII, spaces and tabs: a header value that carries no
/// CR, LF, NUL or other control character and nothing beyond ASCII.
pub fn is_visible_ascii(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Splits `/a/b?x=1` into `("/a/b", Some("x=1"))`.
pub fn split_query(path: &str) -> (&str, Option<&str>) {
    match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    }
}

/// `example.com:8443` -> `example.com`; `[::1]:80` -> `[::1]`.
pub fn host_without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Parses Envoy's `source.address` value (`1.2.3.4:5678`, `[::1]:5678`) into an IP.
pub fn parse_socket_ip(address: &str) -> Option<IpAddr> {
    if let Ok(socket) = address.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    address.parse::<IpAddr>().ok()
}

/// The client IP, with one meaning for every filter (authz's `xff_num_trusted_hops`, rate-limit's
/// `trusted_proxies`):
///
/// - `trusted_hops == 0`: the connection's peer address (`source.address`); `X-Forwarded-For` is
///   ignored, because a client talking straight to Envoy writes whatever it likes there.
/// - `trusted_hops == N >= 1`: the N-th entry from the right of all `X-Forwarded-For` values
///   (comma-split, in header order). Each trusted proxy appends the address it saw, so entries
///   further left were written by the client and are never read.
///
/// Fewer entries than `N`, or an entry at that position that is not an IP (`ip`, `ip:port` or
/// `[ipv6]:port`), yield `None`: the caller must fail closed (rate-limit applies
/// `on_missing_key`; authz lets no ALLOW rule match on the remote IP and lets every DENY/AUDIT
/// rule's remote-IP condition match).
pub fn client_ip(request: &RequestView, trusted_hops: usize) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return request.source_ip;
    }
    let entries: Vec<&str> =
        request.headers.get_all("x-forwarded-for").flat_map(|value| value.split(',')).map(str::trim).collect();
    let index = entries.len().checked_sub(trusted_hops)?;
    parse_socket_ip(entries[index])
}

/// Iterates `name=value` pairs of a query string or form body, without decoding.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter(|pair| !pair.is_empty()).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Whether a message body carries a content coding (`gzip`, `br`, ...; RFC 9110 §8.4): bytes
/// a filter cannot read as sent, which a backend may decode before use. `identity` is none.
pub fn has_content_coding(headers: &Headers) -> bool {
    headers
        .get_all("content-encoding")
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
}

/// Whether the raw query or form parameter name `raw` is `wanted` once decoded as frameworks
/// decode it (percent escapes, `+` as space): `acc%65ss_token` is `access_token` to Envoy's
/// `jwt_authn` and to the upstream, so it must be to us.
pub fn param_name_is(raw: &str, wanted: &str) -> bool {
    if raw.contains(['%', '+']) {
        percent_decode(raw, true) == wanted
    } else {
        raw == wanted
    }
}

/// Percent-decodes `input` (and `+` as space when `plus_as_space`), replacing invalid UTF-8.
pub fn percent_decode(input: &str, plus_as_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Iterates the `name=value` pairs of a `cookie` header value.
pub fn cookie_pairs(cookie: &str) -> impl Iterator<Item = (&str, &str)> {
    cookie.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        Some((name.trim(), value.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_envoy_semantics() {
        let mut headers = Headers::from_pairs([("X-A", "1"), ("x-a", "2"), ("B", "3")]);
        assert_eq!(headers.get("x-a"), Some("1"));
        assert_eq!(headers.get_all("X-A").collect::<Vec<_>>(), ["1", "2"]);
        headers.set("x-a", "9");
        assert_eq!(headers.get_all("x-a").collect::<Vec<_>>(), ["9"]);
        headers.remove("b");
        assert!(!headers.contains("b"));
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("x-a", "9")]);
    }

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (key, value) in pairs {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        for (key, value) in pairs {
            out.extend_from_slice(key);
            out.push(0);
            out.extend_from_slice(value);
            out.push(0);
        }
        out
    }

    #[test]
    fn decodes_the_host_map_encoding() {
        let bytes = encode(&[(b":method", b"GET"), (b"X-Tenant", b"acme"), (b"empty", b""), (b"x-a", b"2")]);
        let headers = Headers::from_map_encoding(bytes.clone());
        let expected = Headers::from_pairs([(":method", "GET"), ("x-tenant", "acme"), ("empty", ""), ("x-a", "2")]);
        assert_eq!(headers, expected);
        assert_eq!(headers.get("X-TENANT"), Some("acme"));
        assert_eq!(headers.iter().collect::<Vec<_>>()[1], ("x-tenant", "acme"));
        // Non-UTF-8 values are kept lossily, the other pairs untouched.
        let lossy = Headers::from_map_encoding(encode(&[(b"a", b"caf\xe9"), (b"B", b"ok")]));
        assert_eq!(lossy.iter().collect::<Vec<_>>(), [("a", "caf\u{fffd}"), ("b", "ok")]);
        // Truncated or empty encodings never panic.
        for cut in 0..bytes.len() {
            let partial = Headers::from_map_encoding(bytes[..cut].to_vec());
            assert!(partial.iter().zip(expected.iter()).all(|(a, b)| a == b), "cut at {cut}");
        }
        assert!(Headers::from_map_encoding(u32::MAX.to_le_bytes().to_vec()).is_empty());
        assert!(Headers::from_map_encoding(Vec::new()).is_empty());
    }

    #[test]
    fn edits_keep_order_and_text() {
        let mut headers = Headers::from_pairs([("a", "1"), ("b", "2"), ("a", "3")]);
        headers.remove("A");
        headers.add("C", "4");
        headers.set("b", "5");
        assert_eq!(headers.iter().collect::<Vec<_>>(), [("c", "4"), ("b", "5")]);
        assert_eq!(headers.len(), 2);
        assert_eq!(format!("{headers:?}"), r#"Headers { pairs: [("c", "4"), ("b", "5")] }"#);
    }

    #[test]
    fn owned_pairs_are_lower_cased_like_borrowed_ones() {
        let mut owned = Headers::with_capacity(2);
        owned.push_owned("X-A".to_string(), "1".to_string());
        owned.push_owned("b".to_string(), "2".to_string());
        assert_eq!(owned, Headers::from_pairs([("x-a", "1"), ("B", "2")]));
        assert_eq!(owned.get("x-a"), Some("1"));
    }

    #[test]
    fn splits_path_and_host() {
        assert_eq!(split_query("/a?b=1?c"), ("/a", Some("b=1?c")));
        assert_eq!(split_query("/a"), ("/a", None));
        assert_eq!(host_without_port("example.com:8443"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("host:"), "host:");
        let host =
            |authority: &str| RequestView { authority: authority.into(), ..RequestView::default() }.host().to_string();
        assert_eq!(host("Example.com.:8443"), "Example.com");
        assert_eq!(host("example.com."), "example.com");
        assert_eq!(host("example.com.."), "example.com.", "one dot only: `a..` is no host name");
        assert_eq!(host("[::1]:80"), "[::1]");
    }

    #[test]
    fn parses_envoy_source_addresses() {
        assert_eq!(parse_socket_ip("127.0.0.1:55634"), "127.0.0.1".parse().ok());
        assert_eq!(parse_socket_ip("[::1]:80"), "::1".parse().ok());
        assert_eq!(parse_socket_ip("10.0.0.1"), "10.0.0.1".parse().ok());
        assert_eq!(parse_socket_ip("nonsense"), None);
    }

    #[test]
    fn client_ip_counts_trusted_hops_from_the_right() {
        let request = RequestView {
            headers: Headers::from_pairs([
                ("x-forwarded-for", "203.0.113.9, 198.51.100.7"),
                ("X-Forwarded-For", "[2001:db8::7]:443"),
                ("x-forwarded-for", "192.0.2.1:443"),
            ]),
            source_ip: "10.0.0.2".parse().ok(),
            ..RequestView::default()
        };
        // 0: the peer, whatever the header says.
        assert_eq!(client_ip(&request, 0), "10.0.0.2".parse().ok());
        assert_eq!(client_ip(&request, 1), "192.0.2.1".parse().ok());
        assert_eq!(client_ip(&request, 2), "2001:db8::7".parse().ok());
        assert_eq!(client_ip(&request, 3), "198.51.100.7".parse().ok());
        assert_eq!(client_ip(&request, 4), "203.0.113.9".parse().ok());
        // Fewer entries than trusted hops.
        assert_eq!(client_ip(&request, 5), None);
        assert_eq!(client_ip(&request, usize::MAX), None);
        let bare = RequestView { source_ip: "10.0.0.2".parse().ok(), ..RequestView::default() };
        assert_eq!(client_ip(&bare, 0), "10.0.0.2".parse().ok());
        assert_eq!(client_ip(&bare, 1), None, "no header with a trusted hop: unknown, not the peer");
        let no_peer = RequestView { headers: Headers::from_pairs([("x-forwarded-for", "192.0.2.1")]), ..bare.clone() };
        assert_eq!(client_ip(&RequestView { source_ip: None, ..no_peer.clone() }, 0), None);
        // Garbage or an empty entry at the trusted position: unknown, never a neighbour.
        let forged =
            RequestView { headers: Headers::from_pairs([("x-forwarded-for", "1.2.3.4, not-an-ip")]), ..bare.clone() };
        assert_eq!(client_ip(&forged, 1), None);
        assert_eq!(client_ip(&forged, 2), "1.2.3.4".parse().ok());
        let empty = RequestView { headers: Headers::from_pairs([("x-forwarded-for", "1.2.3.4,")]), ..bare };
        assert_eq!(client_ip(&empty, 1), None);
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("%2e%2E/%41", false), "../A");
        assert_eq!(percent_decode("a+b%", true), "a b%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }

    #[test]
    fn iterates_query_and_cookie_pairs() {
        assert_eq!(query_pairs("a=1&&b&c=").collect::<Vec<_>>(), [("a", "1"), ("b", ""), ("c", "")]);
        let coded =
            |values: &[&str]| has_content_coding(&Headers::from_pairs(values.iter().map(|v| ("content-encoding", *v))));
        assert!(!coded(&[]) && !coded(&["identity"]) && !coded(&["Identity, "]) && !coded(&[""]));
        assert!(coded(&["gzip"]) && coded(&["identity, br"]) && coded(&["identity", "x-custom"]));
        for (raw, wanted, same) in [
            ("access_token", "access_token", true),
            ("acc%65ss_token", "access_token", true),
            ("%61%63%63%65%73%73%5F%74%6F%6B%65%6E", "access_token", true),
            ("api+key", "api key", true),
            ("access_token%00", "access_token", false),
            ("Access_token", "access_token", false),
            ("access%5token", "access_token", false),
        ] {
            assert_eq!(param_name_is(raw, wanted), same, "{raw}");
        }
        assert_eq!(cookie_pairs("sid=abc; theme = dark;bad").collect::<Vec<_>>(), [("sid", "abc"), ("theme", "dark")]);
    }

    #[test]
    fn map_encoding_round_trips() {
        let headers =
            Headers::from_pairs([(":status", "200"), ("vary", ""), ("set-cookie", "a=1"), ("set-cookie", "b=2")]);
        let encoded = headers.encode_after_independent(&[]);
        assert_eq!(encoded.len(), 4 + 8 * 4 + (7 + 3 + 2) + (4 + 2) + 2 * (10 + 3 + 2));
        assert_eq!(Headers::from_map_encoding(encoded), headers);
        assert_eq!(encode_pairs(std::iter::empty()), 0u32.to_le_bytes());
        // The spec's example, {"a":"1","b":"22"}.
        let example =
            [2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'1', 0, b'b', 0, b'2', b'2', 0];
        assert_eq!(encode_pairs([("a", "1"), ("b", "22")].into_iter()), example);
    }

    #[test]
    fn independent_ops_in_one_pass_end_as_applied_one_by_one() {
        use crate::decision::independent;
        let current = Headers::from_pairs([
            (":status", "200"),
            ("server", "upstream"),
            ("x-frame-options", "SAMEORIGIN"),
            ("Cache-Control", "private"),
            ("set-cookie", "a=1"),
            ("vary", "Accept-Encoding"),
            ("set-cookie", "b=2"),
        ]);
        let op = |kind: &str, name: &str, value: &str| match kind {
            "set" => HeaderOp::Set(name.into(), value.into()),
            "if_absent" => HeaderOp::SetIfAbsent(name.into(), value.into()),
            "append" => HeaderOp::Append(name.into(), value.into()),
            _ => HeaderOp::Remove(name.into()),
        };
        let lists = [
            vec![
                op("remove", "server", ""),
                op("remove", "x-powered-by", ""),
                op("set", "x-frame-options", "DENY"),
                op("set", "x-content-type-options", "nosniff"),
                op("if_absent", "cache-control", "no-store"),
                op("if_absent", "referrer-policy", "no-referrer"),
                op("append", "vary", "Origin"),
                op("append", "vary", "Cookie"),
            ],
            vec![op("remove", "set-cookie", ""), op("set", "SERVER", "palisade")],
            vec![op("append", "set-cookie", "c=3"), op("remove", "absent", "")],
            vec![],
        ];
        for ops in &lists {
            let refs: Vec<&HeaderOp> = ops.iter().collect();
            assert!(independent(&refs), "{ops:?}");
            let mut one_by_one = current.clone();
            one_by_one.apply(ops);
            let one_pass = Headers::from_map_encoding(current.encode_after_independent(&refs));
            assert_eq!(one_pass, one_by_one, "{ops:?}");
        }
    }

    #[test]
    fn dependent_ops_are_told_apart() {
        use crate::decision::independent;
        let set = HeaderOp::Set("x-a".into(), "1".into());
        let append = HeaderOp::Append("X-A".into(), "2".into());
        let remove = HeaderOp::Remove("x-a".into());
        let if_absent = HeaderOp::SetIfAbsent("x-a".into(), "3".into());
        assert!(independent(&[&set, &append, &append]));
        assert!(!independent(&[&append, &remove]), "the removal erases the earlier append");
        assert!(!independent(&[&set, &if_absent]), "presence depends on the earlier set");
        assert!(!independent(&[&set, &set]));
        assert!(independent(&[]));
    }
}
