//! The scheduler: a synchronous, deterministic data structure. `add_request` and `abort` change
//! what is wanted; `schedule` decides what the next step computes; `update` (or `fail_step`)
//! takes the step's result and returns the deltas to stream.
//!
//! Each step: running sequences first (decodes before prefill chunks, so a long prompt never
//! stalls the tokens of others), preempting by recompute when blocks run out; then preempted
//! sequences (they keep their place ahead of new work); then new requests in tenant-fair
//! order, their prompts chunked to the step's token budget.
//!
//! `schedule` and `update`/`fail_step` alternate: computed-token counts advance only when a
//! step's result comes back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use engine::{SamplingParams, SequenceStep, StepBatch};

use crate::config::SchedulerConfig;
use crate::detokenizer::Detokenizer;
use crate::error::SchedulerError;
use crate::executor::{SampledToken, SamplingInput, StepPlan};
use crate::fairness::VirtualTokenCounter;
use crate::kv::block_hash::{tenant_cache_keys, BlockHash};
use crate::kv::{hash_prompt_blocks, CachedPrefix, KvCacheManager};
use crate::metrics::{SchedulerStats, TenantStats};
use crate::request::{Delta, FinishReason, NewRequest, SeqId, TokenLogprob, Usage};
use crate::request_queue::RequestQueue;
use crate::sequence::{extend_hashes, usage_of, Choice, Request, SeqState, Sequence};

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    num_preemptions: u64,
    prompt_tokens: u64,
    generation_tokens: u64,
}

pub struct Scheduler {
    config: SchedulerConfig,
    kv: KvCacheManager,
    detokenizer: Arc<dyn Detokenizer>,
    requests: HashMap<u64, Request>,
    request_keys: HashMap<String, u64>,
    seqs: HashMap<SeqId, Sequence>,
    /// In admission order.
    running: Vec<SeqId>,
    waiting: RequestQueue,
    /// (priority, request key, choice, seq): resumed in that order, before any new request.
    preempted: BTreeSet<(i32, u64, usize, SeqId)>,
    fairness: VirtualTokenCounter,
    /// Sequence slots promised to choices not yet forked.
    reserved_forks: usize,
    next_key: u64,
    next_seq: SeqId,
    step_id: u64,
    in_flight: Option<Vec<(SeqId, usize)>>,
    released: Vec<SeqId>,
    newly_admitted: Vec<String>,
    counters: Counters,
    tenant_totals: BTreeMap<String, (u64, u64)>,
}

impl Scheduler {
    pub fn new(
        config: SchedulerConfig,
        detokenizer: Arc<dyn Detokenizer>,
    ) -> Result<Self, SchedulerError> {
        config.validate()?;
        let kv = KvCacheManager::new(
            config.num_gpu_blocks,
            config.block_size,
            config.enable_prefix_caching,
        );
        Ok(Self {
            config,
            kv,
            detokenizer,
            requests: HashMap::new(),
            request_keys: HashMap::new(),
            seqs: HashMap::new(),
            running: Vec::new(),
            waiting: RequestQueue::default(),
            preempted: BTreeSet::new(),
            fairness: VirtualTokenCounter::default(),
            reserved_forks: 0,
            next_key: 0,
            next_seq: 0,
            step_id: 0,
            in_flight: None,
            released: Vec::new(),
            newly_admitted: Vec::new(),
            counters: Counters::default(),
            tenant_totals: BTreeMap::new(),
        })
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    pub fn kv_cache(&self) -> &KvCacheManager {
        &self.kv
    }

    pub fn fairness(&self) -> &VirtualTokenCounter {
        &self.fairness
    }

    /// True while any request is unfinished.
    pub fn has_unfinished_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    pub fn num_unfinished_requests(&self) -> usize {
        self.requests.len()
    }

    pub fn num_running_seqs(&self) -> usize {
        self.running.len()
    }

    pub fn num_waiting_requests(&self) -> usize {
        self.waiting.len()
    }

    pub fn contains(&self, request_id: &str) -> bool {
        self.request_keys.contains_key(request_id)
    }

    /// Queues a request, or refuses it (`QueueFull` when over an admission cap).
    pub fn add_request(&mut self, req: NewRequest) -> Result<(), SchedulerError> {
        let mut params = req.params;
        params.validate()?;
        let prompt_len = req.prompt_token_ids.len();
        if prompt_len == 0 {
            return Err(SchedulerError::InvalidRequest("prompt is empty".into()));
        }
        if self.request_keys.contains_key(&req.request_id) {
            return Err(SchedulerError::DuplicateRequestId(req.request_id));
        }
        if params.n > self.config.max_num_seqs {
            return Err(SchedulerError::TooManyChoices {
                n: params.n,
                max_num_seqs: self.config.max_num_seqs,
            });
        }
        if prompt_len >= self.config.max_model_len {
            return Err(SchedulerError::PromptTooLong {
                prompt_len,
                max_model_len: self.config.max_model_len,
            });
        }
        let max_tokens = params
            .max_tokens
            .unwrap_or(usize::MAX)
            .min(self.config.max_model_len - prompt_len);
        // One sequence must always fit alone, or preemption could never make room for it.
        let needed = self.kv.blocks_for(prompt_len + max_tokens);
        if needed > self.config.num_gpu_blocks {
            return Err(SchedulerError::TooLargeForCache {
                needed,
                available: self.config.num_gpu_blocks,
            });
        }
        self.waiting
            .check_admission(&self.config.admission, &req.tenant, prompt_len)?;

        // A seed fixed at admission makes sampling reproducible, which recomputation after
        // preemption relies on. Derived from the id so that a replay samples the same.
        params.seed = Some(
            params
                .seed
                .unwrap_or_else(|| fnv1a(req.request_id.as_bytes())),
        );
        let cache_keys = tenant_cache_keys(&req.tenant, req.cache_salt.as_deref());
        let prompt: Arc<[u32]> = req.prompt_token_ids.into();
        let prompt_hashes = if self.config.enable_prefix_caching {
            hash_prompt_blocks(&prompt, self.config.block_size, &cache_keys)
        } else {
            Vec::new()
        };

        let key = self.next_key;
        self.next_key += 1;
        let seq_id = self.new_seq_id();
        let seq = self.new_sequence(
            key,
            0,
            &params,
            &prompt,
            prompt_hashes.clone(),
            SeqState::Waiting,
        );
        self.seqs.insert(seq_id, seq);
        let mut choices = vec![Choice::Pending; params.n];
        choices[0] = Choice::Live(seq_id);

        self.fairness.set_weight(&req.tenant, req.tenant_weight);
        if self.waiting.tenant_len(&req.tenant) == 0 {
            self.fairness.on_backlogged(&req.tenant, &self.waiting);
        }
        self.waiting
            .push(&req.tenant, req.priority, key, prompt_len);
        self.request_keys.insert(req.request_id.clone(), key);
        self.requests.insert(
            key,
            Request {
                id: req.request_id,
                key,
                tenant: req.tenant,
                priority: req.priority,
                prompt,
                prompt_hashes,
                cache_keys,
                params,
                max_tokens,
                choices,
                admitted: false,
                forked: false,
                completion_tokens: 0,
                cached_tokens: 0,
                num_preemptions: 0,
            },
        );
        Ok(())
    }

    /// Ends a request now and frees its blocks. Returns its final deltas (finish reason
    /// `Abort`, usage on the last); nothing when the id is unknown or already finished.
    pub fn abort(&mut self, request_id: &str) -> Vec<Delta> {
        match self.request_keys.get(request_id) {
            Some(&key) => self.end_request(key, FinishReason::Abort),
            None => Vec::new(),
        }
    }

    /// Plans the next step. Empty when there is nothing to compute (or a step is in flight).
    pub fn schedule(&mut self) -> StepPlan {
        if self.in_flight.is_some() {
            return StepPlan::default();
        }
        self.step_id += 1;
        let mut budget = self.config.max_num_batched_tokens;
        let mut scheduled: Vec<(SeqId, usize)> = Vec::new();
        self.schedule_running(&mut budget, &mut scheduled);
        self.schedule_preempted(&mut budget, &mut scheduled);
        // Preempted sequences keep their place at the front: no new request overtakes them
        // (it would take the blocks they wait for).
        if self.preempted.is_empty() {
            self.schedule_waiting(&mut budget, &mut scheduled);
        }
        let plan = self.build_plan(&scheduled);
        self.in_flight = Some(scheduled);
        plan
    }

    fn schedule_running(&mut self, budget: &mut usize, scheduled: &mut Vec<(SeqId, usize)>) {
        let (decodes, prefills): (Vec<SeqId>, Vec<SeqId>) = self
            .running
            .iter()
            .partition(|id| self.remaining_tokens(**id) == 1);
        for id in decodes.into_iter().chain(prefills) {
            if *budget == 0 || scheduled.len() >= self.config.max_num_seqs {
                break;
            }
            if self
                .seqs
                .get(&id)
                .is_none_or(|s| s.state != SeqState::Running)
            {
                continue; // preempted earlier in this pass
            }
            let num_new = self.chunk(self.remaining_tokens(id), *budget);
            loop {
                let computed = self.seqs[&id].num_computed;
                if self
                    .kv
                    .allocate_slots(id, &CachedPrefix::default(), computed, num_new)
                {
                    scheduled.push((id, num_new));
                    *budget -= num_new;
                    break;
                }
                let victim = self.pick_victim();
                if let Some(pos) = scheduled.iter().position(|(s, _)| *s == victim) {
                    *budget += scheduled.remove(pos).1;
                }
                self.preempt(victim);
                if victim == id {
                    break;
                }
            }
        }
    }

    fn schedule_preempted(&mut self, budget: &mut usize, scheduled: &mut Vec<(SeqId, usize)>) {
        while *budget > 0 && self.running.len() + self.reserved_forks < self.config.max_num_seqs {
            let Some(&entry) = self.preempted.first() else {
                break;
            };
            if self.try_start(entry.3, budget, scheduled).is_none() {
                break;
            }
            self.preempted.remove(&entry);
        }
    }

    fn schedule_waiting(&mut self, budget: &mut usize, scheduled: &mut Vec<(SeqId, usize)>) {
        while *budget > 0 {
            let Some(tenant) = self.fairness.pick(&self.waiting) else {
                break;
            };
            let Some(key) = self.waiting.first_of(tenant) else {
                break;
            };
            let req = &self.requests[&key];
            let n = req.params.n;
            if self.running.len() + self.reserved_forks + n > self.config.max_num_seqs {
                break;
            }
            let Choice::Live(seq_id) = req.choices[0] else {
                break;
            };
            let Some(cached) = self.try_start(seq_id, budget, scheduled) else {
                break;
            };
            let req = self.requests.get_mut(&key).expect("picked request exists");
            req.admitted = true;
            req.cached_tokens = cached;
            self.newly_admitted.push(req.id.clone());
            self.reserved_forks += n - 1;
            let (tenant, priority, prompt_len) =
                (req.tenant.clone(), req.priority, req.prompt.len());
            if self.waiting.remove(&tenant, priority, key, prompt_len) {
                self.fairness.on_idle(&tenant);
            }
        }
    }

    /// Starts (or resumes) a sequence with no blocks: takes its cached prefix and a first
    /// chunk. Returns the number of cached tokens, or `None` when the blocks do not fit.
    fn try_start(
        &mut self,
        id: SeqId,
        budget: &mut usize,
        scheduled: &mut Vec<(SeqId, usize)>,
    ) -> Option<usize> {
        let seq = &self.seqs[&id];
        let req = &self.requests[&seq.req];
        let total = seq.num_tokens(req.prompt.len());
        let cached = if self.config.enable_prefix_caching {
            self.kv.find_cached_prefix(&seq.hashes, total)
        } else {
            CachedPrefix::default()
        };
        let num_new = self.chunk(total - cached.num_tokens, *budget);
        if !self
            .kv
            .allocate_slots(id, &cached, cached.num_tokens, num_new)
        {
            return None;
        }
        self.kv.record_prefix_lookup(total, cached.num_tokens);
        let seq = self.seqs.get_mut(&id).expect("sequence exists");
        seq.num_computed = cached.num_tokens;
        if seq.state == SeqState::Waiting {
            seq.charged_input = cached.num_tokens;
        }
        seq.state = SeqState::Running;
        self.running.push(id);
        scheduled.push((id, num_new));
        *budget -= num_new;
        Some(cached.num_tokens)
    }

    fn chunk(&self, remaining: usize, budget: usize) -> usize {
        let mut n = remaining.min(budget);
        if self.config.long_prefill_token_threshold > 0 {
            n = n.min(self.config.long_prefill_token_threshold);
        }
        n
    }

    fn remaining_tokens(&self, id: SeqId) -> usize {
        let seq = &self.seqs[&id];
        seq.num_tokens(self.requests[&seq.req].prompt.len()) - seq.num_computed
    }

    /// The running sequence to give up first: lowest priority (largest value), then latest
    /// arrival, then highest choice index.
    fn pick_victim(&self) -> SeqId {
        *self
            .running
            .iter()
            .max_by_key(|id| {
                let s = &self.seqs[id];
                let r = &self.requests[&s.req];
                (r.priority, r.key, s.index)
            })
            .expect("a sequence that needs blocks is running")
    }

    /// Frees a running sequence's blocks; it restarts from scratch (its computed blocks
    /// usually survive in the prefix cache, so "scratch" is often cheap).
    fn preempt(&mut self, id: SeqId) {
        self.kv.free(id);
        self.running.retain(|s| *s != id);
        self.released.push(id);
        let seq = self.seqs.get_mut(&id).expect("victim exists");
        seq.num_computed = 0;
        seq.state = SeqState::Preempted;
        let req = self
            .requests
            .get_mut(&seq.req)
            .expect("victim's request exists");
        req.num_preemptions += 1;
        self.preempted
            .insert((req.priority, req.key, seq.index, id));
        self.counters.num_preemptions += 1;
    }

    fn build_plan(&mut self, scheduled: &[(SeqId, usize)]) -> StepPlan {
        let bs = self.config.block_size;
        let mut plan = StepPlan {
            step_id: self.step_id,
            released_seq_ids: std::mem::take(&mut self.released),
            ..StepPlan::default()
        };
        let mut seqs = Vec::with_capacity(scheduled.len());
        for &(id, num_new) in scheduled {
            let seq = self.seqs.get_mut(&id).expect("scheduled sequence exists");
            let req = &self.requests[&seq.req];
            let start = seq.num_computed;
            let end = start + num_new;
            let tokens: Vec<u32> = (start..end).map(|p| seq.token_at(&req.prompt, p)).collect();
            let want_logits = end == seq.num_tokens(req.prompt.len());
            let table = self.kv.block_table(id).to_vec();
            seqs.push(SequenceStep::contiguous(
                tokens,
                start,
                table,
                bs,
                want_logits,
            ));
            plan.seq_ids.push(id);
            if want_logits {
                plan.sampling.push(SamplingInput {
                    seq_id: id,
                    batch_index: seqs.len() - 1,
                    params: seq.params.clone(),
                    prompt_token_ids: req.prompt.clone(),
                    output_token_ids: seq.output.clone(),
                    output_index: seq.output.len(),
                });
            }
            // Service is charged when scheduled: fairness reacts within the same step.
            let prompt_end = end.min(req.prompt.len());
            if prompt_end > seq.charged_input {
                let charged = prompt_end - seq.charged_input;
                seq.charged_input = prompt_end;
                self.fairness.charge(&req.tenant, charged, 0);
                self.counters.prompt_tokens += charged as u64;
                self.tenant_totals.entry(req.tenant.clone()).or_default().0 += charged as u64;
            }
        }
        plan.batch = StepBatch { seqs };
        plan
    }

    /// Takes the step's sampled tokens and returns the deltas to stream.
    pub fn update(&mut self, sampled: Vec<SampledToken>) -> Vec<Delta> {
        let Some(entries) = self.in_flight.take() else {
            return Vec::new();
        };
        let mut by_seq: HashMap<SeqId, SampledToken> =
            sampled.into_iter().map(|t| (t.seq_id, t)).collect();
        let mut deltas = Vec::new();
        for (id, num_new) in entries {
            let Some(seq) = self.seqs.get_mut(&id) else {
                continue;
            }; // aborted meanwhile
            if seq.state != SeqState::Running {
                continue;
            }
            seq.num_computed += num_new;
            self.kv
                .commit_full_blocks(id, &seq.hashes, seq.num_computed);
            let prompt_len = self.requests[&seq.req].prompt.len();
            if seq.num_computed < seq.num_tokens(prompt_len) {
                continue; // a prefill chunk: nothing sampled yet
            }
            match by_seq.remove(&id) {
                Some(SampledToken {
                    error: Some(msg), ..
                }) => {
                    let key = seq.req;
                    deltas.extend(self.end_request(key, FinishReason::Error(msg)));
                }
                Some(tok) => self.append_token(id, tok, &mut deltas),
                None => {
                    let key = seq.req;
                    let msg = format!("the executor returned no token for sequence {id}");
                    deltas.extend(self.end_request(key, FinishReason::Error(msg)));
                }
            }
        }
        deltas
    }

    /// The engine can run nothing more: every request, running or waiting, ends with an error
    /// delta (the step in flight, if any, is dropped).
    pub fn fail_all(&mut self, error: &str) -> Vec<Delta> {
        self.in_flight = None;
        let mut keys: Vec<u64> = self.requests.keys().copied().collect();
        keys.sort_unstable();
        let mut deltas = Vec::new();
        for key in keys {
            deltas.extend(self.end_request(key, FinishReason::Error(error.to_string())));
        }
        deltas
    }

    /// The step failed: every request with a sequence in it ends with an error delta; the
    /// others carry on.
    pub fn fail_step(&mut self, error: &str) -> Vec<Delta> {
        let Some(entries) = self.in_flight.take() else {
            return Vec::new();
        };
        let mut keys: Vec<u64> = entries
            .iter()
            .filter_map(|(id, _)| self.seqs.get(id).map(|s| s.req))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut deltas = Vec::new();
        for key in keys {
            deltas.extend(self.end_request(key, FinishReason::Error(error.to_string())));
        }
        deltas
    }

    fn append_token(&mut self, id: SeqId, tok: SampledToken, deltas: &mut Vec<Delta>) {
        let token = tok.token_id;
        let seq = self.seqs.get_mut(&id).expect("sampled sequence exists");
        let req = self.requests.get_mut(&seq.req).expect("its request exists");
        req.completion_tokens += 1;
        self.counters.generation_tokens += 1;
        self.tenant_totals.entry(req.tenant.clone()).or_default().1 += 1;
        self.fairness.charge(&req.tenant, 0, 1);
        if self.config.enable_prefix_caching {
            extend_hashes(seq, &req.prompt, self.config.block_size, &req.cache_keys);
        }

        let outcome = seq.accept_token(
            token,
            req,
            &self.config.eos_token_ids,
            self.config.max_model_len,
        );
        let (finish, stop_reason) = (outcome.finish, outcome.stop_reason);
        let params = &req.params;
        let mut delta = Delta::empty(&req.id, seq.index);
        delta.token_ids.push(token);
        delta.text = outcome.text;
        if params.logprobs.is_some() {
            if let Some(lp) = tok.logprob {
                delta.logprobs.push(TokenLogprob {
                    token_id: token,
                    logprob: lp,
                    top: tok.top_logprobs,
                });
            }
        }
        let (key, index) = (seq.req, seq.index);
        // The prompt is computed: the other choices start from its blocks.
        if index == 0 && !req.forked && req.params.n > 1 {
            self.fork_choices(key, id);
        }
        if let Some(reason) = finish {
            delta.finish_reason = Some(reason);
            delta.stop_reason = stop_reason;
            delta.usage = self.finish_choice(key, index);
        }
        deltas.push(delta);
    }

    /// Creates choices 1..n sharing the prompt's full blocks with choice 0. Each recomputes
    /// at least the prompt's last token so that it gets logits of its own to sample from.
    fn fork_choices(&mut self, key: u64, parent: SeqId) {
        let bs = self.config.block_size;
        let req = &self.requests[&key];
        let (n, prompt_len) = (req.params.n, req.prompt.len());
        let shared = (prompt_len - 1) / bs;
        let (params, prompt, hashes) = (
            req.params.clone(),
            req.prompt.clone(),
            req.prompt_hashes.clone(),
        );
        let mut ids = Vec::with_capacity(n - 1);
        for index in 1..n {
            let id = self.new_seq_id();
            self.kv.fork(parent, id, shared);
            let mut seq = self.new_sequence(
                key,
                index,
                &params,
                &prompt,
                hashes.clone(),
                SeqState::Running,
            );
            seq.num_computed = shared * bs;
            seq.charged_input = prompt_len;
            self.seqs.insert(id, seq);
            self.running.push(id);
            ids.push(id);
        }
        self.reserved_forks -= n - 1;
        let req = self.requests.get_mut(&key).expect("forked request exists");
        req.forked = true;
        for (i, id) in ids.into_iter().enumerate() {
            req.choices[i + 1] = Choice::Live(id);
        }
    }

    /// Ends one choice; returns the request's usage when it was the last.
    fn finish_choice(&mut self, key: u64, index: usize) -> Option<Usage> {
        let req = self
            .requests
            .get_mut(&key)
            .expect("finishing request exists");
        if let Choice::Live(id) = req.choices[index] {
            req.choices[index] = Choice::Done;
            self.release_seq(id);
        }
        let req = &self.requests[&key];
        if req.choices.iter().any(|c| *c != Choice::Done) {
            return None;
        }
        let usage = usage_of(req);
        self.remove_request(key);
        Some(usage)
    }

    /// Ends every unfinished choice of a request with `reason`.
    fn end_request(&mut self, key: u64, reason: FinishReason) -> Vec<Delta> {
        let Some(req) = self.requests.get(&key) else {
            return Vec::new();
        };
        if !req.admitted {
            let (tenant, priority, len) = (req.tenant.clone(), req.priority, req.prompt.len());
            if self.waiting.remove(&tenant, priority, key, len) {
                self.fairness.on_idle(&tenant);
            }
        } else if !req.forked {
            self.reserved_forks -= req.params.n - 1;
        }
        let req = self.requests.get_mut(&key).expect("checked above");
        let id = req.id.clone();
        let mut open = Vec::new();
        for (index, choice) in req.choices.iter_mut().enumerate() {
            match *choice {
                Choice::Done => continue,
                Choice::Live(s) => open.push((index, Some(s))),
                Choice::Pending => open.push((index, None)),
            }
            *choice = Choice::Done;
        }
        let usage = usage_of(req);
        let mut deltas = Vec::with_capacity(open.len());
        for (index, seq) in open {
            let mut d = Delta::empty(&id, index);
            d.finish_reason = Some(reason.clone());
            // Text held back for stop strings stays back: it might be the start of one.
            if let Some(s) = seq {
                self.release_seq(s);
            }
            deltas.push(d);
        }
        if let Some(last) = deltas.last_mut() {
            last.usage = Some(usage);
        }
        self.remove_request(key);
        deltas
    }

    fn release_seq(&mut self, id: SeqId) {
        let Some(seq) = self.seqs.remove(&id) else {
            return;
        };
        match seq.state {
            SeqState::Running => {
                self.running.retain(|s| *s != id);
                self.kv.free(id);
                self.released.push(id);
            }
            SeqState::Preempted => {
                let req = &self.requests[&seq.req];
                self.preempted
                    .remove(&(req.priority, req.key, seq.index, id));
            }
            SeqState::Waiting => {}
        }
    }

    fn remove_request(&mut self, key: u64) {
        if let Some(req) = self.requests.remove(&key) {
            self.request_keys.remove(&req.id);
        }
    }

    fn new_seq_id(&mut self) -> SeqId {
        let id = self.next_seq;
        self.next_seq += 1;
        id
    }

    fn new_sequence(
        &self,
        req: u64,
        index: usize,
        params: &SamplingParams,
        prompt: &[u32],
        hashes: Vec<BlockHash>,
        state: SeqState,
    ) -> Sequence {
        let mut p = params.clone();
        // Each choice draws its own randomness (vLLM: seed + index).
        p.seed = p.seed.map(|s| s.wrapping_add(index as u64));
        Sequence {
            req,
            index,
            decode: self.detokenizer.stream(prompt, p.skip_special_tokens),
            params: Arc::new(p),
            output: Vec::new(),
            num_computed: 0,
            hashes,
            state,
            text: String::new(),
            emitted: 0,
            charged_input: 0,
        }
    }

    /// Ids of requests admitted (first scheduled) since the last call, for queue-time metrics.
    pub fn take_newly_admitted(&mut self) -> Vec<String> {
        std::mem::take(&mut self.newly_admitted)
    }

    /// Drops cached prefixes not in use (for an operator, or a rotated salt).
    pub fn reset_prefix_cache(&mut self) {
        self.kv.reset_prefix_cache();
    }

    /// Counters and gauges for metrics.
    pub fn stats(&self) -> SchedulerStats {
        let (queries, hits) = self.kv.prefix_cache_stats();
        let mut tenants: BTreeMap<String, TenantStats> = BTreeMap::new();
        let mut running_reqs = BTreeSet::new();
        for id in &self.running {
            let req = &self.requests[&self.seqs[id].req];
            running_reqs.insert(req.key);
            tenants
                .entry(req.tenant.clone())
                .or_default()
                .num_running_seqs += 1;
        }
        for t in self.waiting.backlogged() {
            tenants
                .entry(t.to_string())
                .or_default()
                .num_waiting_requests = self.waiting.tenant_len(t);
        }
        for (t, &(p, g)) in &self.tenant_totals {
            let e = tenants.entry(t.clone()).or_default();
            e.prompt_tokens_total = p;
            e.generation_tokens_total = g;
        }
        for (t, e) in tenants.iter_mut() {
            e.virtual_token_counter = self.fairness.counter(t);
        }
        // A request whose sequences are all preempted waits again (as vLLM counts it).
        let preempted_reqs: BTreeSet<u64> = self
            .preempted
            .iter()
            .map(|&(_, key, _, _)| key)
            .filter(|k| !running_reqs.contains(k))
            .collect();
        SchedulerStats {
            num_requests_running: running_reqs.len(),
            num_requests_waiting: self.waiting.len() + preempted_reqs.len(),
            num_seqs_preempted: self.preempted.len(),
            kv_cache_usage_perc: self.kv.usage(),
            prefix_cache_queries: queries,
            prefix_cache_hits: hits,
            num_preemptions_total: self.counters.num_preemptions,
            prompt_tokens_total: self.counters.prompt_tokens,
            generation_tokens_total: self.counters.generation_tokens,
            tenants,
        }
    }
}

/// FNV-1a: a stable default seed from the request id.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
