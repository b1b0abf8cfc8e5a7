//! Hostile and odd traffic, deterministic per seed, and a check that a chain never traps on it.
//!
//! ```no_run
//! use palisade_tests::host::{traffic, Host};
//! # fn main() -> anyhow::Result<()> {
//! let host = Host::new();
//! let plugin = host.plugin("security-headers").config("{}").load()?;
//! traffic::assert_never_traps(&host.chain(&[&plugin]), 7, 300)?;
//! # Ok(())
//! # }
//! ```

use anyhow::{bail, Result};

use super::chain::{Chain, Verdict};
use super::message::{Request, Response};

/// A small deterministic PRNG (SplitMix64): same seed, same traffic, so failures reproduce.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One item of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

const METHODS: [&str; 14] = [
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "OPTIONS",
    "HEAD",
    "PATCH",
    "TRACE",
    "CONNECT",
    "get",
    "PROPFIND",
    "",
    "G E T",
    "X-\u{1F600}",
];

const PATHS: [&str; 16] = [
    "/",
    "",
    "*",
    "/%00",
    "/a%00b",
    "/../../etc/passwd",
    "/a/./b/../../c",
    "/%2e%2e/%2e%2e/admin",
    "//double//slashes",
    "/?",
    "/?a=1&a=2&=&&b",
    "/path?q=%ZZ%",
    "/\u{00e9}t\u{00e9}",
    "/a;b=c",
    "/#fragment",
    "/api/v1/users/1?x=<script>alert(1)</script>",
];

const HEADER_NAMES: [&str; 18] = [
    "authorization",
    "origin",
    "content-type",
    "content-length",
    "cookie",
    "x-forwarded-for",
    "host",
    "x-palisade-subject",
    "x-palisade-identity",
    "access-control-request-method",
    "access-control-request-headers",
    "transfer-encoding",
    "user-agent",
    "x-request-id",
    "accept",
    "",
    "X-UPPER-CASE",
    "x-\u{00e9}",
];

const VALUES: [&[u8]; 16] = [
    b"",
    b" ",
    b"Bearer",
    b"Bearer ",
    b"Bearer a.b.c",
    b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    b"Basic Og==",
    b"null",
    b"https://evil.example",
    b"application/json",
    b"application/json; charset=\xff",
    b"-1",
    b"99999999999999999999",
    b"\xff\xfe\x00\x01",
    b"\xc3\x28",
    b"a=b; c=d; ;;=",
];

const BODIES: [&[u8]; 12] = [
    b"{",
    b"{\"a\":",
    b"[]",
    b"null",
    b"{\"a\":1,\"a\":2}",
    b"{\"deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    b"\xff\xfe\xfd",
    b"{\"s\":\"\\ud800\"}",
    b"1e999999",
    b"{\"a\":\"\x00\"}",
    b"<xml/>",
    b"",
];

/// `n` hostile requests for `seed`: huge and empty headers, invalid UTF-8, odd methods and
/// paths, missing pseudo-headers, duplicates, broken bodies in odd chunks, trailers.
pub fn hostile_requests(seed: u64, n: usize) -> impl Iterator<Item = Request> {
    let mut rng = Rng::new(seed);
    (0..n).map(move |_| hostile_request(&mut rng))
}

/// One hostile request.
pub fn hostile_request(rng: &mut Rng) -> Request {
    let method = rng.pick(&METHODS).copied().unwrap_or("GET");
    let mut path = rng.pick(&PATHS).copied().unwrap_or("/").to_string();
    if rng.one_in(10) {
        path = format!("/{}", "a/".repeat(4000 + rng.below(5000)));
    }
    let mut request = Request::new(method, &path);
    if rng.one_in(6) {
        let missing = rng.pick(&[":method", ":path", ":authority", ":scheme"]).copied().unwrap_or(":path");
        request = request.without(missing);
    }
    if rng.one_in(20) {
        request = Request::empty();
    }
    if rng.one_in(8) {
        request = request.set_header(":authority", "");
    }
    let headers = rng.below(12);
    for _ in 0..headers {
        let name = rng.pick(&HEADER_NAMES).copied().unwrap_or("x");
        let value: Vec<u8> = match rng.below(10) {
            0 => vec![b'a'; 8192 + rng.below(65536)],
            1 => {
                let len = rng.below(64);
                rng.bytes(len)
            }
            _ => rng.pick(&VALUES).map(|v| v.to_vec()).unwrap_or_default(),
        };
        request = request.header_bytes(name, &value);
        if rng.one_in(4) {
            request = request.header_bytes(name, &value);
        }
    }
    if rng.one_in(15) {
        for i in 0..(100 + rng.below(200)) {
            request = request.header(&format!("x-many-{i}"), "v");
        }
    }
    if rng.one_in(2) {
        let mut body = rng.pick(&BODIES).map(|b| b.to_vec()).unwrap_or_default();
        if rng.one_in(8) {
            body = vec![b'{'; 256 * 1024 + rng.below(1024)];
        }
        if rng.one_in(6) {
            let len = rng.below(4096);
            body = rng.bytes(len);
        }
        request = request.body_chunks(split(rng, &body));
    }
    if rng.one_in(8) {
        request = request.trailer("grpc-status", "0").trailer("x-trailer", "\u{00e9}");
    }
    if rng.one_in(5) {
        let address = rng.pick(&["", "not-an-ip", "[::1]:80", "256.1.1.1:9", "10.0.0.1"]).copied().unwrap_or("");
        request = request.property(&["source", "address"], address);
    }
    request
}

/// Splits a body into 1..=6 chunks at random points, empty chunks included.
fn split(rng: &mut Rng, body: &[u8]) -> Vec<Vec<u8>> {
    let parts = 1 + rng.below(6);
    let mut cuts: Vec<usize> = (1..parts).map(|_| rng.below(body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut at = 0;
    for cut in cuts.into_iter().chain(std::iter::once(body.len())) {
        chunks.push(body.get(at..cut).unwrap_or_default().to_vec());
        at = cut;
    }
    chunks
}

/// An odd upstream response for a forwarded hostile request.
pub fn hostile_response(rng: &mut Rng) -> Response {
    let status = rng.pick(&[200u16, 204, 304, 400, 401, 404, 500, 503, 101, 999]).copied().unwrap_or(200);
    let mut response = if rng.one_in(20) { Response::default() } else { Response::status(status) };
    for _ in 0..rng.below(6) {
        let name = rng
            .pick(&["server", "x-powered-by", "content-type", "set-cookie", "vary", "", "location"])
            .copied()
            .unwrap_or("x");
        let value = rng.pick(&VALUES).map(|v| v.to_vec()).unwrap_or_default();
        response = response.header_bytes(name, &value);
    }
    if rng.one_in(2) {
        let body = rng.pick(&BODIES).map(|b| b.to_vec()).unwrap_or_default();
        response = response.body_chunks(split(rng, &body));
    }
    response
}

/// Sends `n` hostile requests (and hostile responses to those forwarded) through `chain`;
/// the first trap is an error naming the plugin, the trap and the request.
pub fn assert_never_traps(chain: &Chain<'_>, seed: u64, n: usize) -> Result<()> {
    let mut rng = Rng::new(seed ^ 0xa5a5_a5a5);
    for (i, request) in hostile_requests(seed, n).enumerate() {
        let shown = format!("{request:?}");
        let mut exchange = chain.send(request);
        if exchange.verdict() == Verdict::Forwarded {
            let response = hostile_response(&mut rng);
            let shown_response = format!("{response:?}");
            exchange.respond(response)?;
            if let Some((filter, message)) = exchange.trap() {
                bail!("plugin {filter} trapped on response {i} (seed {seed}): {message}\nrequest: {shown}\nresponse: {shown_response}");
            }
        }
        if let Some((filter, message)) = exchange.trap() {
            bail!("plugin {filter} trapped on request {i} (seed {seed}): {message}\nrequest: {shown}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_traffic() {
        let a: Vec<Request> = hostile_requests(42, 50).collect();
        let b: Vec<Request> = hostile_requests(42, 50).collect();
        assert_eq!(a, b);
        let c: Vec<Request> = hostile_requests(43, 50).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn covers_the_hostile_shapes() {
        let requests: Vec<Request> = hostile_requests(1, 400).collect();
        let has = |f: &dyn Fn(&Request) -> bool| requests.iter().any(f);
        assert!(has(&|r| !r.headers.iter().any(|(k, _)| k == ":path")));
        assert!(has(&|r| r.headers.iter().any(|(_, v)| std::str::from_utf8(v).is_err())));
        assert!(has(&|r| r.headers.iter().any(|(_, v)| v.len() > 8192)));
        assert!(has(&|r| r.headers.iter().any(|(_, v)| v.is_empty())));
        assert!(has(&|r| r.body.len() > 2));
        assert!(has(&|r| !r.trailers.is_empty()));
        assert!(has(&|r| r.headers.iter().any(|(k, v)| k == ":path" && v.len() > 8000)));
    }
}
