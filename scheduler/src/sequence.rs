//! A request and its sequences (one per choice), and what happens when a sampled token
//! arrives: its text is decoded and the stop conditions are applied in vLLM's order.

use std::sync::Arc;

use engine::SamplingParams;

use crate::detokenizer::{find_stop_string, floor_char_boundary, stop_holdback, DecodeStream};
use crate::kv::block_hash::{hash_block, BlockHash};
use crate::request::{FinishReason, SeqId, StopReason, Usage};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeqState {
    Waiting,
    Running,
    Preempted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Not forked yet (choices 1.. of an `n > 1` request wait for the prompt).
    Pending,
    Live(SeqId),
    Done,
}

pub(crate) struct Request {
    pub(crate) id: String,
    pub(crate) key: u64,
    pub(crate) tenant: String,
    pub(crate) priority: i32,
    pub(crate) prompt: Arc<[u32]>,
    pub(crate) prompt_hashes: Vec<BlockHash>,
    pub(crate) cache_keys: Vec<u8>,
    pub(crate) params: SamplingParams,
    /// `max_tokens`, capped by what `max_model_len` leaves.
    pub(crate) max_tokens: usize,
    pub(crate) choices: Vec<Choice>,
    pub(crate) admitted: bool,
    pub(crate) forked: bool,
    pub(crate) completion_tokens: usize,
    pub(crate) cached_tokens: usize,
    pub(crate) num_preemptions: usize,
}

pub(crate) struct Sequence {
    pub(crate) req: u64,
    pub(crate) index: usize,
    pub(crate) params: Arc<SamplingParams>,
    pub(crate) output: Vec<u32>,
    pub(crate) num_computed: usize,
    /// Hashes of every full block of prompt + output.
    pub(crate) hashes: Vec<BlockHash>,
    pub(crate) state: SeqState,
    pub(crate) decode: Box<dyn DecodeStream>,
    pub(crate) text: String,
    /// Bytes of `text` already sent.
    pub(crate) emitted: usize,
    /// Prompt tokens already charged to the tenant (recomputation is not its fault).
    pub(crate) charged_input: usize,
}

impl Sequence {
    pub(crate) fn num_tokens(&self, prompt_len: usize) -> usize {
        prompt_len + self.output.len()
    }

    pub(crate) fn token_at(&self, prompt: &[u32], pos: usize) -> u32 {
        if pos < prompt.len() {
            prompt[pos]
        } else {
            self.output[pos - prompt.len()]
        }
    }
}

/// What one accepted token did to its sequence.
pub(crate) struct TokenOutcome {
    pub(crate) finish: Option<FinishReason>,
    pub(crate) stop_reason: Option<StopReason>,
    /// Text that became final (held-back text is released once it cannot start a stop string).
    pub(crate) text: String,
}

impl Sequence {
    /// Appends a sampled token, decodes it and checks, in order: EOS and stop token ids
    /// (not before `min_tokens`), stop strings on the text (cut exactly), then the length caps.
    pub(crate) fn accept_token(
        &mut self,
        token: u32,
        req: &Request,
        eos_token_ids: &[u32],
        max_model_len: usize,
    ) -> TokenOutcome {
        let seq = self;
        seq.output.push(token);
        let params = &req.params;
        let n_out = seq.output.len();
        let mut finish = None;
        let mut stop_reason = None;
        let mut show_token_text = true;
        // vLLM: nothing but the length cap ends a sequence before `min_tokens`.
        if n_out >= params.min_tokens {
            if !params.ignore_eos && eos_token_ids.contains(&token) {
                finish = Some(FinishReason::Stop);
                show_token_text = false;
            } else if params.stop_token_ids.contains(&token) {
                finish = Some(FinishReason::Stop);
                stop_reason = Some(StopReason::TokenId(token));
                show_token_text = params.include_stop_str_in_output;
            }
        }
        if show_token_text {
            let piece = seq.decode.step(token);
            let prev_len = seq.text.len();
            seq.text.push_str(&piece);
            if finish.is_none() && n_out >= params.min_tokens && !params.stop.is_empty() {
                if let Some((cut, stop)) = find_stop_string(
                    &seq.text,
                    prev_len,
                    &params.stop,
                    params.include_stop_str_in_output,
                ) {
                    seq.text.truncate(cut);
                    finish = Some(FinishReason::Stop);
                    stop_reason = Some(StopReason::Text(stop));
                }
            }
        }
        if finish.is_none()
            && (n_out >= req.max_tokens || seq.num_tokens(req.prompt.len()) >= max_model_len)
        {
            finish = Some(FinishReason::Length);
        }

        let upto = if finish.is_some() {
            seq.text.len()
        } else {
            floor_char_boundary(
                &seq.text,
                seq.text.len().saturating_sub(stop_holdback(&params.stop)),
            )
        };
        let text = if upto > seq.emitted {
            seq.text[seq.emitted..upto].to_string()
        } else {
            String::new()
        };
        seq.emitted = seq.emitted.max(upto);
        TokenOutcome {
            finish,
            stop_reason,
            text,
        }
    }
}

pub(crate) fn usage_of(req: &Request) -> Usage {
    Usage {
        prompt_tokens: req.prompt.len(),
        completion_tokens: req.completion_tokens,
        cached_tokens: req.cached_tokens,
        num_preemptions: req.num_preemptions,
    }
}

pub(crate) fn extend_hashes(
    seq: &mut Sequence,
    prompt: &[u32],
    block_size: usize,
    first_block_keys: &[u8],
) {
    let total = seq.num_tokens(prompt.len());
    while (seq.hashes.len() + 1) * block_size <= total {
        let i = seq.hashes.len();
        let block: Vec<u32> = (i * block_size..(i + 1) * block_size)
            .map(|p| seq.token_at(prompt, p))
            .collect();
        let keys: &[u8] = if i == 0 { first_block_keys } else { &[] };
        let h = hash_block(seq.hashes.last(), &block, keys);
        seq.hashes.push(h);
    }
}
