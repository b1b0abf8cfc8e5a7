//! Header maps with Envoy's semantics (notes §2.4): lower-cased keys, insertion order, `add`
//! appends, `replace` sets all values, `remove` drops all, `get` gives the first value.

/// An ordered multi-map of lower-cased header names to byte values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Headers {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map from pairs, keys lower-cased, order kept.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut map = Self::new();
        for (key, value) in pairs {
            map.add(key.as_ref(), value.as_ref());
        }
        map
    }

    /// The first value of `name`, lossily decoded as UTF-8.
    pub fn get(&self, name: &str) -> Option<String> {
        self.get_bytes(name.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The first value of `name` as bytes.
    pub fn get_bytes(&self, name: &[u8]) -> Option<&[u8]> {
        let name = lower(name);
        self.pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, in order, lossily decoded.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        let name = lower(name.as_bytes());
        self.pairs.iter().filter(|(k, _)| *k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect()
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get_bytes(name.as_bytes()).is_some()
    }

    /// Appends a value (Envoy `addCopy`).
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        self.pairs.push((lower(name), value.to_vec()));
    }

    /// Envoy's `addCopy` from a filter (`proxy_add_header_map_value`): on an inline header
    /// already present (see [`REQUEST_INLINE`], [`RESPONSE_INLINE`]) Envoy appends `,value` to
    /// it (`HeaderMapImpl::insertByKey`, `appendToHeader`) instead of adding a second entry.
    pub fn add_copy(&mut self, name: &[u8], value: &[u8], inline: &str) {
        let name = lower(name);
        if inline.split(',').any(|inline| inline == name) {
            if let Some((_, existing)) = self.pairs.iter_mut().find(|(k, _)| *k == name) {
                if !existing.is_empty() {
                    existing.push(b',');
                }
                existing.extend_from_slice(value);
                return;
            }
        }
        self.pairs.push((name, value.to_vec()));
    }

    /// Replaces every value of `name` with one value, keeping the first position (Envoy `setCopy`).
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        let name = lower(name);
        match self.pairs.iter().position(|(k, _)| *k == name) {
            Some(first) => {
                if let Some(slot) = self.pairs.get_mut(first) {
                    slot.1 = value.to_vec();
                }
                let mut index = 0;
                self.pairs.retain(|(k, _)| {
                    let keep = index <= first || *k != name;
                    index += 1;
                    keep
                });
            }
            None => self.pairs.push((name, value.to_vec())),
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &[u8]) {
        let name = lower(name);
        self.pairs.retain(|(k, _)| *k != name);
    }

    /// Replaces the whole map: Envoy removes every key, then `addCopy`s each pair, so a
    /// repeated inline header becomes one comma-joined entry.
    pub fn set_pairs(&mut self, pairs: Vec<(Vec<u8>, Vec<u8>)>, inline: &str) {
        self.pairs.clear();
        for (key, value) in pairs {
            self.add_copy(&key, &value, inline);
        }
    }

    /// The pairs in order.
    pub fn pairs(&self) -> &[(String, Vec<u8>)] {
        &self.pairs
    }

    /// The pairs in order, values lossily decoded.
    pub fn to_strings(&self) -> Vec<(String, String)> {
        self.pairs.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Byte size as `proxy_get_header_map_size` reports it (keys plus values).
    pub fn byte_size(&self) -> usize {
        self.pairs.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

fn lower(name: &[u8]) -> String {
    String::from_utf8_lossy(name).to_ascii_lowercase()
}

/// The inline request headers of Envoy 1.40, as it logs them at startup ("request header map").
pub const REQUEST_INLINE: &str =
    ":authority,:method,:path,:protocol,:scheme,accept,accept-encoding,access-control-request-headers,\
access-control-request-method,access-control-request-private-network,authentication,authorization,\
cache-control,cdn-loop,connection,content-encoding,content-length,content-type,expect,\
grpc-accept-encoding,grpc-timeout,if-match,if-modified-since,if-none-match,if-range,\
if-unmodified-since,keep-alive,origin,pragma,proxy-connection,proxy-status,referer,te,\
transfer-encoding,upgrade,user-agent,via,x-client-trace-id,x-envoy-attempt-count,\
x-envoy-decorator-operation,x-envoy-downstream-service-cluster,x-envoy-downstream-service-node,\
x-envoy-expected-rq-timeout-ms,x-envoy-external-address,x-envoy-force-trace,\
x-envoy-hedge-on-per-try-timeout,x-envoy-internal,x-envoy-ip-tags,x-envoy-is-timeout-retry,\
x-envoy-max-retries,x-envoy-original-host,x-envoy-original-path,x-envoy-original-url,\
x-envoy-retriable-header-names,x-envoy-retriable-status-codes,x-envoy-retry-grpc-on,\
x-envoy-retry-on,x-envoy-upstream-alt-stat-name,x-envoy-upstream-rq-per-try-timeout-ms,\
x-envoy-upstream-rq-timeout-alt-response,x-envoy-upstream-rq-timeout-ms,\
x-envoy-upstream-stream-duration-ms,x-forwarded-client-cert,x-forwarded-for,x-forwarded-host,\
x-forwarded-port,x-forwarded-proto,x-request-id";

/// The inline response headers of Envoy 1.40, as it logs them at startup ("response header map").
pub const RESPONSE_INLINE: &str =
    ":status,access-control-allow-credentials,access-control-allow-headers,access-control-allow-methods,\
access-control-allow-origin,access-control-allow-private-network,access-control-expose-headers,\
access-control-max-age,age,cache-control,connection,content-encoding,content-length,content-type,\
date,etag,expires,grpc-message,grpc-status,keep-alive,last-modified,location,proxy-connection,\
proxy-status,server,transfer-encoding,upgrade,vary,via,x-envoy-attempt-count,\
x-envoy-decorator-operation,x-envoy-degraded,x-envoy-immediate-health-check-fail,\
x-envoy-ratelimited,x-envoy-upstream-canary,x-envoy-upstream-healthchecked-cluster,\
x-envoy-upstream-service-time,x-request-id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_semantics() {
        let mut map = Headers::new();
        map.add(b"X-A", b"1");
        map.add(b"x-b", b"2");
        map.add(b"x-a", b"3");
        assert_eq!(map.get("x-a").as_deref(), Some("1"));
        assert_eq!(map.get_all("X-A"), vec!["1", "3"]);
        map.replace(b"x-a", b"9");
        assert_eq!(map.to_strings(), vec![("x-a".into(), "9".into()), ("x-b".into(), "2".into())]);
        map.remove(b"X-B");
        map.remove(b"absent");
        assert_eq!(map.len(), 1);
        map.replace(b"new", b"v");
        assert_eq!(map.get("new").as_deref(), Some("v"));
    }

    #[test]
    fn add_copy_appends_to_a_present_inline_header_with_a_comma() {
        let mut map = Headers::from_pairs([("vary", "accept-encoding"), ("link", "<a>")]);
        map.add_copy(b"Vary", b"Origin", RESPONSE_INLINE);
        map.add_copy(b"link", b"<b>", RESPONSE_INLINE);
        map.add_copy(b"cache-control", b"no-store", RESPONSE_INLINE);
        assert_eq!(map.get_all("vary"), ["accept-encoding,Origin"]);
        assert_eq!(map.get_all("link"), ["<a>", "<b>"], "not inline: a second entry");
        assert_eq!(map.get_all("cache-control"), ["no-store"]);
        map.add_copy(b"x-forwarded-for", b"1", "");
        map.add_copy(b"x-forwarded-for", b"2", "");
        assert_eq!(map.get_all("x-forwarded-for"), ["1", "2"]);
    }

    #[test]
    fn set_pairs_adds_each_pair_as_add_copy_does() {
        let mut map = Headers::from_pairs([("vary", "accept"), ("server", "upstream")]);
        let pairs = [("Vary", "a"), ("vary", "b"), ("link", "<a>"), ("link", "<b>")];
        map.set_pairs(
            pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect(),
            RESPONSE_INLINE,
        );
        assert_eq!(map.get_all("vary"), ["a,b"], "Envoy's addCopy joins a repeated inline header");
        assert_eq!(map.get_all("link"), ["<a>", "<b>"]);
        assert!(!map.contains("server"), "every earlier header is removed");
    }
}
