//! AES-SIV (RFC 5297) over one associated-data component, keyed once per data key.
//!
//! Why not `aes_siv`'s `Siv` per value: it is neither `Clone` nor shareable across calls
//! (`&mut self`), so each value keyed AES twice (its CMAC and, per call, its CTR cipher) and
//! recomputed S2V's first block, CMAC(0^128), which depends on the key alone. Under wasm, where
//! AES runs in software, that was about 60k of the 115k instructions a deterministic field cost
//! over a randomized one. This is the same construction over the same crates (`cmac`, `ctr`,
//! `aes`, `dbl`) with that keyed state computed once, and S2V's state after the associated data
//! remembered for recent associated data (a deterministic field's repeats on every request); the
//! tests hold it to RFC 5297's vector and to `aes_siv` itself on generated keys, data and
//! lengths.

use aes_gcm::aes::cipher::consts::U16;
use aes_gcm::aes::cipher::{
    BlockCipher, BlockEncrypt, BlockEncryptMut, InnerIvInit, Key, KeyInit, KeySizeUser, StreamCipherCore,
};
use aes_gcm::aes::Aes256;
use cmac::{Cmac, Mac};
use ctr::flavors::Ctr128BE;
use ctr::CtrCore;
use dbl::Dbl;
use std::cell::RefCell;

/// The synthetic IV's length, which is also the tag's.
pub const IV_LEN: usize = 16;

type Block = aes_gcm::aes::Block;

/// Associated data remembered per key, and the longest remembered.
const REMEMBERED: usize = 32;
const REMEMBERED_LEN: usize = 256;

/// A keyed AES-SIV: the MAC half's CMAC, the encryption half's cipher, CMAC(0^128), and S2V's
/// state after recently seen associated data.
#[derive(Clone)]
pub struct Siv<C: BlockCipher<BlockSize = U16> + BlockEncrypt + BlockEncryptMut + Clone = Aes256> {
    mac: Cmac<C>,
    cipher: C,
    zero_mac: Block,
    headers: RefCell<Headers>,
}

/// S2V's `D` after `dbl(CMAC(0))` and the associated data's CMAC: a function of the key and the
/// associated data alone, which for a deterministic field repeats on every request (field name,
/// key id, tenant). Up to [`REMEMBERED`] entries, replaced in turn; compared in full, so an entry
/// is used only for the very same bytes. The associated data is not secret.
#[derive(Clone, Default)]
struct Headers {
    entries: Vec<(Vec<u8>, Block)>,
    next: usize,
}

impl Headers {
    fn get(&self, aad: &[u8]) -> Option<Block> {
        self.entries.iter().find(|(seen, _)| seen == aad).map(|(_, d)| *d)
    }

    fn insert(&mut self, aad: &[u8], d: Block) {
        if aad.len() > REMEMBERED_LEN {
            return;
        }
        if self.entries.len() < REMEMBERED {
            self.entries.push((aad.to_vec(), d));
        } else if let Some(slot) = self.entries.get_mut(self.next) {
            *slot = (aad.to_vec(), d);
            self.next = (self.next + 1) % REMEMBERED;
        }
    }
}

impl<C> Siv<C>
where
    C: BlockCipher<BlockSize = U16> + BlockEncrypt + BlockEncryptMut + KeyInit + Clone,
    Cmac<C>: Mac + KeyInit + KeySizeUser<KeySize = C::KeySize> + Clone,
{
    /// Keys from the halves of RFC 5297's double-length key: the first for S2V, the second
    /// for CTR.
    pub fn new(mac_key: &Key<C>, cipher_key: &Key<C>) -> Self {
        let mac = <Cmac<C> as KeyInit>::new(mac_key);
        let zero_mac = mac.clone().chain_update([0u8; 16]).finalize().into_bytes();
        Self {
            mac,
            cipher: C::new(cipher_key),
            zero_mac: Block::clone_from_slice(&zero_mac),
            headers: RefCell::default(),
        }
    }

    /// `dbl(CMAC(0)) xor CMAC(aad)`, remembered for the next value with the same `aad`; `mac`
    /// (the keyed CMAC, left reset) computes it when it is not remembered.
    fn header(&self, aad: &[u8], mac: &mut Cmac<C>) -> Block {
        if let Some(d) = self.headers.try_borrow().ok().and_then(|headers| headers.get(aad)) {
            return d;
        }
        let mut d = self.zero_mac.dbl();
        mac.update(aad);
        xor(&mut d, &mac.finalize_reset().into_bytes());
        if let Ok(mut headers) = self.headers.try_borrow_mut() {
            headers.insert(aad, d);
        }
        d
    }

    /// S2V(aad, msg) (RFC 5297 section 2.4) up to its last CMAC call, left open so that
    /// sealing can finalize it and opening can verify it in constant time.
    fn s2v(&self, aad: &[u8], msg: &[u8]) -> Cmac<C> {
        let mut mac = self.mac.clone();
        let mut d = self.header(aad, &mut mac);
        match msg.split_at_checked(msg.len().wrapping_sub(IV_LEN)) {
            Some((head, last)) => {
                // len(msg) >= 16: T = msg xorend D.
                mac.update(head);
                xor(&mut d, last);
            }
            None => {
                // len(msg) < 16: T = dbl(D) xor pad(msg).
                d = d.dbl();
                xor(&mut d, msg);
                d[msg.len()] ^= 0x80;
            }
        }
        mac.update(&d);
        mac
    }

    /// XORs `msg` with AES-CTR's keystream from `iv` with the two bits RFC 5297 clears.
    fn ctr(&self, iv: &[u8], msg: &mut [u8]) {
        let mut counter = Block::clone_from_slice(iv);
        counter[8] &= 0x7f;
        counter[12] &= 0x7f;
        CtrCore::<C, Ctr128BE>::inner_iv_init(self.cipher.clone(), &counter).apply_keystream_partial(msg.into());
    }

    /// `V || C`.
    pub fn seal(&self, aad: &[u8], msg: &[u8]) -> Vec<u8> {
        let iv = self.s2v(aad, msg).finalize().into_bytes();
        let mut out = Vec::with_capacity(IV_LEN + msg.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(msg);
        let (iv, body) = out.split_at_mut(IV_LEN);
        self.ctr(iv, body);
        out
    }

    /// The plaintext of `V || C`; `None` when it is not authentic.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (iv, body) = sealed.split_at_checked(IV_LEN)?;
        let mut msg = body.to_vec();
        self.ctr(iv, &mut msg);
        self.s2v(aad, &msg).verify_slice(iv).ok()?;
        Some(msg)
    }
}

fn xor(into: &mut Block, from: &[u8]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::testing::hex;
    use aes_gcm::aes::Aes128;
    use aes_siv::siv::Aes256Siv;

    #[test]
    fn matches_rfc_5297_a1() {
        let key = hex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        let ad = hex("101112131415161718191a1b1c1d1e1f2021222324252627");
        let pt = hex("112233445566778899aabbccddee");
        let siv = Siv::<Aes128>::new(key[..16].into(), key[16..].into());
        let out = siv.seal(&ad, &pt);
        assert_eq!(out, hex("85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c"));
        assert_eq!(siv.open(&ad, &out), Some(pt));
    }

    #[test]
    fn equals_aes_siv_on_generated_keys_data_and_lengths() {
        let mut state = 0x853c_49e6_748f_ea9bu64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect()
        };
        for round in 0..600 {
            let key = bytes(64);
            let aad = bytes(round % 41);
            let msg = bytes(round % 67);
            let ours = Siv::<Aes256>::new(key[..32].into(), key[32..].into());
            let sealed = ours.seal(&aad, &msg);
            let theirs = Aes256Siv::new_from_slice(&key).unwrap().encrypt([&aad], &msg).unwrap();
            assert_eq!(sealed, theirs, "round {round}");
            assert_eq!(ours.open(&aad, &sealed), Some(msg.clone()));
            // Any flipped bit, of the IV or the ciphertext, fails; so does other data.
            let mut bad = sealed.clone();
            bad[round % sealed.len()] ^= 1 << (round % 8);
            assert_eq!(ours.open(&aad, &bad), None, "round {round}");
            assert_eq!(ours.open(&[aad.as_slice(), b"x"].concat(), &sealed), None);
        }
        let siv = Siv::<Aes256>::new(&[1; 32].into(), &[2; 32].into());
        assert_eq!(siv.open(b"", &[0; IV_LEN - 1]), None);
    }

    #[test]
    fn remembered_associated_data_gives_the_same_ciphertexts() {
        let key = [7u8; 64];
        let ours = Siv::<Aes256>::new(key[..32].into(), key[32..].into());
        let mut theirs = Aes256Siv::new_from_slice(&key).unwrap();
        // Three data seen again and again, among more distinct ones than are remembered, and
        // some too long to remember.
        for round in 0..(4 * REMEMBERED) {
            let aad = match round % 4 {
                0 => format!("tenant-{}", round % 3).into_bytes(),
                1 => format!("once-{round}").into_bytes(),
                2 => vec![b'x'; REMEMBERED_LEN + 1 + round % 2],
                _ => b"tenant-1".to_vec(),
            };
            let msg = format!("value {}", round % 5).into_bytes();
            let sealed = ours.seal(&aad, &msg);
            assert_eq!(sealed, theirs.encrypt([&aad], &msg).unwrap(), "round {round}");
            assert_eq!(ours.open(&aad, &sealed), Some(msg));
            assert_eq!(ours.open(b"tenant-9", &sealed), None);
        }
        let headers = ours.headers.borrow();
        assert_eq!(headers.entries.len(), REMEMBERED);
        assert!(headers.entries.iter().all(|(aad, _)| aad.len() <= REMEMBERED_LEN));
    }
}
