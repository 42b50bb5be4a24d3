//! What comes in (`NewRequest`) and what goes out (`Delta`): the protocol crate's types, so a
//! backend out of process speaks the same ones.

pub use protocol::{Delta, FinishReason, NewRequest, StopReason, TokenLogprob, Usage};

/// One sequence (one of a request's `n` choices); never reused within a scheduler.
pub type SeqId = u64;
