//! The numbers of proxy-wasm ABI 0.2.1 (notes §2.1) and its map encoding (§2.3).

/// `WasmResult` codes returned by every hostcall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    /// Envoy's `proxy_get_status` code after a failed or timed-out HTTP callout.
    BrokenConnection = 11,
}

impl Status {
    /// The wasm return value.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Log levels of `proxy_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl LogLevel {
    /// The level of an ABI number; `None` above 5 (Envoy answers BadArgument).
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }

    /// The ABI number of the level.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `MapType` numbers.
pub mod map {
    pub const REQUEST_HEADERS: i32 = 0;
    pub const REQUEST_TRAILERS: i32 = 1;
    pub const RESPONSE_HEADERS: i32 = 2;
    pub const RESPONSE_TRAILERS: i32 = 3;
    pub const GRPC_INITIAL_METADATA: i32 = 4;
    pub const GRPC_TRAILING_METADATA: i32 = 5;
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// `BufferType` numbers.
pub mod buffer {
    pub const REQUEST_BODY: i32 = 0;
    pub const RESPONSE_BODY: i32 = 1;
    pub const DOWNSTREAM_DATA: i32 = 2;
    pub const UPSTREAM_DATA: i32 = 3;
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    pub const GRPC_RECEIVE: i32 = 5;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
    pub const CALL_DATA: i32 = 8;
}

/// `StreamType` numbers of `proxy_continue_stream` / `proxy_close_stream`.
pub mod stream {
    pub const REQUEST: i32 = 0;
    pub const RESPONSE: i32 = 1;
}

/// cpp-host refuses larger pair buffers and counts (`PROXY_WASM_HOST_PAIRS_MAX_*`).
const PAIRS_MAX_BYTES: usize = 1 << 20;
const PAIRS_MAX_COUNT: usize = 1024;

/// Encodes pairs: u32 count, (u32 key len, u32 value len) each, then `key\0value\0` each.
pub fn serialize_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (key, value) in pairs {
        out.extend_from_slice(&len_u32(key.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len_u32(value.as_ref().len()).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key.as_ref());
        out.push(0);
        out.extend_from_slice(value.as_ref());
        out.push(0);
    }
    out
}

/// Decodes pairs like cpp-host `toPairs`: malformed or oversized input gives an empty list.
pub fn deserialize_pairs(data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    decode_pairs(data).unwrap_or_default()
}

fn decode_pairs(data: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if data.is_empty() || data.len() > PAIRS_MAX_BYTES {
        return None;
    }
    let count = read_u32(data, 0)? as usize;
    if count > PAIRS_MAX_COUNT {
        return None;
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        let key = read_u32(data, 4 + i * 8)? as usize;
        let value = read_u32(data, 8 + i * 8)? as usize;
        sizes.push((key, value));
    }
    let mut at = 4 + count * 8;
    let mut pairs = Vec::with_capacity(count);
    for (key_len, value_len) in sizes {
        let key = data.get(at..at.checked_add(key_len)?)?.to_vec();
        at += key_len + 1;
        let value = data.get(at..at.checked_add(value_len)?)?.to_vec();
        at += value_len + 1;
        pairs.push((key, value));
    }
    (at <= data.len()).then_some(pairs)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// A length as the ABI's u32; lengths beyond 4 GiB cannot occur in a 32-bit guest.
pub fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_match_the_spec_example() {
        let bytes = serialize_pairs(&[("a", "1"), ("b", "22")]);
        let expected: Vec<u8> =
            [&[2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0][..], b"a\x001\x00b\x0022\x00"].concat();
        assert_eq!(bytes, expected);
        assert_eq!(deserialize_pairs(&bytes), vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"22".to_vec())]);
    }

    #[test]
    fn malformed_pairs_decode_to_nothing() {
        assert!(deserialize_pairs(&[5, 0, 0, 0, 1]).is_empty());
        assert!(deserialize_pairs(&[]).is_empty());
    }
}
