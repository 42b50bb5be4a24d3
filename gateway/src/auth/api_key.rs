//! The API key format: `sf-` + 40 base62 characters for project keys, `sf-admin-` + 40 for
//! organization admin keys. The database keeps the SHA-256 of the whole key and a short visible
//! prefix; the key itself is shown once, in the response that creates it.

use super::secret::{is_base62, random_base62, sha256_hex};

pub const PROJECT_PREFIX: &str = "sf-";
pub const ADMIN_PREFIX: &str = "sf-admin-";
/// Random characters after the prefix: 40 base62 characters are about 238 bits.
pub const SECRET_LEN: usize = 40;
/// Random characters kept visible (after the prefix) so people can tell their keys apart.
const VISIBLE_LEN: usize = 6;

pub use store::api_keys::KeyKind;

/// The visible prefix of a kind of key.
fn prefix(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Project => PROJECT_PREFIX,
        KeyKind::Admin => ADMIN_PREFIX,
    }
}

/// A freshly minted key: `value` goes to the client once, `hash` and `prefix` to the database.
pub struct NewKey {
    pub value: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate(kind: KeyKind) -> NewKey {
    let secret = random_base62(SECRET_LEN);
    let value = format!("{}{secret}", prefix(kind));
    let prefix = format!("{}{}", prefix(kind), &secret[..VISIBLE_LEN]);
    NewKey {
        hash: sha256_hex(&value),
        value,
        prefix,
    }
}

/// The form shown in listings, e.g. `sf-AbC123...`.
pub fn redacted(prefix: &str) -> String {
    format!("{prefix}...")
}

/// Whether `token` looks like one of our keys (and which), before any database lookup.
pub fn parse(token: &str) -> Option<KeyKind> {
    let (kind, secret) = if let Some(rest) = token.strip_prefix(ADMIN_PREFIX) {
        (KeyKind::Admin, rest)
    } else {
        (KeyKind::Project, token.strip_prefix(PROJECT_PREFIX)?)
    };
    (secret.len() >= 32 && secret.len() <= 128 && is_base62(secret)).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_format() {
        let key = generate(KeyKind::Project);
        assert!(key.value.starts_with("sf-"));
        assert!(!key.value.starts_with("sf-admin-"));
        assert_eq!(key.value.len(), 3 + SECRET_LEN);
        assert_eq!(parse(&key.value), Some(KeyKind::Project));
        assert!(key.value.starts_with(&key.prefix));
        assert_eq!(key.hash, sha256_hex(&key.value));
        assert!(!key.hash.contains(&key.value[3..]));

        let admin = generate(KeyKind::Admin);
        assert!(admin.value.starts_with("sf-admin-"));
        assert_eq!(parse(&admin.value), Some(KeyKind::Admin));
    }

    #[test]
    fn malformed_keys_are_rejected_before_the_database() {
        assert_eq!(parse("sk-abc"), None);
        assert_eq!(parse("sf-short"), None);
        assert_eq!(parse(&format!("sf-{}!", "a".repeat(40))), None);
        assert_eq!(parse(&format!("sf-admin-{}", "a".repeat(31))), None);
    }
}
