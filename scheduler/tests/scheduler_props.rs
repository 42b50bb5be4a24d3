//! Property tests over odd configurations (tiny blocks, tiny pools, tiny budgets): whatever
//! the shape, every request ends once, no block leaks, and preemption changes no token.

mod common;

use common::Driver;
use engine::SamplingParams;
use proptest::prelude::*;
use scheduler::{FinishReason, NewRequest, SchedulerConfig};

#[derive(Clone, Debug)]
struct Req {
    prompt: Vec<u32>,
    n: usize,
    max_tokens: usize,
    arrival: u64,
    abort_at: Option<u64>,
    caching_tenant: u8,
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop::collection::vec(1u32..6, 1..24),
        1usize..4,
        1usize..12,
        0u64..20,
        prop::option::weighted(0.2, 0u64..30),
        0u8..2,
    )
        .prop_map(
            |(prompt, n, max_tokens, arrival, abort_at, caching_tenant)| Req {
                prompt,
                n,
                max_tokens,
                arrival,
                abort_at,
                caching_tenant,
            },
        )
}

fn run(reqs: &[Req], config: SchedulerConfig, aborts: bool) -> Driver {
    let mut d = Driver::new(config);
    let mut order: Vec<usize> = (0..reqs.len()).collect();
    order.sort_by_key(|&i| reqs[i].arrival);
    let mut next = 0;
    loop {
        while next < order.len() && reqs[order[next]].arrival <= d.step {
            let i = order[next];
            let r = &reqs[i];
            let params = SamplingParams {
                n: r.n,
                max_tokens: Some(r.max_tokens),
                seed: Some(i as u64),
                ..Default::default()
            };
            let tenant = format!("t{}", r.caching_tenant);
            d.sched
                .add_request(NewRequest::new(
                    format!("r{i}"),
                    tenant,
                    r.prompt.clone(),
                    params,
                ))
                .expect("admitted");
            next += 1;
        }
        if aborts {
            for (i, r) in reqs.iter().enumerate() {
                if r.abort_at == Some(d.step) {
                    let deltas = d.sched.abort(&format!("r{i}"));
                    d.record(&deltas);
                }
            }
        }
        if next == order.len() && !d.sched.has_unfinished_requests() {
            return d;
        }
        assert!(d.step < 5_000, "no progress");
        d.step();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_shape_ends_everything_once_and_matches_an_unconstrained_run(
        reqs in prop::collection::vec(req(), 1..24),
        block_size in 1usize..6,
        spare_blocks in 0usize..6,
        max_num_seqs in 1usize..6,
        extra_budget in 0usize..20,
        caching in any::<bool>(),
    ) {
        // The longest sequence (24 + 12 tokens) must fit alone.
        let min_blocks = 36usize.div_ceil(block_size);
        let max_n = reqs.iter().map(|r| r.n).max().unwrap_or(1);
        let config = SchedulerConfig {
            block_size,
            num_gpu_blocks: min_blocks + spare_blocks,
            max_num_seqs: max_num_seqs.max(max_n),
            max_num_batched_tokens: max_num_seqs.max(max_n) + extra_budget,
            enable_prefix_caching: caching,
            max_model_len: 64,
            eos_token_ids: vec![0],
            ..SchedulerConfig::default()
        };
        let big = SchedulerConfig { num_gpu_blocks: 4096, max_num_seqs: 64, max_num_batched_tokens: 4096, ..config.clone() };
        let reference = run(&reqs, big, false);
        let d = run(&reqs, config, true);
        d.assert_pool_whole();
        for (i, r) in reqs.iter().enumerate() {
            let id = format!("r{i}");
            let got = &d.out[&id];
            prop_assert!(got.usage.is_some(), "{} never ended", id);
            prop_assert_eq!(got.choices.len(), r.n);
            for (k, c) in &got.choices {
                let want = &reference.out[&id].choices[k];
                if c.finish == Some(FinishReason::Abort) {
                    prop_assert!(want.tokens.starts_with(&c.tokens));
                } else {
                    prop_assert_eq!(&c.tokens, &want.tokens, "{}#{}", id, k);
                    prop_assert_eq!(&c.finish, &want.finish);
                }
            }
        }
    }
}
