//! Deterministic simulation: 5,000 random requests (arrivals, prompt and output lengths, `n`,
//! stop conditions, aborts) through a KV pool small enough to force preemption, checked
//! against a run of the same requests through a pool too big to ever preempt.

mod common;

use std::collections::BTreeMap;

use common::{Driver, RequestOut, Rng};
use engine::SamplingParams;
use scheduler::{AdmissionLimits, FinishReason, NewRequest, SchedulerConfig};

const NUM_REQUESTS: usize = 5_000;

struct Spec {
    arrival_step: u64,
    req: NewRequest,
    abort_step: Option<u64>,
}

fn workload(seed: u64) -> Vec<Spec> {
    workload_of(seed, NUM_REQUESTS)
}

fn workload_of(seed: u64, num_requests: usize) -> Vec<Spec> {
    let mut rng = Rng(seed);
    // Shared system prompts per tenant make prefix caching (and its eviction) matter.
    let prefixes: Vec<Vec<u32>> = (0..6)
        .map(|_| {
            (0..rng.range(16, 97))
                .map(|_| rng.range(1, 1000) as u32)
                .collect()
        })
        .collect();
    let mut step = 0u64;
    let mut specs = Vec::with_capacity(num_requests);
    for i in 0..num_requests {
        // Bursty arrivals: mostly one every step or so, sometimes a burst.
        if !rng.chance(0.3) {
            step += rng.range(0, 3) as u64;
        }
        let tenant = format!("t{}", rng.range(0, 4));
        let mut prompt = if rng.chance(0.6) {
            prefixes[rng.range(0, prefixes.len())].clone()
        } else {
            Vec::new()
        };
        prompt.extend((0..rng.range(1, 120)).map(|_| rng.range(1, 1000) as u32));
        let mut p = SamplingParams {
            n: [1, 1, 1, 1, 1, 2, 2, 3, 4][rng.range(0, 9)],
            max_tokens: Some(rng.range(1, 48)),
            temperature: if rng.chance(0.2) { 0.0 } else { 0.8 },
            seed: if rng.chance(0.5) {
                Some(rng.next())
            } else {
                None
            },
            ..SamplingParams::default()
        };
        if rng.chance(0.2) {
            p.stop = [
                vec!["stop".to_string()],
                vec!["é€".into(), "\n".into()],
                vec!["b c".into()],
            ][rng.range(0, 3)]
            .clone();
            p.include_stop_str_in_output = rng.chance(0.3);
        }
        if rng.chance(0.1) {
            p.stop_token_ids = vec![rng.range(1, 1000) as u32, 7];
        }
        if rng.chance(0.1) {
            p.min_tokens = rng.range(0, 8);
        }
        p.ignore_eos = rng.chance(0.1);
        if rng.chance(0.1) {
            p.logprobs = Some(rng.range(0, 3));
        }
        let mut req = NewRequest::new(format!("r{i}"), tenant, prompt, p);
        req.priority = if rng.chance(0.1) { -1 } else { 0 };
        let abort_step = rng.chance(0.05).then(|| step + rng.range(0, 40) as u64);
        specs.push(Spec {
            arrival_step: step,
            req,
            abort_step,
        });
    }
    specs
}

fn config(num_blocks: usize) -> SchedulerConfig {
    SchedulerConfig {
        block_size: 16,
        num_gpu_blocks: num_blocks,
        max_num_seqs: 32,
        max_num_batched_tokens: 256,
        enable_prefix_caching: true,
        max_model_len: 1024,
        long_prefill_token_threshold: 0,
        eos_token_ids: vec![0],
        admission: AdmissionLimits {
            max_waiting_requests: NUM_REQUESTS,
            max_waiting_tokens: usize::MAX,
            max_waiting_requests_per_tenant: NUM_REQUESTS,
            max_waiting_tokens_per_tenant: usize::MAX,
        },
    }
}

fn run(specs: &[Spec], num_blocks: usize, with_aborts: bool) -> Driver {
    run_with(specs, config(num_blocks), with_aborts)
}

fn run_with(specs: &[Spec], config: SchedulerConfig, with_aborts: bool) -> Driver {
    let mut d = Driver::new(config);
    let mut aborts: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    if with_aborts {
        for s in specs {
            if let Some(at) = s.abort_step {
                aborts.entry(at).or_default().push(s.req.request_id.clone());
            }
        }
    }
    let mut next = 0;
    loop {
        while next < specs.len() && specs[next].arrival_step <= d.step {
            d.sched
                .add_request(specs[next].req.clone())
                .expect("admitted");
            next += 1;
        }
        if let Some(ids) = aborts.remove(&d.step) {
            for id in ids {
                let deltas = d.sched.abort(&id);
                d.record(&deltas);
            }
        }
        if next == specs.len() && !d.sched.has_unfinished_requests() {
            break;
        }
        assert!(d.step < 200_000, "simulation does not progress");
        let (plan, _) = d.step();
        assert!(
            !plan.is_empty()
                || !d.sched.has_unfinished_requests()
                || d.sched.num_running_seqs() > 0
                || d.sched.num_waiting_requests() == 0,
            "step {}: requests wait but nothing was scheduled",
            d.step
        );
        if d.step.is_multiple_of(101) {
            d.sched
                .kv_cache()
                .pool()
                .check_invariants()
                .expect("pool invariants mid-run");
        }
    }
    d
}

fn check_ended_once(specs: &[Spec], out: &BTreeMap<String, RequestOut>) {
    assert_eq!(out.len(), specs.len(), "every request produced output");
    for s in specs {
        let r = &out[&s.req.request_id];
        let u = r
            .usage
            .unwrap_or_else(|| panic!("{} never ended", s.req.request_id));
        assert_eq!(
            r.choices.len(),
            s.req.params.n,
            "{}: one entry per choice",
            s.req.request_id
        );
        let mut completion = 0;
        for (i, c) in &r.choices {
            assert!(
                c.finish.is_some(),
                "{}#{i} has no finish reason",
                s.req.request_id
            );
            completion += c.tokens.len();
        }
        assert_eq!(u.completion_tokens, completion);
        assert_eq!(u.prompt_tokens, s.req.prompt_token_ids.len());
    }
}

#[test]
fn five_thousand_requests_with_preemption_match_a_run_without() {
    let specs = workload(0x5eed);
    let reference = run(&specs, 8192, false);
    check_ended_once(&specs, &reference.out);
    assert_eq!(
        reference.sched.stats().num_preemptions_total,
        0,
        "the reference pool never preempts"
    );
    reference.assert_pool_whole();

    let small = run(&specs, 96, true);
    check_ended_once(&specs, &small.out);
    small.assert_pool_whole();
    let stats = small.sched.stats();
    assert!(
        stats.num_preemptions_total > 100,
        "the small pool must preempt, got {}",
        stats.num_preemptions_total
    );
    assert!(stats.prefix_cache_hits > 0, "shared prefixes hit the cache");

    let mut aborted = 0;
    let mut preempted_requests = 0;
    for s in &specs {
        let id = &s.req.request_id;
        let (got, want) = (&small.out[id], &reference.out[id]);
        if got.usage.expect("ended").num_preemptions > 0 {
            preempted_requests += 1;
        }
        let was_aborted = got
            .choices
            .values()
            .any(|c| c.finish == Some(FinishReason::Abort));
        if was_aborted {
            aborted += 1;
            for (i, c) in &got.choices {
                let w = &want.choices[i];
                assert!(
                    w.tokens.starts_with(&c.tokens),
                    "{id}#{i}: aborted output is not a prefix"
                );
                assert!(
                    w.text.starts_with(&c.text),
                    "{id}#{i}: aborted text is not a prefix"
                );
            }
            continue;
        }
        for (i, c) in &got.choices {
            let w = &want.choices[i];
            assert_eq!(
                c.tokens, w.tokens,
                "{id}#{i}: tokens differ from the run without preemption"
            );
            assert_eq!(c.text, w.text, "{id}#{i}: text differs");
            assert_eq!(c.finish, w.finish, "{id}#{i}: finish reason differs");
            assert_eq!(
                c.stop_reason, w.stop_reason,
                "{id}#{i}: stop reason differs"
            );
        }
    }
    assert!(aborted > 100, "aborts happened ({aborted})");
    assert!(
        preempted_requests > 50,
        "many requests were preempted ({preempted_requests})"
    );
    eprintln!(
        "steps: reference {} small {}; preemptions {}; preempted requests {preempted_requests}; aborted {aborted}; prefix hits {}/{}",
        reference.step, small.step, stats.num_preemptions_total, stats.prefix_cache_hits, stats.prefix_cache_queries
    );
}

/// The same through the paths without prefix caching (preemption then recomputes everything)
/// and with a prefill chunk cap, on a smaller workload.
#[test]
fn preemption_without_prefix_caching_and_with_a_chunk_cap_changes_no_token() {
    let specs = workload_of(0xcafe, 1_000);
    let reference = run(&specs, 8192, false);
    let config = SchedulerConfig {
        enable_prefix_caching: false,
        long_prefill_token_threshold: 48,
        ..config(80)
    };
    let small = run_with(&specs, config, false);
    check_ended_once(&specs, &small.out);
    small.assert_pool_whole();
    let stats = small.sched.stats();
    assert!(
        stats.num_preemptions_total > 20,
        "preemptions: {}",
        stats.num_preemptions_total
    );
    assert_eq!(stats.prefix_cache_hits, 0);
    for s in &specs {
        let id = &s.req.request_id;
        for (i, c) in &small.out[id].choices {
            let w = &reference.out[id].choices[i];
            assert_eq!(
                (&c.tokens, &c.text, &c.finish),
                (&w.tokens, &w.text, &w.finish),
                "{id}#{i}"
            );
        }
    }
}

/// Failed steps (1 in 50) in the middle of it all: the requests of a failed step end once,
/// with an error; everyone else is unaffected; no block leaks.
#[test]
fn failed_steps_end_their_requests_once_and_leak_nothing() {
    let specs = workload_of(0xfa11, 1_000);
    let reference = run(&specs, 8192, false);
    let mut d = Driver::new(config(96));
    let mut rng = Rng(7);
    let mut next = 0;
    let mut failed_steps = 0;
    loop {
        while next < specs.len() && specs[next].arrival_step <= d.step {
            d.sched
                .add_request(specs[next].req.clone())
                .expect("admitted");
            next += 1;
        }
        if next == specs.len() && !d.sched.has_unfinished_requests() {
            break;
        }
        if rng.chance(0.02) {
            d.step += 1;
            let plan = d.sched.schedule();
            let deltas = if plan.is_empty() {
                d.sched.update(Vec::new())
            } else {
                failed_steps += 1;
                d.sched.fail_step("injected")
            };
            d.record(&deltas);
        } else {
            d.step();
        }
    }
    assert!(failed_steps > 20);
    check_ended_once(&specs, &d.out);
    d.assert_pool_whole();
    let mut errored = 0;
    for s in &specs {
        let id = &s.req.request_id;
        let got = &d.out[id];
        if got
            .choices
            .values()
            .any(|c| matches!(c.finish, Some(FinishReason::Error(_))))
        {
            errored += 1;
            continue;
        }
        for (i, c) in &got.choices {
            assert_eq!(c.tokens, reference.out[id].choices[i].tokens, "{id}#{i}");
        }
    }
    assert!(errored > 20, "errors reached requests ({errored})");
}
