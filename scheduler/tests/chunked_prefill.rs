//! Chunked prefill: a 2,000-token prompt is computed over several steps while the running
//! decodes keep getting one token every step.

mod common;

use common::Driver;
use engine::SamplingParams;
use scheduler::{NewRequest, SchedulerConfig};

#[test]
fn decodes_get_a_token_every_step_while_a_long_prompt_prefills() {
    let config = SchedulerConfig {
        num_gpu_blocks: 512,
        max_num_seqs: 16,
        max_num_batched_tokens: 256,
        max_model_len: 4096,
        eos_token_ids: vec![0],
        ..SchedulerConfig::default()
    };
    let mut d = Driver::new(config);
    let params = SamplingParams {
        max_tokens: Some(400),
        ignore_eos: true,
        ..Default::default()
    };
    for i in 0..8u32 {
        let prompt = (0..20).map(|t| t + i * 100 + 1).collect();
        d.sched
            .add_request(NewRequest::new(
                format!("short{i}"),
                "t",
                prompt,
                params.clone(),
            ))
            .unwrap();
    }
    // Let the short ones finish their prefill and start decoding.
    for _ in 0..3 {
        d.step();
    }
    let long_prompt: Vec<u32> = (0..2000).map(|t| t % 997 + 1).collect();
    let long = NewRequest::new(
        "long",
        "t",
        long_prompt,
        SamplingParams {
            max_tokens: Some(4),
            ..Default::default()
        },
    );
    d.sched.add_request(long).unwrap();

    let mut prefill_steps = 0;
    loop {
        let (plan, deltas) = d.step();
        let long_got_token = deltas
            .iter()
            .any(|x| x.request_id == "long" && !x.token_ids.is_empty());
        for i in 0..8 {
            let id = format!("short{i}");
            let n = deltas
                .iter()
                .filter(|x| x.request_id == id)
                .map(|x| x.token_ids.len())
                .sum::<usize>();
            assert_eq!(
                n, 1,
                "step {}: {id} got {n} tokens while the long prompt prefills",
                d.step
            );
        }
        assert!(plan.num_tokens() <= 256);
        prefill_steps += 1;
        if long_got_token {
            break;
        }
        assert!(
            prefill_steps < 50,
            "the long prompt never finished prefilling"
        );
    }
    // 2,000 tokens at under 256 per step (8 go to decodes) take at least 8 steps.
    assert!(
        prefill_steps >= 8,
        "prefill was not chunked ({prefill_steps} steps)"
    );
    let u = d
        .out
        .get("long")
        .and_then(|r| r.choices.get(&0))
        .map(|c| c.tokens.len());
    assert_eq!(u, Some(1));
}
