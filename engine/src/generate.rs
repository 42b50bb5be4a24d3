//! A single-sequence generation loop straight over the engine (no scheduler): for the
//! `starfire generate` command, tests and benchmarks.

use crate::batch::{SequenceStep, StepBatch};
use crate::error::Result;
use crate::model::Model;
use crate::sampling::{sample, SampleContext, SampledToken, SamplingParams};

/// Options for [`generate`] beyond the sampling parameters.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub block_size: usize,
    /// Prefill the prompt in chunks of this many tokens (0 = all at once).
    pub prefill_chunk: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            block_size: 16,
            prefill_chunk: 0,
        }
    }
}

/// Generates up to `params.max_tokens` tokens after `prompt`, stopping at EOS (unless
/// `ignore_eos`) or a stop token id. Returns every sampled token, the stopping one included.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    params: &SamplingParams,
    seed: u64,
    opts: &GenerateOptions,
) -> Result<Vec<SampledToken>> {
    params.validate()?;
    let max_new = params
        .max_tokens
        .unwrap_or(model.config.max_position_embeddings);
    let total = (prompt.len() + max_new).min(model.config.max_position_embeddings);
    let blocks = total.div_ceil(opts.block_size).max(1);
    let mut cache = model.new_kv_cache(opts.block_size, blocks)?;
    let table: Vec<u32> = (0..blocks as u32).collect();
    let eos = model.tokenizer.eos_token_ids().to_vec();

    let chunk = if opts.prefill_chunk == 0 {
        prompt.len().max(1)
    } else {
        opts.prefill_chunk
    };
    let mut logits = Vec::new();
    let mut start = 0;
    while start < prompt.len() {
        let end = (start + chunk).min(prompt.len());
        let step = SequenceStep::contiguous(
            prompt[start..end].to_vec(),
            start,
            table.clone(),
            opts.block_size,
            end == prompt.len(),
        );
        logits = model.step(&mut cache, &StepBatch { seqs: vec![step] })?;
        start = end;
    }
    let mut out: Vec<SampledToken> = Vec::new();
    let mut output_ids: Vec<u32> = Vec::new();
    while let Some(mut row) = logits.pop() {
        let ctx = SampleContext {
            mask: None,
            prompt_tokens: prompt,
            output_tokens: &output_ids,
            eos_token_ids: &eos,
            seed,
        };
        let s = sample(&mut row, params, &ctx);
        let token = s.token;
        out.push(s);
        output_ids.push(token);
        let stopped =
            (!params.ignore_eos && eos.contains(&token)) || params.stop_token_ids.contains(&token);
        let pos = prompt.len() + output_ids.len() - 1;
        if stopped || output_ids.len() >= max_new || pos + 1 >= total {
            break;
        }
        let step = SequenceStep::contiguous(vec![token], pos, table.clone(), opts.block_size, true);
        logits = model.step(&mut cache, &StepBatch { seqs: vec![step] })?;
    }
    Ok(out)
}
