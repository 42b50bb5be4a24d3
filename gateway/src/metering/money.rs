//! Money as integer micro-units of USD, and a model's token prices (kept with the store,
//! whose ledger holds them).

pub use store::money::*;
