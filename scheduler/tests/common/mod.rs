//! Shared pieces of the simulation tests: a seeded RNG and a driver that runs a scheduler
//! against the fake executor and checks every delta on the way.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use scheduler::testing::{FakeDetokenizer, FakeExecutor};
use scheduler::{
    Delta, FinishReason, ModelExecutor, Scheduler, SchedulerConfig, StepPlan, StopReason, Usage,
};

/// splitmix64: tiny, seeded, good enough for workloads.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChoiceOut {
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: Option<FinishReason>,
    pub stop_reason: Option<StopReason>,
    pub first_token_step: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct RequestOut {
    pub choices: BTreeMap<usize, ChoiceOut>,
    pub usage: Option<Usage>,
    pub ended_at_step: Option<u64>,
}

/// Runs a scheduler over the fake executor, step by step, recording every delta and
/// asserting the delta protocol (nothing after a choice's finish or the request's usage).
pub struct Driver {
    pub sched: Scheduler,
    pub exec: FakeExecutor,
    pub out: BTreeMap<String, RequestOut>,
    pub step: u64,
}

impl Driver {
    pub fn new(config: SchedulerConfig) -> Self {
        let exec = FakeExecutor::new(config.num_gpu_blocks, config.block_size);
        let detok = Arc::new(FakeDetokenizer {
            special_token_ids: config.eos_token_ids.clone(),
        });
        Self {
            sched: Scheduler::new(config, detok).expect("valid config"),
            exec,
            out: BTreeMap::new(),
            step: 0,
        }
    }

    /// One schedule/execute/update round; returns the plan and the deltas.
    pub fn step(&mut self) -> (StepPlan, Vec<Delta>) {
        self.step += 1;
        let plan = self.sched.schedule();
        let c = self.sched.config();
        assert!(
            plan.num_tokens() <= c.max_num_batched_tokens,
            "token budget exceeded"
        );
        assert!(
            plan.batch.seqs.len() <= c.max_num_seqs,
            "max_num_seqs exceeded"
        );
        let tokens = self
            .exec
            .execute(&plan)
            .unwrap_or_else(|e| panic!("step {}: {e}", self.step));
        let deltas = self.sched.update(tokens);
        self.record(&deltas);
        (plan, deltas)
    }

    pub fn record(&mut self, deltas: &[Delta]) {
        for d in deltas {
            let r = self.out.entry(d.request_id.clone()).or_default();
            assert!(
                r.usage.is_none(),
                "delta for {} after its usage",
                d.request_id
            );
            let c = r.choices.entry(d.index).or_default();
            assert!(
                c.finish.is_none(),
                "delta for {}#{} after its finish",
                d.request_id,
                d.index
            );
            if !d.token_ids.is_empty() && c.first_token_step.is_none() {
                c.first_token_step = Some(self.step);
            }
            c.tokens.extend(&d.token_ids);
            c.text.push_str(&d.text);
            c.finish = d.finish_reason.clone();
            c.stop_reason = d.stop_reason.clone();
            if d.usage.is_some() {
                r.usage = d.usage;
                r.ended_at_step = Some(self.step);
            }
        }
    }

    /// Steps until nothing is left; panics if that takes more than `max_steps`.
    pub fn drain(&mut self, max_steps: u64) {
        let start = self.step;
        while self.sched.has_unfinished_requests() {
            assert!(
                self.step - start < max_steps,
                "did not drain in {max_steps} steps"
            );
            self.step();
        }
    }

    /// The pool is whole again: no block held, no ref count left, consistent structures.
    pub fn assert_pool_whole(&self) {
        let pool = self.sched.kv_cache().pool();
        pool.check_invariants().expect("pool invariants");
        assert_eq!(pool.num_free_blocks(), pool.num_blocks(), "leaked blocks");
        for b in 0..pool.num_blocks() as u32 {
            assert_eq!(pool.ref_count(b), 0);
        }
        assert_eq!(
            self.sched.kv_cache().num_sequences(),
            0,
            "block tables left behind"
        );
    }
}
