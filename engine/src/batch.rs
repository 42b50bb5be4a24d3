//! One engine step: the new tokens of any mix of sequences, and where their K/V go.

/// The part of one sequence that a step computes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SequenceStep {
    /// New tokens: a prefill chunk, or the one token sampled last step.
    pub tokens: Vec<u32>,
    /// Position of each new token in its sequence (usually `start..start + tokens.len()`).
    pub positions: Vec<usize>,
    /// KV cache blocks of the sequence, covering positions `0..=positions.last()`.
    pub block_table: Vec<u32>,
    /// Cache slot (`block * block_size + offset`) each new token's K/V is written to.
    pub slot_mapping: Vec<usize>,
    /// Return logits for the last new token (it will be sampled).
    pub want_logits: bool,
}

impl SequenceStep {
    /// The step for tokens at positions `start..start + tokens.len()`, with the slot mapping
    /// derived from `block_table`.
    pub fn contiguous(
        tokens: Vec<u32>,
        start: usize,
        block_table: Vec<u32>,
        block_size: usize,
        want_logits: bool,
    ) -> Self {
        let positions: Vec<usize> = (start..start + tokens.len()).collect();
        let slot_mapping = positions
            .iter()
            .map(|&p| {
                block_table
                    .get(p / block_size)
                    .map_or(usize::MAX, |&b| b as usize * block_size + p % block_size)
            })
            .collect();
        Self {
            tokens,
            positions,
            block_table,
            slot_mapping,
            want_logits,
        }
    }
}

/// All sequences of one step. Their tokens are flattened into one `[T, hidden]` matrix.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepBatch {
    pub seqs: Vec<SequenceStep>,
}

impl StepBatch {
    /// Total number of new tokens in the step.
    pub fn num_tokens(&self) -> usize {
        self.seqs.iter().map(|s| s.tokens.len()).sum()
    }
}
