//! The scheduler driving the real default model through `EngineLoop`: prefix caching within
//! a tenant (and not across tenants), with output identical to a run without the cache.

use std::sync::Arc;

use engine::{Model, SamplingParams};
use scheduler::model_executor::{config_for_model, spawn_engine};
use scheduler::{EngineLoop, NewRequest, SchedulerConfig, Usage};

fn model() -> Arc<Model> {
    let path = engine::model_cache::find_default_model().expect("run `starfire model fetch` first");
    Arc::new(Model::load(&path).unwrap())
}

fn start(model: &Arc<Model>, prefix_caching: bool) -> EngineLoop {
    let base = SchedulerConfig {
        enable_prefix_caching: prefix_caching,
        ..SchedulerConfig::default()
    };
    let config = config_for_model(model, base, 64 << 20);
    spawn_engine(model, config).unwrap()
}

/// Runs one request to the end; returns its tokens, text and usage.
fn run(
    engine: &EngineLoop,
    id: &str,
    tenant: &str,
    prompt: Vec<u32>,
    max_tokens: usize,
) -> (Vec<u32>, String, Usage) {
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(max_tokens)
    };
    let mut stream = engine
        .submit_blocking(NewRequest::new(id, tenant, prompt, params))
        .unwrap();
    let (mut tokens, mut text, mut usage) = (Vec::new(), String::new(), None);
    while let Some(d) = stream.blocking_recv() {
        tokens.extend(d.token_ids);
        text.push_str(&d.text);
        if d.usage.is_some() {
            usage = d.usage;
        }
    }
    (tokens, text, usage.expect("usage arrives once at the end"))
}

#[test]
fn shared_prefix_is_computed_once_per_tenant() {
    let model = model();
    let prefix: Vec<u32> = model
        .tokenizer
        .encode(
            &"The history of the lighthouse keeper and the sea. ".repeat(40),
            false,
        )
        .unwrap()[..256]
        .to_vec();
    let mut first = prefix.clone();
    first.extend(
        model
            .tokenizer
            .encode(" Tell me about the storm.", false)
            .unwrap(),
    );
    let mut second = prefix.clone();
    second.extend(
        model
            .tokenizer
            .encode(" What did the keeper eat?", false)
            .unwrap(),
    );

    let cached = start(&model, true);
    let (_, _, u1) = run(&cached, "a1", "tenant-a", first.clone(), 8);
    assert_eq!(u1.cached_tokens, 0, "nothing cached yet");
    let (tokens, text, u2) = run(&cached, "a2", "tenant-a", second.clone(), 8);
    assert_eq!(
        u2.cached_tokens, 256,
        "the second request computes only its uncached tokens"
    );
    assert_eq!(u2.prompt_tokens, second.len());
    let (_, _, u3) = run(&cached, "b1", "tenant-b", second.clone(), 8);
    assert_eq!(
        u3.cached_tokens, 0,
        "another tenant never hits tenant-a's blocks"
    );
    let metrics = cached.metrics();
    cached.shutdown();

    let uncached = start(&model, false);
    let (tokens_ref, text_ref, u_ref) = run(&uncached, "r", "tenant-a", second, 8);
    uncached.shutdown();
    assert_eq!(u_ref.cached_tokens, 0);
    assert_eq!(
        tokens, tokens_ref,
        "prefix caching must not change greedy output"
    );
    assert_eq!(text, text_ref);
    assert_eq!(tokens.len(), 8);
    assert!(
        metrics.scheduler.prefix_cache_hits >= 256,
        "hits are counted: {:?}",
        metrics.scheduler.prefix_cache_hits
    );
}
