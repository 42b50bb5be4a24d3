//! Focused behaviours of the scheduler: prefix caching per tenant, stop conditions with exact
//! text cuts, `n > 1` forks, preemption order, admission errors, failed steps.

mod common;

use std::sync::Arc;

use common::Driver;
use engine::SamplingParams;
use scheduler::testing::FakeDetokenizer;
use scheduler::{
    ExecutorError, FinishReason, ModelExecutor, NewRequest, QueueScope, SampledToken, Scheduler,
    SchedulerConfig, SchedulerError, StepPlan, StopReason,
};

fn config() -> SchedulerConfig {
    SchedulerConfig {
        num_gpu_blocks: 256,
        max_num_seqs: 16,
        max_num_batched_tokens: 512,
        max_model_len: 2048,
        eos_token_ids: vec![0],
        ..SchedulerConfig::default()
    }
}

fn params(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        max_tokens: Some(max_tokens),
        seed: Some(3),
        ignore_eos: true,
        ..Default::default()
    }
}

#[test]
fn shared_prefix_hits_within_a_tenant_only() {
    let prefix: Vec<u32> = (1..=256).collect();
    let with_suffix = |s: u32| {
        let mut p = prefix.clone();
        p.extend([900 + s, 901, 902]);
        p
    };
    let mut d = Driver::new(config());
    d.sched
        .add_request(NewRequest::new("first", "acme", with_suffix(0), params(8)))
        .unwrap();
    d.drain(100);
    d.sched
        .add_request(NewRequest::new("second", "acme", with_suffix(1), params(8)))
        .unwrap();
    d.drain(100);
    d.sched
        .add_request(NewRequest::new(
            "other-tenant",
            "globex",
            with_suffix(1),
            params(8),
        ))
        .unwrap();
    d.drain(100);
    let cached = |id: &str| d.out[id].usage.unwrap().cached_tokens;
    assert_eq!(cached("first"), 0);
    assert_eq!(
        cached("second"),
        256,
        "the 256-token prefix is served from the cache"
    );
    assert_eq!(cached("other-tenant"), 0, "another tenant never hits");
    // The computed prompt tokens exclude the hit.
    let st = d.sched.stats();
    assert_eq!(st.tenants["acme"].prompt_tokens_total, 259 + 3);
    assert_eq!(st.prefix_cache_hits, 256);

    // Same output with caching off (the fake checks the KV it reads, so a bad hit would show).
    let mut off = Driver::new(SchedulerConfig {
        enable_prefix_caching: false,
        ..config()
    });
    off.sched
        .add_request(NewRequest::new("second", "acme", with_suffix(1), params(8)))
        .unwrap();
    off.drain(100);
    assert_eq!(
        off.out["second"].choices[&0].tokens,
        d.out["second"].choices[&0].tokens
    );
    assert_eq!(off.out["second"].usage.unwrap().cached_tokens, 0);
    d.assert_pool_whole();
}

/// Emits a fixed script of tokens (by output index) for every sequence.
struct Scripted(Vec<u32>);

impl ModelExecutor for Scripted {
    fn execute(&mut self, plan: &StepPlan) -> Result<Vec<SampledToken>, ExecutorError> {
        Ok(plan
            .sampling
            .iter()
            .map(|s| SampledToken::new(s.seq_id, self.0[s.output_index.min(self.0.len() - 1)]))
            .collect())
    }
}

struct Run {
    text: String,
    pieces: Vec<String>,
    tokens: Vec<u32>,
    finish: Option<FinishReason>,
    stop: Option<StopReason>,
}

fn run_script(script: Vec<u32>, p: SamplingParams, max_model_len: usize) -> Run {
    let c = SchedulerConfig {
        eos_token_ids: vec![999],
        max_model_len,
        ..config()
    };
    let mut s = Scheduler::new(
        c,
        Arc::new(FakeDetokenizer {
            special_token_ids: vec![999],
        }),
    )
    .unwrap();
    let mut exec = Scripted(script);
    s.add_request(NewRequest::new("r", "t", vec![1, 2, 3], p))
        .unwrap();
    let mut run = Run {
        text: String::new(),
        pieces: vec![],
        tokens: vec![],
        finish: None,
        stop: None,
    };
    while s.has_unfinished_requests() {
        let plan = s.schedule();
        let out = exec.execute(&plan).unwrap();
        for d in s.update(out) {
            run.text.push_str(&d.text);
            run.pieces.push(d.text.clone());
            run.tokens.extend(&d.token_ids);
            if d.finish_reason.is_some() {
                run.finish = d.finish_reason;
                run.stop = d.stop_reason;
            }
        }
    }
    s.kv_cache().pool().check_invariants().unwrap();
    run
}

// Token ids of the fake vocabulary: 0..=25 are 'a'..='z', 26 is ' ', 29 + 30 make "€".
const H: u32 = 7;
const I: u32 = 8;
const SP: u32 = 26;
const S: u32 = 18;
const T: u32 = 19;
const O: u32 = 14;
const P: u32 = 15;

#[test]
fn stop_string_is_cut_exactly_and_never_streamed() {
    let script = vec![H, I, SP, S, T, O, P, SP, H];
    let p = SamplingParams {
        stop: vec!["stop".into()],
        max_tokens: Some(50),
        ..Default::default()
    };
    let r = run_script(script.clone(), p.clone(), 2048);
    assert_eq!(r.text, "hi ");
    assert_eq!(r.finish, Some(FinishReason::Stop));
    assert_eq!(r.stop, Some(StopReason::Text("stop".into())));
    assert_eq!(
        r.tokens,
        vec![H, I, SP, S, T, O, P],
        "tokens up to the one completing the stop string"
    );
    assert!(
        r.pieces.iter().all(|x| !x.contains('s')),
        "no part of the stop string was streamed: {:?}",
        r.pieces
    );

    let r = run_script(
        script,
        SamplingParams {
            include_stop_str_in_output: true,
            ..p
        },
        2048,
    );
    assert_eq!(r.text, "hi stop");
}

#[test]
fn stop_string_over_a_split_character() {
    let p = SamplingParams {
        stop: vec!["€".into()],
        max_tokens: Some(50),
        ..Default::default()
    };
    let r = run_script(vec![0, 28, 29, 30, 1], p, 2048);
    assert_eq!(r.text, "aé");
    assert_eq!(r.stop, Some(StopReason::Text("€".into())));
}

#[test]
fn stop_token_ids_eos_and_min_tokens() {
    let p = SamplingParams {
        stop_token_ids: vec![T],
        max_tokens: Some(50),
        ..Default::default()
    };
    let r = run_script(vec![H, I, T, O], p.clone(), 2048);
    assert_eq!(
        (r.text.as_str(), r.stop),
        ("hi", Some(StopReason::TokenId(T)))
    );
    assert_eq!(r.tokens, vec![H, I, T]);

    // EOS (999) ends the sequence; its text is never shown.
    let r = run_script(
        vec![H, 999, O],
        SamplingParams {
            max_tokens: Some(50),
            ..Default::default()
        },
        2048,
    );
    assert_eq!(
        (r.text.as_str(), r.finish, r.stop),
        ("h", Some(FinishReason::Stop), None)
    );

    // Before min_tokens neither EOS nor stop ids end it.
    let p = SamplingParams {
        min_tokens: 4,
        stop_token_ids: vec![T],
        max_tokens: Some(6),
        ..Default::default()
    };
    let r = run_script(vec![999, T, H, 999, I], p, 2048);
    assert_eq!(r.tokens, vec![999, T, H, 999]);
    assert_eq!(r.finish, Some(FinishReason::Stop));
}

#[test]
fn length_caps_by_max_tokens_and_max_model_len() {
    let r = run_script(
        vec![H],
        SamplingParams {
            max_tokens: Some(5),
            ..Default::default()
        },
        2048,
    );
    assert_eq!((r.tokens.len(), r.finish), (5, Some(FinishReason::Length)));
    assert_eq!(r.text, "hhhhh");
    // Prompt of 3 with max_model_len 10: 7 tokens at most, whatever max_tokens says.
    let r = run_script(
        vec![H],
        SamplingParams {
            max_tokens: None,
            ..Default::default()
        },
        10,
    );
    assert_eq!((r.tokens.len(), r.finish), (7, Some(FinishReason::Length)));
}

#[test]
fn n_choices_fork_from_the_prompt_blocks() {
    let mut d = Driver::new(config());
    let prompt: Vec<u32> = (1..=40).collect();
    let p = SamplingParams {
        n: 3,
        max_tokens: Some(12),
        seed: Some(5),
        ignore_eos: true,
        ..Default::default()
    };
    d.sched
        .add_request(NewRequest::new("multi", "t", prompt, p))
        .unwrap();
    let (first, _) = d.step();
    assert_eq!(first.batch.seqs.len(), 1, "the prompt is computed once");
    let (second, _) = d.step();
    assert_eq!(second.batch.seqs.len(), 3);
    let tables: Vec<&Vec<u32>> = second.batch.seqs.iter().map(|s| &s.block_table).collect();
    // 40 tokens: blocks 0 and 1 are full and shared; each child recomputes tokens 32..40.
    for t in &tables[1..] {
        assert_eq!(t[..2], tables[0][..2]);
        assert_ne!(t[2], tables[0][2]);
    }
    assert_eq!(d.sched.kv_cache().pool().ref_count(tables[0][0]), 3);
    assert_eq!(second.batch.seqs[1].positions, (32..40).collect::<Vec<_>>());
    d.drain(100);
    let r = &d.out["multi"];
    assert_eq!(r.choices.len(), 3);
    assert_ne!(
        r.choices[&0].tokens, r.choices[&1].tokens,
        "choices draw their own samples"
    );
    assert_eq!(r.usage.unwrap().completion_tokens, 36);
    d.assert_pool_whole();
}

#[test]
fn preemption_takes_lowest_priority_then_latest_and_resumes_it_first() {
    // 8 blocks of 16: two sequences of 48 + 40 tokens cannot both stay.
    let c = SchedulerConfig {
        num_gpu_blocks: 8,
        max_num_seqs: 4,
        max_num_batched_tokens: 128,
        ..config()
    };
    let mut d = Driver::new(c);
    let mut low = NewRequest::new("low", "t", (1..=48).collect(), params(60));
    low.priority = 1;
    d.sched.add_request(low).unwrap();
    d.sched
        .add_request(NewRequest::new(
            "high",
            "t",
            (100..148).collect(),
            params(60),
        ))
        .unwrap();
    d.drain(1000);
    let low = d.out["low"].usage.unwrap();
    let high = d.out["high"].usage.unwrap();
    assert!(low.num_preemptions > 0, "the low-priority request gave way");
    assert_eq!(high.num_preemptions, 0);
    assert!(d.out["high"].ended_at_step < d.out["low"].ended_at_step);
    assert_eq!(low.completion_tokens, 60);
    d.assert_pool_whole();
}

#[test]
fn admission_errors_are_distinct() {
    let mut c = config();
    c.admission.max_waiting_requests_per_tenant = 1;
    c.admission.max_waiting_requests = 2;
    c.max_model_len = 64;
    c.num_gpu_blocks = 3;
    let mut s = Scheduler::new(c, Arc::new(FakeDetokenizer::default())).unwrap();
    let r = |id: &str, t: &str, len: usize, max: usize| {
        NewRequest::new(id, t, vec![1; len], params(max))
    };
    s.add_request(r("a", "x", 4, 4)).unwrap();
    assert_eq!(
        s.add_request(r("a", "y", 4, 4)),
        Err(SchedulerError::DuplicateRequestId("a".into()))
    );
    assert!(matches!(
        s.add_request(r("b", "x", 4, 4)),
        Err(SchedulerError::QueueFull {
            scope: QueueScope::Tenant,
            ..
        })
    ));
    s.add_request(r("c", "y", 4, 4)).unwrap();
    assert!(matches!(
        s.add_request(r("d", "z", 4, 4)),
        Err(SchedulerError::QueueFull {
            scope: QueueScope::Global,
            ..
        })
    ));
    assert!(matches!(
        s.add_request(r("e", "w", 64, 4)),
        Err(SchedulerError::PromptTooLong { .. })
    ));
    assert!(matches!(
        s.add_request(r("f", "w", 40, 20)),
        Err(SchedulerError::TooLargeForCache { .. })
    ));
    assert!(matches!(
        s.add_request(r("g", "w", 0, 4)),
        Err(SchedulerError::InvalidRequest(_))
    ));
    // Aborting frees the queue slot.
    let deltas = s.abort("a");
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].finish_reason, Some(FinishReason::Abort));
    assert!(deltas[0].usage.is_some());
    s.add_request(r("b", "x", 4, 4)).unwrap();
}

#[test]
fn failed_step_ends_its_requests_with_an_error_and_spares_the_rest() {
    let mut d = Driver::new(SchedulerConfig {
        max_num_batched_tokens: 64,
        max_num_seqs: 2,
        ..config()
    });
    for i in 0..3 {
        d.sched
            .add_request(NewRequest::new(
                format!("r{i}"),
                "t",
                vec![5; 10],
                params(4),
            ))
            .unwrap();
    }
    let plan = d.sched.schedule();
    assert_eq!(plan.batch.seqs.len(), 2, "max_num_seqs keeps r2 waiting");
    let deltas = d.sched.fail_step("device lost");
    assert_eq!(deltas.len(), 2);
    for x in &deltas {
        assert_eq!(
            x.finish_reason,
            Some(FinishReason::Error("device lost".into()))
        );
        assert!(x.usage.is_some());
    }
    d.record(&deltas);
    d.drain(20);
    assert_eq!(d.out["r2"].choices[&0].finish, Some(FinishReason::Length));
    assert_eq!(d.out["r2"].choices[&0].tokens.len(), 4);
    d.assert_pool_whole();
}

#[test]
fn missing_token_fails_only_that_request() {
    struct DropsFirst;
    impl ModelExecutor for DropsFirst {
        fn execute(&mut self, plan: &StepPlan) -> Result<Vec<SampledToken>, ExecutorError> {
            Ok(plan
                .sampling
                .iter()
                .skip(1)
                .map(|s| SampledToken::new(s.seq_id, 5))
                .collect())
        }
    }
    let mut s = Scheduler::new(config(), Arc::new(FakeDetokenizer::default())).unwrap();
    s.add_request(NewRequest::new("a", "t", vec![1, 2], params(2)))
        .unwrap();
    s.add_request(NewRequest::new("b", "t", vec![1, 2], params(2)))
        .unwrap();
    let plan = s.schedule();
    let deltas = s.update(DropsFirst.execute(&plan).unwrap());
    let a = deltas.iter().find(|d| d.request_id == "a").unwrap();
    assert!(matches!(a.finish_reason, Some(FinishReason::Error(_))));
    let b = deltas.iter().find(|d| d.request_id == "b").unwrap();
    assert_eq!(b.token_ids, vec![5]);
    assert!(s.contains("b") && !s.contains("a"));
}

#[test]
fn a_preempted_request_is_not_overtaken_by_a_new_one() {
    let c = SchedulerConfig {
        num_gpu_blocks: 8,
        max_num_seqs: 4,
        max_num_batched_tokens: 128,
        ..config()
    };
    let mut d = Driver::new(c);
    d.sched
        .add_request(NewRequest::new(
            "first",
            "t",
            (1..=48).collect(),
            params(60),
        ))
        .unwrap();
    d.sched
        .add_request(NewRequest::new(
            "second",
            "t",
            (100..148).collect(),
            params(60),
        ))
        .unwrap();
    while d.sched.stats().num_seqs_preempted == 0 {
        assert!(d.step < 200, "no preemption happened");
        d.step();
    }
    // A small request that would fit in the block left over must still wait its turn.
    d.sched
        .add_request(NewRequest::new("third", "t", vec![7; 4], params(4)))
        .unwrap();
    d.drain(1000);
    let first_end = d.out["first"].ended_at_step.unwrap();
    let third_start = d.out["third"].choices[&0].first_token_step.unwrap();
    assert!(d.out["second"].usage.unwrap().num_preemptions > 0);
    assert!(
        third_start > first_end,
        "third started at step {third_start}, before the preempted second could resume ({first_end})"
    );
    d.assert_pool_whole();
}
