//! Byte searches eight bytes at a time, for the hot loops over request bodies: a byte loop costs
//! several wasm instructions per byte. The has-zero-byte and has-less-than word tricks are exact
//! as yes/no answers for a whole word; the byte that answers is then found byte by byte.

const ONES: u64 = u64::from_le_bytes([1; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// Whether some byte of `word` is zero.
fn has_zero(word: u64) -> bool {
    word.wrapping_sub(ONES) & !word & HIGHS != 0
}

/// Whether some byte of `word` equals `byte`.
fn has(word: u64, byte: u8) -> bool {
    has_zero(word ^ (ONES * u64::from(byte)))
}

/// Whether some byte of `word` is below `limit` (at most 0x80).
fn has_less(word: u64, limit: u8) -> bool {
    word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS != 0
}

/// The little-endian words of `bytes`, and the bytes after the last whole word.
fn words(bytes: &[u8]) -> (impl Iterator<Item = u64> + '_, &[u8]) {
    let chunks = bytes.chunks_exact(8);
    let rest = chunks.remainder();
    (chunks.map(|chunk| u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default())), rest)
}

/// The index of the first `"`, `\` or control byte of `bytes` (its length if none): where the
/// plain run of a JSON string ends.
pub(crate) fn plain_run(bytes: &[u8]) -> usize {
    let mut at = 0;
    for word in words(bytes).0 {
        if has_less(word, 0x20) || has(word, b'"') || has(word, b'\\') {
            break;
        }
        at += 8;
    }
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(rest.len())
}

/// Whether `bytes` holds `a` or `b`.
pub(crate) fn contains_either(bytes: &[u8], a: u8, b: u8) -> bool {
    let (mut words, rest) = words(bytes);
    words.any(|word| has(word, a) || has(word, b)) || rest.iter().any(|&c| c == a || c == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte string of length 0 to 39, 300 of each: mostly letters, with bytes from
    /// `special` (and their neighbours) at every offset of a word.
    fn samples(special: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..40).flat_map(|len| std::iter::repeat_n(len, 300)).map(move |len| {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let byte = special[(state >> 8) as usize % special.len()];
                    match state % 15 {
                        0 => byte,
                        1 => byte.wrapping_sub(1),
                        2 => byte.wrapping_add(1),
                        3 => byte | 0x80,
                        _ => b'a' + (state >> 16) as u8 % 26,
                    }
                })
                .collect()
        })
    }

    #[test]
    fn plain_run_ends_at_the_first_quote_backslash_or_control_byte() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).unwrap_or(b.len());
        for bytes in samples(&[b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0xc3, 0xa9, 0xff]) {
            assert_eq!(plain_run(&bytes), naive(&bytes), "{bytes:?}");
        }
        let long = [b"x".repeat(1000), b"\"".to_vec()].concat();
        assert_eq!(plain_run(&long), 1000);
    }

    #[test]
    fn contains_either_says_whether_either_byte_is_there() {
        for bytes in samples(&[b'<', b'=', 0x00, 0xbc, 0xff]) {
            let naive = bytes.iter().any(|&c| c == b'<' || c == b'=');
            assert_eq!(contains_either(&bytes, b'<', b'='), naive, "{bytes:?}");
        }
    }
}
