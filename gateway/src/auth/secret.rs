//! Random identifiers and secrets, their hashes, and constant-time comparison (kept with the
//! store, which mints ids with them).

pub use store::secret::*;
