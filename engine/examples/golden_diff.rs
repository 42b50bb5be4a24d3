//! Teacher-forced comparison with the golden reference: our logprobs of llama.cpp's top-2
//! tokens at every position, the largest difference, and where greedy choices would differ.
//!
//! `cargo run --release -p engine --example golden_diff`; with `GOLDEN_CASE=<name>` it also
//! prints every position of that case. Cases whose reference ids are llama-server's reported
//! view (tokens inside a UTF-8 character held back) cannot be teacher-forced and are skipped.
use engine::sampling::log_softmax;
use engine::{Model, SequenceStep, StepBatch};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    prompt_token_ids: Vec<u32>,
    greedy_token_ids: Vec<u32>,
    greedy_text: String,
    top2_logprobs: Vec<[(u32, f32); 2]>,
}

fn main() {
    let m = Model::load(&engine::model_cache::find_default_model().unwrap()).unwrap();
    let cases: Vec<Case> = serde_json::from_str(include_str!(
        "../tests/golden/smollm2-135m-instruct-q4_1.greedy.json"
    ))
    .unwrap();
    let mut worst = 0f32;
    for c in &cases {
        if m.tokenizer.decode(&c.greedy_token_ids, true).unwrap() != c.greedy_text {
            println!("{:24} (reference ids are a reported view: skipped)", c.name);
            continue;
        }
        let mut seq = c.prompt_token_ids.clone();
        seq.extend(&c.greedy_token_ids);
        let n = seq.len();
        let blocks = n.div_ceil(16);
        let mut cache = m.new_kv_cache(16, blocks).unwrap();
        let table: Vec<u32> = (0..blocks as u32).collect();
        let p = c.prompt_token_ids.len();
        let mut maxd = 0f32;
        let mut flips = Vec::new();
        for i in 0..c.greedy_token_ids.len() {
            let (start, toks) = if i == 0 {
                (0, seq[..p].to_vec())
            } else {
                (p + i - 1, vec![seq[p + i - 1]])
            };
            let logits = m
                .step(
                    &mut cache,
                    &StepBatch {
                        seqs: vec![SequenceStep::contiguous(
                            toks,
                            start,
                            table.clone(),
                            16,
                            true,
                        )],
                    },
                )
                .unwrap();
            let lp = log_softmax(&logits[0]);
            let [a, b] = c.top2_logprobs[i];
            let d = (lp[a.0 as usize] - a.1)
                .abs()
                .max((lp[b.0 as usize] - b.1).abs());
            maxd = maxd.max(d);
            if std::env::var("GOLDEN_CASE").is_ok_and(|n| n == c.name) {
                println!(
                    "{i:3} ref [{} {:.4}] [{} {:.4}] ours [{:.4} {:.4}] top {}",
                    a.0,
                    a.1,
                    b.0,
                    b.1,
                    lp[a.0 as usize],
                    lp[b.0 as usize],
                    engine::sampling::argmax(&logits[0])
                );
            }
            let ours = engine::sampling::argmax(&logits[0]);
            if ours != c.greedy_token_ids[i] {
                flips.push((i, (a.1 - b.1).abs()));
            }
        }
        worst = worst.max(maxd);
        println!("{:24} max|dlogprob| {maxd:.4} flips {flips:?}", c.name);
    }
    println!("worst {worst:.4}");
}
