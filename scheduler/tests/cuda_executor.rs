//! The scheduler in front of the CUDA forward pass (`spawn_engine_with`), run on the CPU
//! through `HostDevice` (the CUDA kernels compiled as C++): two concurrent greedy requests on
//! a seeded random model produce the tokens the CPU engine produces, with usage, through the
//! same engine loop (batching, paged blocks, sampling on the returned logits).

use std::sync::{Arc, Mutex};

use engine::sampling::RowPick;

use engine::cuda::device::HostDevice;
use engine::cuda::model::DeviceModel;
use engine::{Model, SamplingParams, TextModel};
use scheduler::model_executor::{
    config_for_model, spawn_device_engine, spawn_engine, spawn_engine_with, step_limits,
};
use scheduler::{EngineLoop, NewRequest, SchedulerConfig, TokenLogprob};

fn synthetic() -> Arc<Model> {
    let path = engine::model_cache::find_default_model().expect("run `starfire model fetch` first");
    let text = TextModel::load(&path).unwrap();
    let mut cfg = text.config.clone();
    (cfg.hidden_size, cfg.num_layers, cfg.intermediate_size) = (96, 3, 192);
    (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) = (3, 1, 32);
    cfg.vocab_size = 256;
    Arc::new(Model::synthetic(cfg, text.tokenizer, 11).unwrap())
}

/// Two requests submitted together (so they share steps); their token ids.
fn generate(engine: &EngineLoop) -> Vec<Vec<u32>> {
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(6)
    };
    generate_with(engine, &params)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// [`generate`] with `params`; each request's tokens and logprobs.
fn generate_with(
    engine: &EngineLoop,
    params: &SamplingParams,
) -> Vec<(Vec<u32>, Vec<TokenLogprob>)> {
    let prompts = [
        (0..21).map(|i| (i * 5 + 2) % 256).collect::<Vec<u32>>(),
        vec![9, 8, 7],
    ];
    submit_all(engine, &prompts, params)
}

/// `prompts` submitted together (so they share steps) with `params`; each request's tokens
/// and logprobs, its usage checked against `params.max_tokens`.
fn submit_all(
    engine: &EngineLoop,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
) -> Vec<(Vec<u32>, Vec<TokenLogprob>)> {
    let streams: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            engine
                .submit_blocking(NewRequest::new(
                    format!("r{i}"),
                    "tenant",
                    p.clone(),
                    params.clone(),
                ))
                .unwrap()
        })
        .collect();
    streams
        .into_iter()
        .map(|mut s| {
            let (mut tokens, mut logprobs, mut usage) = (Vec::new(), Vec::new(), None);
            while let Some(d) = s.blocking_recv() {
                tokens.extend(d.token_ids);
                logprobs.extend(d.logprobs);
                usage = d.usage.or(usage);
            }
            assert_eq!(
                Some(usage.expect("usage at the end").completion_tokens),
                params.max_tokens
            );
            (tokens, logprobs)
        })
        .collect()
}

#[test]
fn the_engine_loop_over_the_cuda_forward_pass_matches_the_cpu_engine() {
    let model = synthetic();
    let config = config_for_model(&model, SchedulerConfig::default(), 4 << 20);
    let want = generate(&spawn_engine(&model, config.clone()).unwrap());
    let dev =
        HostDevice::build(&std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu"))
            .unwrap();
    let mut forward =
        DeviceModel::new(dev, &model, config.block_size, config.num_gpu_blocks).unwrap();
    // Its memory reserved for the scheduler's largest steps, as serving does.
    forward.reserve(step_limits(&config)).unwrap();
    let got = generate(&spawn_engine_with(&model, config, Box::new(forward)).unwrap());
    assert_eq!(got, want);
    assert!(got.iter().all(|t| t.len() == 6));
}

/// The CUDA forward pass with every row's logits coming back (the default `step_outputs`), so
/// that the executor samples on the CPU.
struct LogitsOnly(DeviceModel<HostDevice>);

impl engine::StepForward for LogitsOnly {
    fn step(&mut self, batch: &engine::StepBatch) -> engine::Result<Vec<Vec<f32>>> {
        self.0.step(batch)
    }
}

/// The CUDA forward pass, recording how the executor asked it to pick each row.
struct Recording(DeviceModel<HostDevice>, Arc<Mutex<Vec<RowPick>>>);

impl engine::StepForward for Recording {
    fn step(&mut self, batch: &engine::StepBatch) -> engine::Result<Vec<Vec<f32>>> {
        self.0.step(batch)
    }

    fn picks_tokens(&self) -> bool {
        true
    }

    fn step_outputs(
        &mut self,
        batch: &engine::StepBatch,
        picks: &[RowPick],
        masks: &mut engine::StepMasks<'_>,
    ) -> engine::Result<Vec<engine::StepOutput>> {
        self.1.lock().unwrap().extend_from_slice(picks);
        self.0.step_outputs(batch, picks, masks)
    }
}

/// Sampled and greedy requests, with top logprobs and under a grammar, picked on the device
/// (every row: no logits come back) give the tokens, logprobs and alternatives the CPU sampler
/// gives on the same logits.
#[test]
fn sampling_on_the_device_picks_the_tokens_the_cpu_sampler_picks() {
    let model = synthetic();
    let config = config_for_model(&model, SchedulerConfig::default(), 4 << 20);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu");
    let forward = || {
        DeviceModel::new(
            HostDevice::build(&dir).unwrap(),
            &model,
            config.block_size,
            config.num_gpu_blocks,
        )
        .unwrap()
    };
    let sampled = SamplingParams {
        temperature: 1.5,
        top_k: 50,
        top_p: 0.95,
        repetition_penalty: 1.2,
        presence_penalty: 0.3,
        seed: Some(7),
        logprobs: Some(0),
        ignore_eos: true,
        ..SamplingParams::greedy(6)
    };
    let with_top = SamplingParams {
        logprobs: Some(engine::sampling::MAX_LOGPROBS),
        ..sampled.clone()
    };
    let greedy_with_top = SamplingParams {
        logprobs: Some(3),
        ignore_eos: true,
        ..SamplingParams::greedy(6)
    };
    // Under a grammar (structured outputs): its mask applied by the device's sampler. Six
    // letters at least, so that every request runs its six tokens (the synthetic model's
    // vocabulary has one-letter tokens only).
    let letters = Some(engine::structured::StructuredOutput::Regex {
        pattern: "[a-e]{6,9}".to_string(),
    });
    let sampled_grammar = SamplingParams {
        structured: letters.clone(),
        ignore_eos: false,
        ..sampled.clone()
    };
    let greedy_grammar = SamplingParams {
        structured: letters,
        ignore_eos: false,
        ..greedy_with_top.clone()
    };
    for params in [
        &sampled,
        &with_top,
        &greedy_with_top,
        &sampled_grammar,
        &greedy_grammar,
    ] {
        let on_cpu = generate_with(
            &spawn_engine_with(&model, config.clone(), Box::new(LogitsOnly(forward()))).unwrap(),
            params,
        );
        let picks = Arc::new(Mutex::new(Vec::new()));
        let on_device = generate_with(
            &spawn_engine_with(
                &model,
                config.clone(),
                Box::new(Recording(forward(), picks.clone())),
            )
            .unwrap(),
            params,
        );
        let picks = picks.lock().unwrap();
        assert!(!picks.is_empty());
        let masked = params.structured.is_some();
        assert!(
            picks
                .iter()
                .all(|p| matches!(p, RowPick::Sample(s) if s.masked == masked)),
            "{params:?}: every row sampled on the device: {picks:?}"
        );
        if masked {
            for (tokens, _) in &on_device {
                let text = model.tokenizer.decode(tokens, false).unwrap();
                assert!(
                    text.len() == 6 && text.chars().all(|c| ('a'..='e').contains(&c)),
                    "{params:?}: {text:?} is not the grammar's"
                );
            }
        }
        for ((ct, cl), (dt, dl)) in on_cpu.iter().zip(&on_device) {
            assert_eq!(
                dt, ct,
                "{params:?}: the tokens sampled on the device and on the CPU"
            );
            assert_eq!(dl.len(), 6);
            for (a, b) in cl.iter().zip(dl) {
                assert_eq!(a.token_id, b.token_id);
                assert!(
                    (a.logprob - b.logprob).abs() <= 1e-4,
                    "{cl:?} against {dl:?}"
                );
                let k = params.logprobs.unwrap();
                assert_eq!((a.top.len(), b.top.len()), (k, k));
                for (x, y) in a.top.iter().zip(&b.top) {
                    assert_eq!(x.0, y.0, "{params:?}: alternatives {cl:?} against {dl:?}");
                    assert!((x.1 - y.1).abs() <= 1e-4, "{cl:?} against {dl:?}");
                }
            }
        }
        if params.temperature > 0.0 {
            // Sampled, not greedy: the two requests' outputs are not the argmax chain.
            let greedy =
                generate(&spawn_engine_with(&model, config.clone(), Box::new(forward())).unwrap());
            assert_ne!(
                on_device.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>(),
                greedy
            );
        }
    }
}

/// Serving's start (`spawn_device_engine`): the KV cache sized by a share of the device's
/// memory, the scheduler's block count is what that made (a request larger than the cache is
/// refused with that count), and generation matches the CPU engine.
#[test]
fn an_engine_sized_by_a_share_of_the_device_uses_the_blocks_it_got() {
    use engine::cuda::model::KvCacheSize;
    let model = synthetic();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu");
    let base = SchedulerConfig {
        max_num_seqs: 8,
        max_num_batched_tokens: 256,
        ..SchedulerConfig::default()
    };
    let config = config_for_model(&model, base.clone(), 4 << 20);
    // What the weights, the step buffers, one block and the padding block take.
    let probe = DeviceModel::start(
        HostDevice::build(&dir).unwrap(),
        &model,
        config.block_size,
        KvCacheSize::Blocks(1),
        step_limits(&config),
    )
    .unwrap();
    let per_block = engine::KvCache::bytes_per_block(
        model.config.num_layers,
        model.config.kv_dim(),
        config.block_size,
    );
    // A quarter of the device holds that and 38 blocks more: 39 blocks and the padding one.
    let total = 4 * (probe.device().used_bytes() + 38 * per_block);
    drop(probe);
    let device = HostDevice::build(&dir).unwrap().with_memory(total);
    let engine = spawn_device_engine(&model, base, device, KvCacheSize::Utilization(0.25)).unwrap();
    assert_eq!(
        generate(&engine),
        generate(&spawn_engine(&model, config).unwrap())
    );
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(700)
    };
    let err = engine
        .submit_blocking(NewRequest::new("big", "tenant", vec![1, 2, 3], params))
        .err()
        .expect("larger than the cache")
        .to_string();
    assert!(err.contains("but the cache has 39"), "{err}");
}

/// Greedy outputs of `prompts` (24 tokens each) submitted together to `engine`.
fn generate_all(engine: &EngineLoop, prompts: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(24)
    };
    submit_all(engine, prompts, &params)
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

/// The scheduler's block tables drive the device's cache as they drive the CPU engine's: with
/// a cache too small for four sequences at once, sequences are preempted and recomputed, and
/// prompts sharing a 32-token prefix reuse its cached blocks; the tokens are those the same
/// forward pass gives with room for all and nothing cached. (The matrix-vector kernels only:
/// each row's sums then do not depend on what shares its step.)
#[test]
fn preemption_and_prefix_caching_work_over_the_cuda_forward_pass() {
    let model = synthetic();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cuda-cpu");
    let prefix: Vec<u32> = (0..32).map(|i| (i * 7 + 3) % 256).collect();
    let prompts: Vec<Vec<u32>> = (0..4u32)
        .map(|i| {
            let mut p = prefix.clone();
            p.extend((0..5).map(|j| (i * 31 + j * 11 + 1) % 256));
            p
        })
        .collect();
    let run = |num_gpu_blocks: usize, enable_prefix_caching: bool| {
        let base = SchedulerConfig {
            max_num_seqs: 4,
            enable_prefix_caching,
            ..SchedulerConfig::default()
        };
        let mut config = config_for_model(&model, base, 4 << 20);
        config.num_gpu_blocks = num_gpu_blocks;
        let mut forward = DeviceModel::new(
            HostDevice::build(&dir).unwrap(),
            &model,
            config.block_size,
            num_gpu_blocks,
        )
        .unwrap();
        forward.reserve(step_limits(&config)).unwrap();
        let engine = spawn_engine_with(&model, config, Box::new(forward)).unwrap();
        let out = generate_all(&engine, &prompts);
        (out, engine.metrics().scheduler)
    };
    let (want, roomy) = run(64, false);
    assert_eq!(roomy.num_preemptions_total, 0);
    assert!(want.iter().all(|t| t.len() == 24));
    // 61 positions: 4 blocks a sequence, 10 for four sharing the prefix's 2; the cache has 7.
    let (got, tight) = run(7, true);
    assert!(
        tight.num_preemptions_total > 0,
        "the small cache preempted: {tight:?}"
    );
    assert!(
        tight.prefix_cache_hits > 0,
        "the shared prefix was reused: {tight:?}"
    );
    assert_eq!(got, want);
}
