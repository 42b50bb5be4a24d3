//! Random identifiers and secrets, their hashes, and constant-time comparison.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` characters drawn uniformly from base62 by the thread-local CSPRNG (ChaCha, OS-seeded).
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect()
}

/// A new public identifier such as `proj_4fT...`: unguessable, so ids leak nothing.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(24))
}

/// Lower-case hex SHA-256, the only form in which secrets are stored.
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lower-case hex of `bytes` (digests and MACs).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The bytes of lower- or upper-case hex; `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Compares two secrets (or hashes) without leaking where they first differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_are_base62_of_the_asked_length_and_differ() {
        let a = random_base62(40);
        let b = random_base62(40);
        assert_eq!(a.len(), 40);
        assert!(is_base62(&a));
        assert_ne!(a, b);
    }

    #[test]
    fn hex_round_trips_and_bad_hex_is_refused() {
        let bytes = "ops team.β".as_bytes();
        assert_eq!(unhex(&hex(bytes)).unwrap(), bytes);
        assert_eq!(unhex("ABff").unwrap(), [0xab, 0xff]);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
