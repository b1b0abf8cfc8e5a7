//! RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) for RS256, RS384 and RS512, with the
//! public operation done as 16 squarings and one multiplication.
//!
//! Why not the `rsa` crate's verifier: it raises the signature to `e` with crypto-bigint's
//! constant-time 4-bit-window exponentiation (14 multiplications for the table, then 16
//! squarings and 5 multiplications for a 17-bit exponent), which a public exponent does not
//! need. Every key here has `e = 65537 = 2^16 + 1` ([`super::keys`] refuses any other), so
//! `s^e = (s^(2^16)) * s`. The inputs (signature, key, message) are all public, so nothing is
//! lost by running in variable time. The rest is the RFC's "encode, then compare": build the
//! expected encoded message from the hash and compare it with `s^e mod n`, never parse it.

use crypto_bigint::modular::BoxedMontyForm;
use crypto_bigint::BoxedUint;
use rsa::sha2::{Digest, Sha256, Sha384, Sha512};
use rsa::traits::PublicKeyParts;
use rsa::PublicKey;

/// A hash of RS256 / RS384 / RS512 and its DER `DigestInfo` prefix (RFC 8017 §9.2, note 1).
pub trait Pkcs1Hash: Digest {
    /// `DigestInfo` up to the digest itself.
    const DIGEST_INFO_PREFIX: &'static [u8];
}

impl Pkcs1Hash for Sha256 {
    const DIGEST_INFO_PREFIX: &'static [u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
        0x20,
    ];
}

impl Pkcs1Hash for Sha384 {
    const DIGEST_INFO_PREFIX: &'static [u8] = &[
        0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04,
        0x30,
    ];
}

impl Pkcs1Hash for Sha512 {
    const DIGEST_INFO_PREFIX: &'static [u8] = &[
        0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04,
        0x40,
    ];
}

/// Whether `signature` is a valid RSASSA-PKCS1-v1_5 signature of `message` under `key` with
/// hash `H`. `key`'s exponent must be 65537 (checked when the key was loaded).
pub fn verify<H: Pkcs1Hash>(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    let k = key.size();
    // Steps 1 and 2.a: the signature is exactly k octets and, as an integer, below n.
    if signature.len() != k {
        return false;
    }
    let n = key.n();
    let Ok(s) = BoxedUint::from_be_slice(signature, n.bits_precision()) else {
        return false;
    };
    if s >= *n.as_ref() {
        return false;
    }
    // Step 2.b: m = s^65537 mod n.
    let base = BoxedMontyForm::new(s, key.n_params());
    let mut m = base.clone();
    for _ in 0..16 {
        m = m.square();
    }
    let m = m.mul(&base).retrieve().to_be_bytes();
    // Step 2.c: the encoded message is m's k low-order octets (m < n, so the rest are zero).
    let Some((high, em)) = m.split_at_checked(m.len().saturating_sub(k)) else {
        return false;
    };
    high.iter().all(|b| *b == 0) && em == encode::<H>(message, k)
}

/// EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2): `00 01 FF..FF 00 || DigestInfo`, k octets. A
/// modulus of at least 2048 bits leaves far more than the 8 octets of padding required.
fn encode<H: Pkcs1Hash>(message: &[u8], k: usize) -> Vec<u8> {
    let digest = <H as Digest>::digest(message);
    let t_len = H::DIGEST_INFO_PREFIX.len() + digest.len();
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(k.saturating_sub(t_len + 1), 0xff);
    em.push(0x00);
    em.extend_from_slice(H::DIGEST_INFO_PREFIX);
    em.extend_from_slice(&digest);
    em
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1v15;
    use rsa::signature::Verifier;

    use super::*;

    /// RFC 7515 A.2: the RS256 example's key (n, e = AQAB) and its JWS.
    const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const A2_INPUT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    const A2_SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

    fn b64(text: &str) -> Vec<u8> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    fn a2_key() -> PublicKey {
        PublicKey::new(BoxedUint::from_be_slice_vartime(&b64(A2_N)), BoxedUint::from(65_537u32)).unwrap()
    }

    /// What the `rsa` crate's own (constant-time) verifier says: the reference.
    fn reference(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
        let verifier = pkcs1v15::VerifyingKey::<Sha256>::new(key.clone());
        pkcs1v15::Signature::try_from(signature).is_ok_and(|sig| verifier.verify(message, &sig).is_ok())
    }

    #[test]
    fn rfc7515_a2_signature_verifies() {
        assert!(verify::<Sha256>(&a2_key(), A2_INPUT.as_bytes(), &b64(A2_SIGNATURE)));
    }

    #[test]
    fn wrong_hash_or_message_fails() {
        let key = a2_key();
        let signature = b64(A2_SIGNATURE);
        assert!(!verify::<Sha384>(&key, A2_INPUT.as_bytes(), &signature));
        assert!(!verify::<Sha512>(&key, A2_INPUT.as_bytes(), &signature));
        let mut message = A2_INPUT.as_bytes().to_vec();
        message[10] ^= 1;
        assert!(!verify::<Sha256>(&key, &message, &signature));
    }

    #[test]
    fn every_single_bit_flip_of_the_signature_fails_as_the_rsa_crate_says() {
        let key = a2_key();
        let signature = b64(A2_SIGNATURE);
        for bit in (0..signature.len() * 8).step_by(7) {
            let mut bad = signature.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let ours = verify::<Sha256>(&key, A2_INPUT.as_bytes(), &bad);
            assert!(!ours, "bit {bit}");
            assert_eq!(ours, reference(&key, A2_INPUT.as_bytes(), &bad), "bit {bit}");
        }
    }

    #[test]
    fn signature_of_the_wrong_length_or_not_below_the_modulus_fails() {
        let key = a2_key();
        let signature = b64(A2_SIGNATURE);
        // One octet short (a leading zero dropped) or long: RFC 8017 §8.2.2 step 1.
        assert!(!verify::<Sha256>(&key, A2_INPUT.as_bytes(), &signature[1..]));
        let mut long = vec![0];
        long.extend_from_slice(&signature);
        assert!(!verify::<Sha256>(&key, A2_INPUT.as_bytes(), &long));
        // s = n and s = n + small: step 2.a.
        let n = b64(A2_N);
        assert!(!verify::<Sha256>(&key, A2_INPUT.as_bytes(), &n));
        assert!(!verify::<Sha256>(&key, A2_INPUT.as_bytes(), &[0xff; 256]));
        assert!(!verify::<Sha256>(&key, A2_INPUT.as_bytes(), &[0; 256]));
        assert!(!reference(&key, A2_INPUT.as_bytes(), &[0; 256]));
    }

    #[test]
    fn encoding_matches_rfc8017_layout() {
        let em = encode::<Sha256>(b"abc", 256);
        assert_eq!(em.len(), 256);
        assert_eq!(em[..2], [0x00, 0x01]);
        let t_len = 19 + 32;
        assert!(em[2..256 - t_len - 1].iter().all(|b| *b == 0xff));
        assert_eq!(em[256 - t_len - 1], 0x00);
        // SHA-256("abc") from FIPS 180-2 B.1.
        assert_eq!(em[256 - 32..], b64("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0")[..],);
    }
}
