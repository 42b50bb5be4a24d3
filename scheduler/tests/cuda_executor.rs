//! The scheduler in front of the CUDA forward pass (`spawn_engine_with`), run on the CPU
//! through `HostDevice` (the CUDA kernels compiled as C++): two concurrent greedy requests on
//! a seeded random model produce the tokens the CPU engine produces, with usage, through the
//! same engine loop (batching, paged blocks, sampling on the returned logits).

use std::sync::Arc;

use engine::cuda::device::HostDevice;
use engine::cuda::model::DeviceModel;
use engine::{Model, SamplingParams, TextModel};
use scheduler::model_executor::{config_for_model, spawn_engine, spawn_engine_with};
use scheduler::{EngineLoop, NewRequest, SchedulerConfig};

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
    let prompts = [
        (0..21).map(|i| (i * 5 + 2) % 256).collect::<Vec<u32>>(),
        vec![9, 8, 7],
    ];
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
            let (mut tokens, mut usage) = (Vec::new(), None);
            while let Some(d) = s.blocking_recv() {
                tokens.extend(d.token_ids);
                usage = d.usage.or(usage);
            }
            assert_eq!(usage.expect("usage at the end").completion_tokens, 6);
            tokens
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
    let forward = DeviceModel::new(dev, &model, config.block_size, config.num_gpu_blocks).unwrap();
    let got = generate(&spawn_engine_with(&model, config, Box::new(forward)).unwrap());
    assert_eq!(got, want);
    assert!(got.iter().all(|t| t.len() == 6));
}
