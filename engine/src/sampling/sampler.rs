//! Turning one position's logits into a token, following vLLM's order of operations:
//! min_tokens masking, logit bias, penalties (repetition, frequency, presence), then greedy
//! argmax, or temperature, min_p, top_k, top_p and a seeded draw. Logprobs are those of the
//! model's raw distribution (vLLM's default `raw_logprobs`).

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{SamplingParams, MAX_LOGIT_BIAS, MAX_LOGPROBS, MAX_STOP_TOKEN_IDS};
use crate::structured::{apply_mask, Mask};

/// What the sampler needs to know about the sequence besides its logits.
#[derive(Clone, Copy, Debug)]
pub struct SampleContext<'a> {
    pub prompt_tokens: &'a [u32],
    pub output_tokens: &'a [u32],
    /// Ids that end generation (EOS / EOT), masked while `min_tokens` is not reached.
    pub eos_token_ids: &'a [u32],
    /// The request's seed (drawn by the caller when the request set none): with the position
    /// in the output it fixes the random draw, so a recomputed sequence samples the same token.
    pub seed: u64,
    /// The tokens a structured output allows at this position; the others cannot be drawn.
    pub mask: Option<&'a Mask>,
}

/// The chosen token with its log-probability and the most likely alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledToken {
    pub token: u32,
    pub logprob: f32,
    /// `(token, logprob)`, most likely first; as many as `params.logprobs` asked for.
    pub top_logprobs: Vec<(u32, f32)>,
}

/// Whether [`sample`] with these parameters and context is the argmax of the raw logits, its
/// logprob that token's log-softmax and no alternatives: what a device can pick on its own,
/// without the logits coming back.
pub fn is_plain_greedy(params: &SamplingParams, ctx: &SampleContext<'_>) -> bool {
    params.is_greedy()
        && ctx.mask.is_none()
        && params.logit_bias.is_empty()
        && params.repetition_penalty == 1.0
        && params.frequency_penalty == 0.0
        && params.presence_penalty == 0.0
        && ctx.output_tokens.len() >= params.min_tokens
        && params.logprobs.is_none_or(|k| k == 0)
}

/// How a device can pick a row's token without the logits coming back (the CUDA engine).
#[derive(Clone, Debug, PartialEq)]
pub enum RowPick {
    /// The logits come back; [`sample`] runs here (more alternatives than a device lists).
    Logits,
    /// The argmax of the raw logits ([`is_plain_greedy`]).
    Greedy,
    /// [`sample`]'s steps on the device.
    Sample(DeviceSample),
}

/// [`sample`] reduced to numbers a device kernel follows: per-token edits, the filters, and the
/// uniform the CPU's seeded draw would use.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSample {
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    /// The draw's uniform in `[0, 1)`.
    pub u: f32,
    /// `(token, [add, rp, sub])`: the token's logit becomes `pen(l + add) - sub`, `pen`
    /// dividing a positive value by `rp` and multiplying the others (min_tokens' -inf, the
    /// logit bias and the penalties, in the order [`sample`] applies them).
    pub edits: Vec<(u32, [f32; 3])>,
    /// How many of the raw distribution's most likely tokens come back with their
    /// log-probabilities (`logprobs`; at most [`MAX_LOGPROBS`]).
    pub top_logprobs: usize,
    /// A grammar's mask applies: tokens it refuses are minus infinity before the edits, and a
    /// pick it refuses becomes its first allowed token ([`sample`]'s steps). The mask reaches
    /// the device with the step (`StepForward::step_outputs`' `masks`), computed while the
    /// forward pass runs.
    pub masked: bool,
}

/// The most edits [`device_pick`] gives a row of a request that passed
/// [`SamplingParams::validate`], for a model with `eos` end-of-sequence ids and sequences of
/// at most `max_context` prompt and output tokens: each edit is a distinct token of the
/// vocabulary, masked (an end-of-sequence or stop id), biased or penalized (one of the
/// context's).
pub fn max_device_edits(vocab: usize, eos: usize, max_context: usize) -> usize {
    vocab.min(eos + MAX_STOP_TOKEN_IDS + MAX_LOGIT_BIAS + max_context)
}

/// How a device can take this row's token (see [`RowPick`]); `vocab` bounds the edits.
/// `constrained`: the row samples under a grammar's mask, which the device is given with the
/// step ([`DeviceSample::masked`]); a mask in `ctx` also makes it so (the mask itself is not
/// read here).
pub fn device_pick(
    params: &SamplingParams,
    ctx: &SampleContext<'_>,
    vocab: usize,
    constrained: bool,
) -> RowPick {
    // More alternatives than a device returns (a request `SamplingParams::validate` would
    // refuse) are listed here.
    if params.logprobs.is_some_and(|k| k > MAX_LOGPROBS) {
        return RowPick::Logits;
    }
    let masked = constrained || ctx.mask.is_some();
    if !masked && is_plain_greedy(params, ctx) {
        return RowPick::Greedy;
    }
    let mut edits: HashMap<u32, [f32; 3]> = HashMap::new();
    fn edit(edits: &mut HashMap<u32, [f32; 3]>, t: u32) -> &mut [f32; 3] {
        edits.entry(t).or_insert([0.0, 1.0, 0.0])
    }
    if ctx.output_tokens.len() < params.min_tokens {
        for &id in ctx.eos_token_ids.iter().chain(&params.stop_token_ids) {
            edit(&mut edits, id)[0] = f32::NEG_INFINITY;
        }
    }
    for (i, &(id, bias)) in params.logit_bias.iter().enumerate() {
        if params.logit_bias[..i].iter().any(|b| b.0 == id) {
            // Added twice in turn on the CPU: not one sum.
            return RowPick::Logits;
        }
        let e = edit(&mut edits, id);
        if e[0] != f32::NEG_INFINITY {
            e[0] = bias;
        }
    }
    if params.repetition_penalty != 1.0 {
        for &t in ctx.prompt_tokens.iter().chain(ctx.output_tokens) {
            edit(&mut edits, t)[1] = params.repetition_penalty;
        }
    }
    if params.frequency_penalty != 0.0 || params.presence_penalty != 0.0 {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &t in ctx.output_tokens {
            *counts.entry(t).or_default() += 1;
        }
        for (t, c) in counts {
            edit(&mut edits, t)[2] = params.frequency_penalty * c as f32 + params.presence_penalty;
        }
    }
    let mut edits: Vec<(u32, [f32; 3])> = edits
        .into_iter()
        .filter(|(t, _)| (*t as usize) < vocab)
        .collect();
    edits.sort_unstable_by_key(|e| e.0);
    let mut rng = SmallRng::seed_from_u64(mix(ctx.seed, ctx.output_tokens.len() as u64));
    RowPick::Sample(DeviceSample {
        temperature: params.temperature,
        top_k: params.top_k,
        top_p: params.top_p,
        min_p: params.min_p,
        u: if params.is_greedy() {
            0.0
        } else {
            rng.random::<f32>()
        },
        edits,
        top_logprobs: params.logprobs.unwrap_or(0),
        masked,
    })
}

/// Picks the next token. `logits` is modified in place (it is scratch afterwards).
pub fn sample(
    logits: &mut [f32],
    params: &SamplingParams,
    ctx: &SampleContext<'_>,
) -> SampledToken {
    let raw_logprobs = params.logprobs.map(|_| log_softmax(logits));
    if let Some(mask) = ctx.mask {
        apply_mask(logits, mask);
    }

    if ctx.output_tokens.len() < params.min_tokens {
        for &id in ctx.eos_token_ids.iter().chain(&params.stop_token_ids) {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
    for &(id, bias) in &params.logit_bias {
        if let Some(l) = logits.get_mut(id as usize) {
            *l += bias;
        }
    }
    apply_penalties(logits, params, ctx);

    let mut token = if params.is_greedy() {
        argmax(logits)
    } else {
        draw(logits, params, ctx)
    };
    if let Some(mask) = ctx.mask {
        // Every allowed token was pushed to minus infinity (a bias, or `min_tokens` holding
        // back the only allowed EOS): the grammar still decides.
        if !mask.is_allowed(token) {
            token = mask.first_allowed().unwrap_or(token);
        }
    }

    let (logprob, top_logprobs) = match (&raw_logprobs, params.logprobs) {
        (Some(lp), Some(k)) => (lp[token as usize], top_k_of(lp, k)),
        _ => (f32::NAN, Vec::new()),
    };
    SampledToken {
        token,
        logprob,
        top_logprobs,
    }
}

fn apply_penalties(logits: &mut [f32], params: &SamplingParams, ctx: &SampleContext<'_>) {
    if params.repetition_penalty != 1.0 {
        let rp = params.repetition_penalty;
        let mut seen = vec![false; logits.len()];
        for &t in ctx.prompt_tokens.iter().chain(ctx.output_tokens) {
            if let Some(s) = seen.get_mut(t as usize) {
                *s = true;
            }
        }
        for (l, _) in logits.iter_mut().zip(&seen).filter(|(_, &s)| s) {
            *l = if *l > 0.0 { *l / rp } else { *l * rp };
        }
    }
    if params.frequency_penalty != 0.0 || params.presence_penalty != 0.0 {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &t in ctx.output_tokens {
            *counts.entry(t).or_default() += 1;
        }
        for (t, c) in counts {
            if let Some(l) = logits.get_mut(t as usize) {
                *l -= params.frequency_penalty * c as f32 + params.presence_penalty;
            }
        }
    }
}

/// The first index of the largest logit.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let lse = max + sum.ln() as f32;
    logits.iter().map(|&l| l - lse).collect()
}

/// The `k` largest entries as `(index, value)`, largest first.
pub fn top_k_of(values: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut idx: Vec<u32> = (0..values.len() as u32).collect();
    let k = k.min(idx.len());
    let cmp = |a: &u32, b: &u32| {
        values[*b as usize]
            .total_cmp(&values[*a as usize])
            .then(a.cmp(b))
    };
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, values[i as usize])).collect()
}

/// A seeded draw after temperature, min_p, top_k and top_p.
fn draw(logits: &[f32], params: &SamplingParams, ctx: &SampleContext<'_>) -> u32 {
    let t = params.temperature;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Candidates as (token, unnormalized probability), dropping what can never be drawn.
    let mut cands: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| (i as u32, ((l - max) / t).exp()))
        .filter(|&(_, p)| p > 0.0)
        .collect();
    if cands.is_empty() {
        return argmax(logits);
    }
    if params.min_p > 0.0 {
        // The top candidate has probability 1 before normalization (we subtracted the max).
        cands.retain(|&(_, p)| p >= params.min_p);
    }
    let by_prob = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if params.top_k > 0 && (params.top_k as usize) < cands.len() {
        let k = params.top_k as usize;
        cands.select_nth_unstable_by(k - 1, by_prob);
        cands.truncate(k);
        // The draw walks a cut set most likely first (as after top_p), so that the order
        // does not depend on the selection's internals and a device can follow it.
        cands.sort_by(by_prob);
    }
    if params.top_p < 1.0 {
        // The shortest most-likely prefix holding `top_p` of the mass (mass against a goal, not
        // a sum of fractions: the device sampler finds the same cut).
        cands.sort_by(by_prob);
        let total: f32 = cands.iter().map(|c| c.1).sum();
        let goal = params.top_p * total;
        let mut acc = 0.0;
        let mut keep = cands.len();
        for (i, c) in cands.iter().enumerate() {
            acc += c.1;
            if acc >= goal {
                keep = i + 1;
                break;
            }
        }
        cands.truncate(keep);
    }
    let total: f32 = cands.iter().map(|c| c.1).sum();
    let mut rng = SmallRng::seed_from_u64(mix(ctx.seed, ctx.output_tokens.len() as u64));
    let goal = rng.random::<f32>() * total;
    // The first candidate whose running mass passes the goal.
    let mut acc = 0.0;
    for &(id, p) in &cands {
        acc += p;
        if goal < acc {
            return id;
        }
    }
    cands.last().map_or(0, |c| c.0)
}

/// SplitMix64 of the seed and the output position: one independent stream per position.
fn mix(seed: u64, position: u64) -> u64 {
    let mut z = seed ^ position.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(out: &'a [u32], seed: u64) -> SampleContext<'a> {
        SampleContext {
            mask: None,
            prompt_tokens: &[],
            output_tokens: out,
            eos_token_ids: &[0],
            seed,
        }
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let mut l = vec![0.1, 2.0, 1.5, -1.0];
        let s = sample(
            &mut l,
            &SamplingParams {
                logprobs: Some(2),
                ..SamplingParams::greedy(4)
            },
            &ctx(&[], 0),
        );
        assert_eq!(s.token, 1);
        assert_eq!(
            s.top_logprobs.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!((s.logprob - s.top_logprobs[0].1).abs() < 1e-6);
    }

    #[test]
    fn min_tokens_masks_eos_and_logit_bias_applies() {
        let p = SamplingParams {
            min_tokens: 2,
            ..SamplingParams::greedy(4)
        };
        assert_eq!(sample(&mut [5.0, 1.0, 0.0], &p, &ctx(&[], 0)).token, 1);
        assert_eq!(sample(&mut [5.0, 1.0, 0.0], &p, &ctx(&[7, 7], 0)).token, 0);
        let p = SamplingParams {
            logit_bias: vec![(2, 10.0)],
            ..SamplingParams::greedy(4)
        };
        assert_eq!(sample(&mut [5.0, 1.0, 0.0], &p, &ctx(&[], 0)).token, 2);
    }

    /// A row with every kind of edit at its limit (min_tokens masking the EOS ids and 1024
    /// stop ids, 300 biased tokens, a repetition penalty over a context of distinct tokens)
    /// has exactly `max_device_edits`; a smaller vocabulary caps the bound.
    #[test]
    fn max_device_edits_bounds_a_valid_request() {
        let params = SamplingParams {
            temperature: 0.7,
            min_tokens: 10,
            stop_token_ids: (10..10 + MAX_STOP_TOKEN_IDS as u32).collect(),
            logit_bias: (1_100..1_100 + MAX_LOGIT_BIAS as u32)
                .map(|t| (t, 1.0))
                .collect(),
            repetition_penalty: 1.2,
            frequency_penalty: 0.5,
            ..SamplingParams::default()
        };
        params.validate().unwrap();
        let prompt: Vec<u32> = (1_500..4_500).collect();
        let output: Vec<u32> = (4_500..4_505).collect();
        let ctx = SampleContext {
            prompt_tokens: &prompt,
            output_tokens: &output,
            eos_token_ids: &[0, 1],
            seed: 3,
            mask: None,
        };
        let edits = |vocab| match device_pick(&params, &ctx, vocab, false) {
            RowPick::Sample(s) => s.edits.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(edits(49_152), max_device_edits(49_152, 2, 3_005));
        assert_eq!(max_device_edits(49_152, 2, 3_005), 2 + 1024 + 300 + 3_005);
        // Only the tokens below 3,000 are edits there.
        assert_eq!(edits(3_000), 2 + 1024 + 300 + 1_500);
        assert_eq!(max_device_edits(3_000, 2, 3_005), 3_000);
        // One more of either is refused.
        for more in [
            SamplingParams {
                stop_token_ids: (0..=MAX_STOP_TOKEN_IDS as u32).collect(),
                ..params.clone()
            },
            SamplingParams {
                logit_bias: (0..=MAX_LOGIT_BIAS as u32).map(|t| (t, 1.0)).collect(),
                ..params.clone()
            },
        ] {
            assert!(more.validate().unwrap_err().message.contains("at most"));
        }
    }

    /// Which rows a device picks itself: plain greedy in the step (argmax), top logprobs, a
    /// grammar's mask and everything else through the device sampler (greedy as temperature
    /// 0, no draw), more alternatives than a device lists here.
    #[test]
    fn device_pick_keeps_top_logprobs_on_the_device() {
        let greedy = SamplingParams::greedy(4);
        let with_top = |k| SamplingParams {
            logprobs: Some(k),
            ..greedy.clone()
        };
        assert_eq!(
            device_pick(&greedy, &ctx(&[], 1), 10, false),
            RowPick::Greedy
        );
        assert_eq!(
            device_pick(&with_top(0), &ctx(&[], 1), 10, false),
            RowPick::Greedy
        );
        match device_pick(&with_top(MAX_LOGPROBS), &ctx(&[], 1), 10, false) {
            RowPick::Sample(s) => {
                assert_eq!(
                    (s.top_logprobs, s.u, s.temperature),
                    (MAX_LOGPROBS, 0.0, 0.0)
                );
                assert!(s.edits.is_empty() && !s.masked);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            device_pick(&with_top(MAX_LOGPROBS + 1), &ctx(&[], 1), 10, false),
            RowPick::Logits
        );
        // A grammar: the device sampler at temperature 0, told to apply the step's mask.
        let as_greedy_masked = |p: RowPick| match p {
            RowPick::Sample(s) => {
                assert_eq!((s.temperature, s.u, s.top_logprobs), (0.0, 0.0, 0));
                assert!(s.edits.is_empty());
                s.masked
            }
            other => panic!("{other:?}"),
        };
        assert!(as_greedy_masked(device_pick(
            &greedy,
            &ctx(&[], 1),
            10,
            true
        )));
        let mask = crate::structured::Mask::from_tokens(10, &[3], &[]);
        let masked = SampleContext {
            mask: Some(&mask),
            ..ctx(&[], 1)
        };
        assert!(as_greedy_masked(device_pick(&greedy, &masked, 10, false)));
    }

    #[test]
    fn penalties_follow_vllm() {
        let p = SamplingParams {
            frequency_penalty: 1.0,
            presence_penalty: 0.5,
            ..SamplingParams::greedy(4)
        };
        let mut l = vec![0.0, 3.0, 2.0];
        // Token 1 appeared twice: 3 - 2*1 - 0.5 = 0.5 < 2.
        assert_eq!(sample(&mut l, &p, &ctx(&[1, 1], 0)).token, 2);
        let p = SamplingParams {
            repetition_penalty: 2.0,
            ..SamplingParams::greedy(4)
        };
        let mut l = vec![0.0, 3.0, 2.0];
        assert_eq!(sample(&mut l, &p, &ctx(&[1], 0)).token, 2);
        assert_eq!(l[1], 1.5);
    }

    #[test]
    fn seeded_draws_repeat_and_follow_the_distribution() {
        let p = SamplingParams {
            temperature: 1.0,
            max_tokens: Some(1),
            ..SamplingParams::default()
        };
        let logits = vec![0.0f32, (3.0f32).ln(), f32::NEG_INFINITY];
        let mut counts = [0usize; 3];
        for seed in 0..4000u64 {
            let a = sample(&mut logits.clone(), &p, &ctx(&[], seed)).token;
            let b = sample(&mut logits.clone(), &p, &ctx(&[], seed)).token;
            assert_eq!(a, b, "same seed and position must give the same token");
            counts[a as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        let frac = counts[1] as f64 / 4000.0;
        assert!((frac - 0.75).abs() < 0.03, "{frac}");
    }

    #[test]
    fn top_k_top_p_and_min_p_restrict_the_candidates() {
        let logits = vec![2.0f32, 1.9, 0.0, -1.0];
        for seed in 0..200 {
            let k1 = SamplingParams {
                temperature: 1.0,
                top_k: 1,
                ..SamplingParams::default()
            };
            assert_eq!(sample(&mut logits.clone(), &k1, &ctx(&[], seed)).token, 0);
            let p = SamplingParams {
                temperature: 1.0,
                top_p: 0.4,
                ..SamplingParams::default()
            };
            assert_eq!(sample(&mut logits.clone(), &p, &ctx(&[], seed)).token, 0);
            let m = SamplingParams {
                temperature: 1.0,
                min_p: 0.5,
                ..SamplingParams::default()
            };
            assert!(sample(&mut logits.clone(), &m, &ctx(&[], seed)).token <= 1);
        }
    }
}
