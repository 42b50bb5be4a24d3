//! Who is calling, and what they may do.
//!
//! `secret` (random ids, hashes, constant-time compare) ▸ `api_key` (key format) ▸ `password`
//! (argon2, with `login_throttle` against guessing) ▸ `session` (access JWT + refresh tokens) ▸ `principal` (the extractor every route
//! takes, with its permission checks).

pub mod api_key;
pub mod login_throttle;
pub mod password;
pub mod principal;
pub mod secret;
pub mod session;

pub use principal::{Credential, Permission, Principal, RequestContext};
