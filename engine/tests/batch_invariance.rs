//! Every golden prompt decoded alone equals the same prompt decoded inside one batch with all
//! the others: mixed lengths, staggered starts, prefill in chunks of 16 tokens interleaved with
//! the other sequences' decodes. The kernels compute each token independently of its batch, so
//! the greedy tokens must be identical (not merely close).

use engine::generate::{generate, GenerateOptions};
use engine::sampling::argmax;
use engine::{Model, SamplingParams, SequenceStep, StepBatch};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    prompt_token_ids: Vec<u32>,
}

const NEW_TOKENS: usize = 24;
const CHUNK: usize = 16;
const BLOCK: usize = 16;

struct Seq {
    prompt: Vec<u32>,
    start_step: usize,
    prefilled: usize,
    out: Vec<u32>,
    table: Vec<u32>,
}

#[test]
fn batched_and_chunked_equals_alone() {
    let path = engine::model_cache::find_default_model().expect("run `starfire model fetch` first");
    let model = Model::load(&path).unwrap();
    let cases: Vec<Case> = serde_json::from_str(include_str!(
        "golden/smollm2-135m-instruct-q4_1.greedy.json"
    ))
    .unwrap();

    let alone: Vec<Vec<u32>> = cases
        .iter()
        .map(|c| {
            let p = SamplingParams {
                ignore_eos: true,
                ..SamplingParams::greedy(NEW_TOKENS)
            };
            generate(
                &model,
                &c.prompt_token_ids,
                &p,
                0,
                &GenerateOptions::default(),
            )
            .unwrap()
            .into_iter()
            .map(|s| s.token)
            .collect()
        })
        .collect();

    // One shared cache; each sequence gets its blocks from a pool handed out in reverse order,
    // so block tables are scattered and not contiguous.
    let per_seq: Vec<usize> = cases
        .iter()
        .map(|c| (c.prompt_token_ids.len() + NEW_TOKENS).div_ceil(BLOCK))
        .collect();
    let total: usize = per_seq.iter().sum();
    let mut cache = model.new_kv_cache(BLOCK, total).unwrap();
    let mut free: Vec<u32> = (0..total as u32).collect();
    let mut seqs: Vec<Seq> = cases
        .iter()
        .zip(&per_seq)
        .enumerate()
        .map(|(i, (c, &n))| Seq {
            prompt: c.prompt_token_ids.clone(),
            start_step: i % 5,
            prefilled: 0,
            out: Vec::new(),
            table: (0..n).map(|_| free.pop().unwrap()).collect(),
        })
        .collect();

    let mut step = 0;
    let mut saw_mixed_step = false;
    while seqs.iter().any(|s| s.out.len() < NEW_TOKENS) {
        let mut batch = StepBatch::default();
        let mut members = Vec::new();
        for (i, s) in seqs.iter().enumerate() {
            if step < s.start_step || s.out.len() >= NEW_TOKENS {
                continue;
            }
            let st = if s.prefilled < s.prompt.len() {
                let end = (s.prefilled + CHUNK).min(s.prompt.len());
                SequenceStep::contiguous(
                    s.prompt[s.prefilled..end].to_vec(),
                    s.prefilled,
                    s.table.clone(),
                    BLOCK,
                    end == s.prompt.len(),
                )
            } else {
                let pos = s.prompt.len() + s.out.len() - 1;
                SequenceStep::contiguous(
                    vec![*s.out.last().unwrap()],
                    pos,
                    s.table.clone(),
                    BLOCK,
                    true,
                )
            };
            batch.seqs.push(st);
            members.push(i);
        }
        let has_prefill = batch.seqs.iter().any(|s| s.tokens.len() > 1);
        let has_decode = batch
            .seqs
            .iter()
            .any(|s| s.tokens.len() == 1 && s.positions[0] >= CHUNK);
        saw_mixed_step |= has_prefill && has_decode;
        let logits = model.step(&mut cache, &batch).unwrap();
        let mut li = logits.into_iter();
        for (st, &i) in batch.seqs.iter().zip(&members) {
            let s = &mut seqs[i];
            if s.prefilled < s.prompt.len() {
                s.prefilled += st.tokens.len();
            }
            if st.want_logits {
                s.out.push(argmax(&li.next().unwrap()));
            }
        }
        step += 1;
    }
    assert!(
        saw_mixed_step,
        "the schedule must mix prefill chunks with decodes"
    );
    for ((c, s), a) in cases.iter().zip(&seqs).zip(&alone) {
        assert_eq!(
            &s.out, a,
            "{}: batched output differs from the output alone",
            c.name
        );
    }
}
