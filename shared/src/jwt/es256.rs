//! ECDSA P-256 verification for ES256 (RFC 7518 §3.4; FIPS 186-5 §6.4.2).
//!
//! Why not p256's verifier (which jwt-simple uses): under V8 its point doubling costs about
//! 2.3 µs (complete projective formulas: 12-13 field multiplications, each a generic
//! crypto-bigint product and reduction), and it rebuilds both wNAF tables for every signature.
//! Here an uncached ES256 token costs 0.54x of p256's Envoy CPU (README "Build profile"):
//! - fiat-crypto's machine-checked Montgomery arithmetic for the field of p;
//! - Jacobian coordinates with a = -3: doubling in 3M + 5S, mixed addition in 7M + 4S;
//! - affine tables of odd multiples: the generator's built once per VM, each key's when the key
//!   is loaded;
//! - the final check on X / Z² against r and r + n, with no inversion.
//!
//! Scalars mod n are p256's. Every input (key, message, signature) is public, so this runs in
//! variable time, as ECDSA verifiers do.

use std::sync::OnceLock;

use fiat_crypto::p256_64 as fiat;
use p256::elliptic_curve::ff::PrimeField;
use p256::elliptic_curve::ops::Reduce;
use p256::{FieldBytes, Scalar};
use sha2::{Digest, Sha256};

/// p, big-endian.
const P: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];
/// n, the group order, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// The curve's b, big-endian.
const B: [u8; 32] = [
    0x5a, 0xc6, 0x35, 0xd8, 0xaa, 0x3a, 0x93, 0xe7, 0xb3, 0xeb, 0xbd, 0x55, 0x76, 0x98, 0x86, 0xbc, 0x65, 0x1d, 0x06,
    0xb0, 0xcc, 0x53, 0xb0, 0xf6, 0x3b, 0xce, 0x3c, 0x3e, 0x27, 0xd2, 0x60, 0x4b,
];
/// The generator, big-endian affine coordinates.
const GX: [u8; 32] = [
    0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d,
    0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96,
];
const GY: [u8; 32] = [
    0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33,
    0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
];

/// wNAF width for the generator: 32 precomputed points, one addition per 8 bits on average.
const G_WINDOW: u32 = 7;
/// wNAF width for keys: 16 points per key, one addition per 7 bits.
const KEY_WINDOW: u32 = 6;

/// An element of GF(p) in Montgomery form, fully reduced (fiat keeps every output below p).
#[derive(Clone, Copy)]
struct Fe(fiat::fiat_p256_montgomery_domain_field_element);

impl Fe {
    const ZERO: Fe = Fe(fiat::fiat_p256_montgomery_domain_field_element([0; 4]));

    fn one() -> Fe {
        let mut out = Fe::ZERO;
        fiat::fiat_p256_set_one(&mut out.0);
        out
    }

    /// A big-endian integer below p; `None` otherwise.
    fn from_be_bytes(bytes: &[u8; 32]) -> Option<Fe> {
        (*bytes < P).then(|| Fe::from_reduced(bytes))
    }

    /// A big-endian integer the caller knows to be below p (fiat's precondition); `const` so
    /// that the curve's constants are converted at compile time.
    const fn from_reduced(bytes: &[u8; 32]) -> Fe {
        let mut little_endian = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            little_endian[i] = bytes[31 - i];
            i += 1;
        }
        let mut limbs = fiat::fiat_p256_non_montgomery_domain_field_element([0; 4]);
        fiat::fiat_p256_from_bytes(&mut limbs.0, &little_endian);
        let mut out = fiat::fiat_p256_montgomery_domain_field_element([0; 4]);
        fiat::fiat_p256_to_montgomery(&mut out, &limbs);
        Fe(out)
    }

    fn mul(&self, rhs: &Fe) -> Fe {
        let mut out = Fe::ZERO;
        fiat::fiat_p256_mul(&mut out.0, &self.0, &rhs.0);
        out
    }

    fn square(&self) -> Fe {
        let mut out = Fe::ZERO;
        fiat::fiat_p256_square(&mut out.0, &self.0);
        out
    }

    fn add(&self, rhs: &Fe) -> Fe {
        let mut out = Fe::ZERO;
        fiat::fiat_p256_add(&mut out.0, &self.0, &rhs.0);
        out
    }

    fn sub(&self, rhs: &Fe) -> Fe {
        let mut out = Fe::ZERO;
        fiat::fiat_p256_sub(&mut out.0, &self.0, &rhs.0);
        out
    }

    fn neg(&self) -> Fe {
        let mut out = Fe::ZERO;
        fiat::fiat_p256_opp(&mut out.0, &self.0);
        out
    }

    fn double(&self) -> Fe {
        self.add(self)
    }

    fn is_zero(&self) -> bool {
        self.0 .0 == [0; 4]
    }

    fn equals(&self, rhs: &Fe) -> bool {
        self.0 .0 == rhs.0 .0
    }

    /// self^(p - 2) = 1 / self (Fermat), for a non-zero self. Only used when tables are built.
    fn invert(&self) -> Fe {
        let mut exponent = P;
        exponent[31] -= 2; // p ends in 0xff: no borrow.
        let mut out = Fe::one();
        for byte in exponent {
            for bit in (0..8).rev() {
                out = out.square();
                if byte >> bit & 1 == 1 {
                    out = out.mul(self);
                }
            }
        }
        out
    }
}

/// A point in affine coordinates, never the point at infinity.
#[derive(Clone, Copy)]
struct Affine {
    x: Fe,
    y: Fe,
}

/// A point in Jacobian coordinates: (X / Z², Y / Z³); Z = 0 is the point at infinity.
#[derive(Clone, Copy)]
struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Affine {
    /// (x, y) when it lies on y² = x³ - 3x + b.
    fn on_curve(x: Fe, y: Fe) -> Option<Affine> {
        let b = Fe::from_reduced(&B);
        let three_x = x.double().add(&x);
        let rhs = x.square().mul(&x).sub(&three_x).add(&b);
        y.square().equals(&rhs).then_some(Affine { x, y })
    }

    const GENERATOR: Affine = Affine { x: Fe::from_reduced(&GX), y: Fe::from_reduced(&GY) };

    fn negate(&self) -> Affine {
        Affine { x: self.x, y: self.y.neg() }
    }
}

impl Jacobian {
    const INFINITY: Jacobian = Jacobian { x: Fe::ZERO, y: Fe::ZERO, z: Fe::ZERO };

    fn from_affine(p: &Affine) -> Jacobian {
        Jacobian { x: p.x, y: p.y, z: Fe::one() }
    }

    fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// 2P, "dbl-2001-b" (a = -3): 3M + 5S. Keeps Z = 0 at infinity (Z3 = 2·Y1·Z1).
    fn double(&self) -> Jacobian {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let four_beta = beta.double().double();
        let x3 = alpha.square().sub(&four_beta.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let eight_gamma_sq = gamma.square().double().double().double();
        let y3 = alpha.mul(&four_beta.sub(&x3)).sub(&eight_gamma_sq);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// P + Q for an affine Q, "madd-2007-bl": 7M + 4S, with the exceptional cases
    /// (P at infinity, P = Q, P = -Q) handled.
    fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian::from_affine(q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y).double();
        if h.is_zero() {
            return match r.is_zero() {
                true => Jacobian::from_affine(q).double(),
                false => Jacobian::INFINITY,
            };
        }
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        Jacobian { x: x3, y: y3, z: z3 }
    }
}

/// P, 3P, 5P, ..., (2^(w-1) - 1)P in affine coordinates, for wNAF digits of width w.
#[derive(Clone)]
struct OddMultiples {
    points: Vec<Affine>,
    /// w: the scalars multiplied with this table are recoded with it, so every digit has
    /// its entry.
    window: u32,
}

impl OddMultiples {
    fn new(p: &Affine, window: u32) -> OddMultiples {
        let count = 1usize << (window - 2);
        let two_p = to_affine(&[Jacobian::from_affine(p).double()])[0];
        let mut jacobian = Vec::with_capacity(count);
        jacobian.push(Jacobian::from_affine(p));
        for i in 1..count {
            // (2i+1)P = (2i-1)P + 2P; never exceptional for i < n/2.
            let next = jacobian[i - 1].add_affine(&two_p);
            jacobian.push(next);
        }
        OddMultiples { points: to_affine(&jacobian), window }
    }

    /// The table entry for an odd non-zero wNAF digit.
    fn get(&self, digit: i8) -> Affine {
        let point = self.points[(digit.unsigned_abs() / 2) as usize];
        match digit < 0 {
            true => point.negate(),
            false => point,
        }
    }
}

/// Affine forms of finite Jacobian points, with one inversion for all (Montgomery's trick).
fn to_affine(points: &[Jacobian]) -> Vec<Affine> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut product = Fe::one();
    for p in points {
        prefix.push(product);
        product = product.mul(&p.z);
    }
    let mut inverse = product.invert();
    let mut out = vec![Affine { x: Fe::ZERO, y: Fe::ZERO }; points.len()];
    for (i, p) in points.iter().enumerate().rev() {
        let z_inv = inverse.mul(&prefix[i]);
        inverse = inverse.mul(&p.z);
        let z_inv2 = z_inv.square();
        out[i] = Affine { x: p.x.mul(&z_inv2), y: p.y.mul(&z_inv2).mul(&z_inv) };
    }
    out
}

fn generator_table() -> &'static OddMultiples {
    static TABLE: OnceLock<OddMultiples> = OnceLock::new();
    TABLE.get_or_init(|| OddMultiples::new(&Affine::GENERATOR, G_WINDOW))
}

/// The width-w non-adjacent form of a big-endian scalar: digits odd, in (-2^(w-1), 2^(w-1)),
/// least significant first, with at least w - 1 zeros after each non-zero digit.
fn wnaf(scalar: &[u8; 32], window: u32) -> [i8; 257] {
    // Little-endian limbs with room for the carry of a negative digit.
    let mut k = [0u64; 5];
    for (limb, bytes) in k.iter_mut().zip(scalar.rchunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        *limb = u64::from_be_bytes(word);
    }
    let mut digits = [0i8; 257];
    let mask = (1u64 << window) - 1;
    let half = 1i64 << (window - 1);
    for digit in digits.iter_mut() {
        if k == [0; 5] {
            break;
        }
        if k[0] & 1 == 1 {
            let low = (k[0] & mask) as i64;
            let d = if low >= half { low - (1 << window) } else { low };
            *digit = d as i8;
            // k -= d, so k becomes a multiple of 2^w.
            if d > 0 {
                k[0] -= d as u64;
            } else {
                add_small(&mut k, (-d) as u64);
            }
        }
        shift_right_one(&mut k);
    }
    debug_assert_eq!(k, [0; 5], "a 256-bit scalar has at most 257 wNAF digits");
    digits
}

fn add_small(k: &mut [u64; 5], mut carry: u64) {
    for limb in k.iter_mut() {
        let (sum, overflow) = limb.overflowing_add(carry);
        *limb = sum;
        carry = u64::from(overflow);
        if carry == 0 {
            break;
        }
    }
}

fn shift_right_one(k: &mut [u64; 5]) {
    for i in 0..5 {
        let high = if i < 4 { k[i + 1] << 63 } else { 0 };
        k[i] = k[i] >> 1 | high;
    }
}

/// An ES256 public key: a point of P-256 with its table of odd multiples.
#[derive(Clone)]
pub struct PublicKey {
    table: OddMultiples,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("es256::PublicKey")
    }
}

impl PublicKey {
    /// The key with big-endian affine coordinates (x, y), when that point lies on P-256.
    pub fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Option<PublicKey> {
        let point = Affine::on_curve(Fe::from_be_bytes(x)?, Fe::from_be_bytes(y)?)?;
        // Built here rather than on the first signature, so no request pays for it.
        generator_table();
        Some(PublicKey { table: OddMultiples::new(&point, KEY_WINDOW) })
    }

    /// Whether `signature` (r || s, 32 bytes each, big-endian: RFC 7518 §3.4) is a valid
    /// ECDSA signature of SHA-256(`message`) under this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Some((r_bytes, s_bytes)) = split_signature(signature) else {
            return false;
        };
        // r and s in [1, n - 1].
        let (Some(r), Some(s)) = (nonzero_scalar(r_bytes), nonzero_scalar(s_bytes)) else {
            return false;
        };
        let hash: [u8; 32] = Sha256::digest(message).into();
        let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(hash));
        let Some(w) = Option::<Scalar>::from(s.invert_vartime()) else {
            return false;
        };
        let u1: [u8; 32] = (e * w).to_bytes().into();
        let u2: [u8; 32] = (r * w).to_bytes().into();
        let point = double_mul(&u1, generator_table(), &u2, &self.table);
        x_matches(&point, r_bytes)
    }
}

fn split_signature(signature: &[u8]) -> Option<(&[u8; 32], &[u8; 32])> {
    let signature: &[u8; 64] = signature.try_into().ok()?;
    let (r, s) = signature.split_at(32);
    Some((r.try_into().ok()?, s.try_into().ok()?))
}

fn nonzero_scalar(bytes: &[u8; 32]) -> Option<Scalar> {
    let scalar = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(*bytes)))?;
    (!bool::from(p256::elliptic_curve::ff::Field::is_zero(&scalar))).then_some(scalar)
}

/// a·A + b·B by interleaved wNAF over the two tables.
fn double_mul(a: &[u8; 32], a_table: &OddMultiples, b: &[u8; 32], b_table: &OddMultiples) -> Jacobian {
    let a_digits = wnaf(a, a_table.window);
    let b_digits = wnaf(b, b_table.window);
    let top = (0..257).rev().find(|&i| a_digits[i] != 0 || b_digits[i] != 0);
    let mut acc = Jacobian::INFINITY;
    for i in (0..=top.unwrap_or(0)).rev() {
        acc = acc.double();
        if a_digits[i] != 0 {
            acc = acc.add_affine(&a_table.get(a_digits[i]));
        }
        if b_digits[i] != 0 {
            acc = acc.add_affine(&b_table.get(b_digits[i]));
        }
    }
    acc
}

/// Whether the affine x of `point`, reduced mod n, equals r (0 < r < n): x = X / Z² is r or
/// r + n (the latter only when r + n < p), checked as X = r·Z² or X = (r + n)·Z².
fn x_matches(point: &Jacobian, r: &[u8; 32]) -> bool {
    if point.is_infinity() {
        return false;
    }
    let z2 = point.z.square();
    // r < n < p, so r is a field element as it is.
    if point.x.equals(&Fe::from_reduced(r).mul(&z2)) {
        return true;
    }
    match add_be(r, &N) {
        Some(r_plus_n) => match Fe::from_be_bytes(&r_plus_n) {
            Some(candidate) => point.x.equals(&candidate.mul(&z2)),
            None => false,
        },
        None => false,
    }
}

/// a + b for big-endian 256-bit integers, `None` on overflow.
fn add_be(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    (carry == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{Signature, SigningKey};
    use p256::elliptic_curve::sec1::ToSec1Point;
    use p256::ProjectivePoint;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn array(bytes: &[u8]) -> [u8; 32] {
        bytes.try_into().unwrap()
    }

    fn fe_bytes(fe: &Fe) -> [u8; 32] {
        let mut plain = fiat::fiat_p256_non_montgomery_domain_field_element([0; 4]);
        fiat::fiat_p256_from_montgomery(&mut plain, &fe.0);
        let mut out = [0u8; 32];
        fiat::fiat_p256_to_bytes(&mut out, &plain.0);
        out.reverse();
        out
    }

    /// Affine (x, y) of a Jacobian point, big-endian; `None` at infinity.
    fn affine_bytes(p: &Jacobian) -> Option<([u8; 32], [u8; 32])> {
        (!p.is_infinity()).then(|| {
            let a = to_affine(&[*p])[0];
            (fe_bytes(&a.x), fe_bytes(&a.y))
        })
    }

    /// p256's affine (x, y) of a point, big-endian; `None` at infinity.
    fn reference_bytes(p: &ProjectivePoint) -> Option<([u8; 32], [u8; 32])> {
        let encoded = p.to_affine().to_sec1_point(false);
        let bytes = encoded.as_bytes();
        (bytes.len() == 65).then(|| (array(&bytes[1..33]), array(&bytes[33..])))
    }

    /// A deterministic scalar below n for test `i`.
    fn scalar(i: u32, label: &str) -> [u8; 32] {
        let hash: [u8; 32] = Sha256::digest(format!("{label}{i}")).into();
        <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(hash)).to_bytes().into()
    }

    fn key_of(signing: &SigningKey) -> PublicKey {
        let point = signing.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        PublicKey::from_coordinates(&array(&bytes[1..33]), &array(&bytes[33..])).unwrap()
    }

    #[test]
    fn rfc6979_a_2_5_sha256_signatures_verify() {
        // RFC 6979 A.2.5: P-256 key, SHA-256 signatures of "sample" and "test".
        let key = PublicKey::from_coordinates(
            &array(&hex("60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6")),
            &array(&hex("7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299")),
        )
        .unwrap();
        let cases = [
            (
                "sample",
                "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
                "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
            ),
            (
                "test",
                "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367",
                "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083",
            ),
        ];
        for (message, r, s) in cases {
            let signature = [hex(r), hex(s)].concat();
            assert!(key.verify(message.as_bytes(), &signature), "{message}");
            assert!(!key.verify(b"other", &signature), "{message}: another message");
        }
    }

    /// Wycheproof's `ecdsa_secp256r1_sha256_test` (as p256 0.14 ships it): every vector whose
    /// signature is strict DER with r and s in range, so it has a JWS (r || s) form, must get
    /// Wycheproof's verdict. The rest test DER parsing, which JWS signatures never go through.
    #[test]
    fn wycheproof_ecdsa_p256_sha256() {
        let blobs = blobby::parse_into_vec(include_bytes!("testdata/wycheproof-ecdsa-p256-sha256.blb")).unwrap();
        let (mut checked, mut valid) = (0, 0);
        for vector in blobs.chunks_exact(5) {
            let [wx, wy, message, der, pass] = vector else { unreachable!() };
            let coordinate = |c: &[u8]| {
                let mut out = [0u8; 32];
                let c = &c[c.len().saturating_sub(32)..];
                out[32 - c.len()..].copy_from_slice(c);
                out
            };
            let key = PublicKey::from_coordinates(&coordinate(wx), &coordinate(wy)).unwrap();
            let Ok(signature) = Signature::from_der(der) else {
                continue;
            };
            let pass = *pass == [1];
            assert_eq!(key.verify(message, &signature.to_bytes()), pass, "message {message:02x?}");
            checked += 1;
            valid += usize::from(pass);
        }
        // The file's counts, so that a parsing change cannot skip vectors unnoticed.
        assert_eq!((checked, valid), (167, 147));
    }

    #[test]
    fn agrees_with_p256_on_signatures_and_forgeries() {
        for i in 0..24 {
            let signing = SigningKey::from_bytes(&FieldBytes::from(scalar(i, "key"))).unwrap();
            let key = key_of(&signing);
            let message = format!("header.payload-{i}");
            let signature: Signature = signing.sign(message.as_bytes());
            let mut raw = signature.to_bytes().to_vec();
            assert!(key.verify(message.as_bytes(), &raw));
            assert!(signing.verifying_key().verify(message.as_bytes(), &signature).is_ok());
            // One flipped bit anywhere in the signature or the message fails.
            raw[(i as usize * 7) % 64] ^= 1 << (i % 8);
            assert!(!key.verify(message.as_bytes(), &raw));
            raw[(i as usize * 7) % 64] ^= 1 << (i % 8);
            assert!(!key.verify(format!("header.payload-{}", i + 1).as_bytes(), &raw));
            // Another key's signature fails.
            let other = SigningKey::from_bytes(&FieldBytes::from(scalar(i, "other"))).unwrap();
            assert!(!key_of(&other).verify(message.as_bytes(), &raw));
        }
    }

    #[test]
    fn out_of_range_signatures_are_refused() {
        let signing = SigningKey::from_bytes(&FieldBytes::from(scalar(1, "key"))).unwrap();
        let key = key_of(&signing);
        let signature: Signature = signing.sign(b"message");
        let raw = signature.to_bytes();
        let (r, s) = (array(&raw[..32]), array(&raw[32..]));
        let zero = [0u8; 32];
        for (r, s) in [(&zero, &s), (&r, &zero), (&N, &s), (&r, &N), (&[0xff; 32], &s), (&r, &[0xff; 32])] {
            assert!(!key.verify(b"message", &[r.as_slice(), s.as_slice()].concat()));
        }
        assert!(key.verify(b"message", &raw));
        assert!(!key.verify(b"message", &raw[..63]));
        assert!(!key.verify(b"message", &[raw.as_slice(), &[0]].concat()));
        assert!(!key.verify(b"message", b""));
    }

    #[test]
    fn keys_must_be_points_on_the_curve() {
        let g = (GX, GY);
        assert!(PublicKey::from_coordinates(&g.0, &g.1).is_some());
        let mut y = GY;
        y[31] ^= 1;
        assert!(PublicKey::from_coordinates(&GX, &y).is_none(), "off the curve");
        assert!(PublicKey::from_coordinates(&P, &GY).is_none(), "x = p");
        assert!(PublicKey::from_coordinates(&[0xff; 32], &GY).is_none(), "x > p");
        assert!(PublicKey::from_coordinates(&[0; 32], &[0; 32]).is_none(), "the SEC1 zero point");
    }

    #[test]
    fn double_mul_matches_p256() {
        let n_minus_1: [u8; 32] = (-Scalar::ONE).to_bytes().into();
        let mut two_255 = [0u8; 32];
        two_255[0] = 0x80;
        let mut special = vec![[0u8; 32], array(&Scalar::ONE.to_bytes()), n_minus_1, two_255];
        special.extend((0..12).map(|i| scalar(i, "u")));
        let g = ProjectivePoint::GENERATOR;
        for (i, &a) in special.iter().enumerate() {
            for (j, &b) in special.iter().enumerate() {
                let q_scalar = scalar((i * 31 + j) as u32, "q");
                let q = g * Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(q_scalar))).unwrap();
                let (qx, qy) = reference_bytes(&q).unwrap();
                let table = PublicKey::from_coordinates(&qx, &qy).unwrap().table;
                let ours = double_mul(&a, generator_table(), &b, &table);
                let sa = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(a))).unwrap();
                let sb = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(b))).unwrap();
                assert_eq!(affine_bytes(&ours), reference_bytes(&(g * sa + q * sb)), "a #{i}, b #{j}");
            }
        }
    }

    #[test]
    fn double_mul_handles_coincident_points() {
        // Q = G and Q = -G, with equal scalars: every addition may meet its own operand or its
        // negation (the doubling and infinity cases of the mixed addition).
        let g = ProjectivePoint::GENERATOR;
        let (gx, gy) = reference_bytes(&g).unwrap();
        let (nx, ny) = reference_bytes(&-g).unwrap();
        let plus = PublicKey::from_coordinates(&gx, &gy).unwrap().table;
        let minus = PublicKey::from_coordinates(&nx, &ny).unwrap().table;
        for i in 0..8 {
            let k = scalar(i, "k");
            let s = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(k))).unwrap();
            let twice = double_mul(&k, generator_table(), &k, &plus);
            assert_eq!(affine_bytes(&twice), reference_bytes(&(g * (s + s))));
            assert!(double_mul(&k, generator_table(), &k, &minus).is_infinity());
        }
    }

    #[test]
    fn wnaf_digits_rebuild_the_scalar() {
        let n_minus_1: [u8; 32] = (-Scalar::ONE).to_bytes().into();
        for window in [G_WINDOW, KEY_WINDOW] {
            for k in (0..32).map(|i| scalar(i, "w")).chain([n_minus_1, [0xff; 32]]) {
                let digits = wnaf(&k, window);
                let mut value = Scalar::ZERO;
                let mut since_nonzero = usize::MAX;
                for &d in digits.iter().rev() {
                    value = value.double();
                    value += match d < 0 {
                        true => -Scalar::from(u64::from(d.unsigned_abs())),
                        false => Scalar::from(d as u64),
                    };
                    if d != 0 {
                        assert!(d % 2 != 0 && i32::from(d.unsigned_abs()) < 1 << (window - 1), "digit {d}");
                        assert!(since_nonzero >= window as usize - 1, "non-adjacent");
                        since_nonzero = 0;
                    } else {
                        since_nonzero = since_nonzero.saturating_add(1);
                    }
                }
                let expected = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(k));
                assert_eq!(value, expected, "window {window}");
            }
        }
    }

    #[test]
    fn x_is_compared_with_r_and_with_r_plus_n() {
        // A stand-in Jacobian point whose X / Z² is r + n (possible when r + n < p).
        let z = Fe::from_be_bytes(&scalar(1, "z")).unwrap();
        let mut r = [0u8; 32];
        r[31] = 5;
        let r_plus_n = add_be(&r, &N).unwrap();
        let point = Jacobian { x: Fe::from_be_bytes(&r_plus_n).unwrap().mul(&z.square()), y: Fe::one(), z };
        assert!(x_matches(&point, &r));
        r[31] = 6;
        assert!(!x_matches(&point, &r));
        // r + n >= p: only r itself can match.
        let p_minus_n = {
            let mut out = [0u8; 32];
            let mut borrow = 0i16;
            for i in (0..32).rev() {
                let d = i16::from(P[i]) - i16::from(N[i]) - borrow;
                out[i] = d.rem_euclid(256) as u8;
                borrow = i16::from(d < 0);
            }
            out
        };
        assert!(Fe::from_be_bytes(&add_be(&p_minus_n, &N).unwrap()).is_none());
        let point = Jacobian { x: Fe::from_be_bytes(&p_minus_n).unwrap().mul(&z.square()), y: Fe::one(), z };
        assert!(x_matches(&point, &p_minus_n));
        assert!(!x_matches(&Jacobian::INFINITY, &p_minus_n));
    }
}
