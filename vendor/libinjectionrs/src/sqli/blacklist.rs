// SQL injection blacklist checker - matches C implementation exactly

use super::sqli_data;

/// Check if a fingerprint is blacklisted
/// This matches libinjection_sqli_blacklist from the C version
pub fn is_blacklisted(fingerprint: &str) -> bool {
    // Match the C version: convert v0 fingerprint to v1 format
    // v0: up to 5 chars, mixed case  
    // v1: '0' prefix, up to 5 more chars, upper case
    
    if fingerprint.is_empty() {
        return false;
    }
    
    // Build the v1 fingerprint with '0' prefix and uppercase (Palisade patch: in a stack
    // buffer, not a String; a fingerprint is at most 8 bytes)
    let bytes = fingerprint.as_bytes();
    let mut fp2 = [0u8; 9];
    let Some(v1) = fp2.get_mut(1..=bytes.len()) else {
        return false;
    };
    v1.copy_from_slice(bytes);
    v1.make_ascii_uppercase();
    fp2[0] = b'0';

    // Check if this fingerprint exists in the keywords table with type 'F'
    sqli_data::lookup_word_bytes(&fp2[..=bytes.len()]) == crate::sqli::TokenType::Fingerprint
}
