//! Fakes that stand in for the model, for deterministic tests of everything above it (here and
//! in the gateway).
//!
//! `FakeExecutor` keeps a fake KV cache: every token's slot holds a hash of the whole prefix
//! up to it, computed from the slot of the previous position *through the block table*. The
//! token it samples is a function of that hash, and it checks the hash against the token ids
//! the scheduler claims the sequence has. So a wrong block table, a bad prefix-cache hit, a
//! shared block overwritten or a slot never written all show up as an executor error or as
//! different tokens: the fake tests the scheduler's KV bookkeeping, not just its queues.

use std::collections::HashSet;
use std::time::Duration;

use engine::SamplingParams;

use crate::detokenizer::{DecodeStream, Detokenizer};
use crate::executor::{ExecutorError, ModelExecutor, SampledToken, StepPlan};

const ROOT: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(a: u64, b: u64) -> u64 {
    // splitmix64 finaliser over a combination: cheap, well spread, deterministic.
    let mut z = a ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9).rotate_left(31);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn kv_of(prev: u64, token: u32, pos: usize) -> u64 {
    mix(mix(prev, token as u64), pos as u64)
}

/// A deterministic stand-in for model + sampler.
#[derive(Clone, Debug)]
pub struct FakeExecutor {
    pub block_size: usize,
    pub vocab_size: u32,
    pub eos_token_id: Option<u32>,
    /// EOS is picked with probability 1 / `eos_one_in` (once `min_tokens` allow it).
    pub eos_one_in: u64,
    /// Steps (by `step_id`) that fail with an error.
    pub fail_steps: HashSet<u64>,
    /// Steps (by `step_id`) that panic.
    pub panic_steps: HashSet<u64>,
    /// Sleep per step, to look like a model to time-based tests.
    pub step_delay: Duration,
    pub num_steps: u64,
    pub num_tokens_computed: u64,
    slots: Vec<Option<u64>>,
}

impl FakeExecutor {
    pub fn new(num_blocks: usize, block_size: usize) -> Self {
        Self {
            block_size,
            vocab_size: 1000,
            eos_token_id: Some(0),
            eos_one_in: 64,
            fail_steps: HashSet::new(),
            panic_steps: HashSet::new(),
            step_delay: Duration::ZERO,
            num_steps: 0,
            num_tokens_computed: 0,
            slots: vec![None; num_blocks * block_size],
        }
    }

    /// The token a sequence with these tokens samples next, computed without any cache: what
    /// every correctly scheduled run must produce.
    pub fn reference_token(&self, params: &SamplingParams, prompt: &[u32], output: &[u32]) -> u32 {
        let mut h = ROOT;
        for (pos, &t) in prompt.iter().chain(output).enumerate() {
            h = kv_of(h, t, pos);
        }
        self.choose(h, params, output.len())
    }

    fn choose(&self, context: u64, params: &SamplingParams, output_index: usize) -> u32 {
        let r = if params.is_greedy() {
            mix(context, 1)
        } else {
            mix(mix(context, params.seed.unwrap_or(0)), output_index as u64)
        };
        let may_end = !params.ignore_eos && output_index >= params.min_tokens;
        if let Some(eos) = self.eos_token_id {
            if may_end && (r >> 40) % self.eos_one_in.max(1) == 0 {
                return eos;
            }
            let t = (r % self.vocab_size as u64) as u32;
            if t == eos {
                return (eos + 1) % self.vocab_size;
            }
            return t;
        }
        (r % self.vocab_size as u64) as u32
    }

    fn slot_of(&self, table: &[u32], pos: usize) -> Option<usize> {
        let b = *table.get(pos / self.block_size)? as usize;
        Some(b * self.block_size + pos % self.block_size)
    }
}

impl ModelExecutor for FakeExecutor {
    fn execute(&mut self, plan: &StepPlan) -> Result<Vec<SampledToken>, ExecutorError> {
        self.num_steps += 1;
        if !self.step_delay.is_zero() {
            std::thread::sleep(self.step_delay);
        }
        if self.panic_steps.contains(&plan.step_id) {
            panic!("fake executor told to panic at step {}", plan.step_id);
        }
        if self.fail_steps.contains(&plan.step_id) {
            return Err(ExecutorError::Other(format!(
                "fake failure at step {}",
                plan.step_id
            )));
        }
        let err = |m: String| Err(ExecutorError::Other(m));
        let mut written = HashSet::new();
        let mut last_kv = vec![0u64; plan.batch.seqs.len()];
        for (i, s) in plan.batch.seqs.iter().enumerate() {
            for (j, (&t, &pos)) in s.tokens.iter().zip(&s.positions).enumerate() {
                let Some(slot) = self.slot_of(&s.block_table, pos) else {
                    return err(format!("position {pos} beyond the block table"));
                };
                if s.slot_mapping[j] != slot || slot >= self.slots.len() {
                    return err(format!(
                        "slot mapping {} disagrees with the block table",
                        s.slot_mapping[j]
                    ));
                }
                if !written.insert(slot) {
                    return err(format!("slot {slot} written twice in one step"));
                }
                let prev = if pos == 0 {
                    ROOT
                } else {
                    let Some(ps) = self.slot_of(&s.block_table, pos - 1) else {
                        return err(format!("position {} beyond the block table", pos - 1));
                    };
                    match self.slots[ps] {
                        Some(v) => v,
                        None => return err(format!("read of slot {ps}, never written")),
                    }
                };
                let v = kv_of(prev, t, pos);
                self.slots[slot] = Some(v);
                last_kv[i] = v;
            }
            self.num_tokens_computed += s.tokens.len() as u64;
        }
        let mut out = Vec::with_capacity(plan.sampling.len());
        for si in &plan.sampling {
            let s = &plan.batch.seqs[si.batch_index];
            if !s.want_logits {
                return err("sampling a sequence without logits".into());
            }
            let mut expect = ROOT;
            for (pos, &t) in si
                .prompt_token_ids
                .iter()
                .chain(&si.output_token_ids)
                .enumerate()
            {
                expect = kv_of(expect, t, pos);
            }
            if expect != last_kv[si.batch_index] {
                return err(format!(
                    "KV cache of sequence {} does not hold its tokens",
                    si.seq_id
                ));
            }
            let token = self.choose(expect, &si.params, si.output_index);
            let (logprob, top) = match si.params.logprobs {
                Some(k) => {
                    let lp = -((mix(expect, 7) % 1000) as f32) / 100.0;
                    let top = (0..k as u32)
                        .map(|j| ((token + j) % self.vocab_size, lp - j as f32))
                        .collect();
                    (Some(lp), top)
                }
                None => (None, Vec::new()),
            };
            out.push(SampledToken {
                seq_id: si.seq_id,
                token_id: token,
                logprob,
                top_logprobs: top,
                error: None,
            });
        }
        Ok(out)
    }
}

/// A detokenizer over a made-up vocabulary that exercises what real ones do: multi-byte
/// characters, one character split over two tokens, special tokens.
#[derive(Clone, Debug, Default)]
pub struct FakeDetokenizer {
    pub special_token_ids: Vec<u32>,
}

impl FakeDetokenizer {
    /// The bytes token `t` stands for.
    pub fn piece(t: u32) -> Vec<u8> {
        match t % 40 {
            k @ 0..=25 => vec![b'a' + k as u8],
            26 => b" ".to_vec(),
            27 => b"\n".to_vec(),
            28 => "é".as_bytes().to_vec(),
            // "€" is E2 82 AC: its first two bytes and its last are different tokens.
            29 => vec![0xE2, 0x82],
            30 => vec![0xAC],
            31 => b"stop".to_vec(),
            k => format!(" w{k}").into_bytes(),
        }
    }

    /// Decodes a whole token sequence at once (what the incremental stream must add up to).
    pub fn decode_all(&self, tokens: &[u32], skip_special_tokens: bool) -> String {
        let mut s = self.stream(&[], skip_special_tokens);
        tokens.iter().map(|&t| s.step(t)).collect()
    }
}

impl Detokenizer for FakeDetokenizer {
    fn stream(&self, _prompt: &[u32], skip_special_tokens: bool) -> Box<dyn DecodeStream> {
        Box::new(FakeDecodeStream {
            special: self.special_token_ids.clone(),
            skip_special_tokens,
            pending: Vec::new(),
        })
    }
}

struct FakeDecodeStream {
    special: Vec<u32>,
    skip_special_tokens: bool,
    pending: Vec<u8>,
}

impl DecodeStream for FakeDecodeStream {
    fn step(&mut self, token_id: u32) -> String {
        if self.special.contains(&token_id) {
            return if self.skip_special_tokens {
                String::new()
            } else {
                format!("<|{token_id}|>")
            };
        }
        self.pending.extend(FakeDetokenizer::piece(token_id));
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[..good]).expect("validated prefix"),
                    );
                    match e.error_len() {
                        // Incomplete character at the end: wait for the next token.
                        None => {
                            self.pending.drain(..good);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..good + bad);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_character_is_never_cut() {
        let d = FakeDetokenizer::default();
        let mut s = d.stream(&[], true);
        assert_eq!(s.step(0), "a");
        assert_eq!(s.step(29), "", "half of a character waits");
        assert_eq!(s.step(30), "€");
        assert_eq!(
            s.step(30),
            "\u{FFFD}",
            "a stray continuation byte is replaced"
        );
        assert_eq!(d.decode_all(&[28, 31, 26], true), "éstop ");
    }
}
