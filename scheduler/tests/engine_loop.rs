//! The engine loop: streams, drop-to-abort, executor failures, shutdown, admission errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::SamplingParams;
use scheduler::testing::{FakeDetokenizer, FakeExecutor};
use scheduler::{
    DeltaStream, EngineLoop, FinishReason, NewRequest, QueueScope, SchedulerConfig, SchedulerError,
};

fn config() -> SchedulerConfig {
    SchedulerConfig {
        num_gpu_blocks: 128,
        max_num_seqs: 8,
        max_num_batched_tokens: 256,
        // A whole sequence must fit in the 128 blocks of 16.
        max_model_len: 2048,
        eos_token_ids: vec![0],
        ..SchedulerConfig::default()
    }
}

fn start(exec: FakeExecutor) -> EngineLoop {
    EngineLoop::spawn(
        config(),
        exec,
        Arc::new(FakeDetokenizer {
            special_token_ids: vec![0],
        }),
    )
    .unwrap()
}

fn fake() -> FakeExecutor {
    let c = config();
    FakeExecutor::new(c.num_gpu_blocks, c.block_size)
}

/// Reads `s` to its end; the finish reason of its last delta.
async fn finish_reason(s: &mut DeltaStream) -> Option<FinishReason> {
    let mut last = None;
    while let Some(d) = s.recv().await {
        last = d.finish_reason;
    }
    last
}

fn req(id: &str, max_tokens: Option<usize>) -> NewRequest {
    let params = SamplingParams {
        max_tokens,
        ignore_eos: true,
        seed: Some(9),
        ..Default::default()
    };
    NewRequest::new(id, "t", (1..=30).collect(), params)
}

async fn wait_for(
    engine: &EngineLoop,
    what: &str,
    cond: impl Fn(&scheduler::MetricsSnapshot) -> bool,
) {
    let start = Instant::now();
    while !cond(&engine.metrics()) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn streams_every_token_then_usage() {
    let engine = start(fake());
    let mut streams = Vec::new();
    for i in 0..3 {
        streams.push(
            engine
                .submit(req(&format!("r{i}"), Some(20)))
                .await
                .unwrap(),
        );
    }
    for mut s in streams {
        let mut tokens = 0;
        let mut usage = None;
        while let Some(d) = s.recv().await {
            assert!(usage.is_none(), "nothing after the usage delta");
            tokens += d.token_ids.len();
            if d.usage.is_some() {
                assert_eq!(d.finish_reason, Some(FinishReason::Length));
                usage = d.usage;
            }
        }
        let u = usage.expect("usage delta");
        assert_eq!((tokens, u.completion_tokens, u.prompt_tokens), (20, 20, 30));
    }
    wait_for(&engine, "idle metrics", |m| {
        m.scheduler.kv_cache_usage_perc == 0.0
            && m.engine_loop.request_success.get("length") == Some(&3)
    })
    .await;
    let m = engine.metrics();
    assert_eq!(m.scheduler.generation_tokens_total, 60);
    assert_eq!(m.engine_loop.request_success.get("length"), Some(&3));
    assert_eq!(m.engine_loop.time_to_first_token_seconds.count, 3);
    assert!(scheduler::render_prometheus(&m, "fake")
        .contains("starfire:generation_tokens_total{model_name=\"fake\"} 60"));
    engine.shutdown();
}

#[tokio::test]
async fn dropping_the_stream_aborts_and_frees_blocks_within_a_step() {
    let mut exec = fake();
    exec.step_delay = Duration::from_millis(2);
    let engine = start(exec);
    let mut s = engine.submit(req("endless", None)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(s.recv().await.unwrap().token_ids.len(), 1);
    }
    let before = engine.metrics();
    assert!(before.scheduler.kv_cache_usage_perc > 0.0);
    drop(s);
    wait_for(&engine, "blocks freed", |m| {
        m.scheduler.kv_cache_usage_perc == 0.0 && m.scheduler.num_requests_running == 0
    })
    .await;
    // Freed by the next step boundary: at most the step in flight at the drop ran on (one
    // more allowed for the snapshot read before the drop being a step old).
    let steps = engine.metrics().engine_loop.num_steps_total - before.engine_loop.num_steps_total;
    assert!(steps <= 2, "{steps} steps ran after the stream was dropped");
    assert_eq!(
        engine.metrics().engine_loop.request_success.get("abort"),
        Some(&1)
    );
    // Still serving.
    let mut s = engine.submit(req("after", Some(3))).await.unwrap();
    let mut n = 0;
    while let Some(d) = s.recv().await {
        n += d.token_ids.len();
    }
    assert_eq!(n, 3);
}

#[tokio::test]
async fn an_executor_error_fails_that_step_only() {
    let mut exec = fake();
    exec.fail_steps.insert(3);
    exec.panic_steps.insert(6);
    exec.step_delay = Duration::from_millis(1);
    let engine = start(exec);
    let mut a = engine.submit(req("a", Some(50))).await.unwrap();
    let last = finish_reason(&mut a).await;
    assert!(
        matches!(last, Some(FinishReason::Error(ref m)) if m.contains("fake failure")),
        "{last:?}"
    );
    // The panic at step 6 fails the next request, and the loop survives it too.
    let mut b = engine.submit(req("b", Some(50))).await.unwrap();
    let last = finish_reason(&mut b).await;
    assert!(
        matches!(last, Some(FinishReason::Error(ref m)) if m.contains("panicked")),
        "{last:?}"
    );
    let mut c = engine.submit(req("c", Some(5))).await.unwrap();
    let last = finish_reason(&mut c).await;
    assert_eq!(last, Some(FinishReason::Length));
    assert_eq!(engine.metrics().engine_loop.num_step_errors_total, 2);
}

/// A fake executor whose device is lost at step `at`: every later call fails the same way, as
/// a GPU context does after an illegal address.
struct LosesItsDevice {
    inner: FakeExecutor,
    at: u64,
    calls_after: Arc<std::sync::atomic::AtomicU64>,
}

impl scheduler::ModelExecutor for LosesItsDevice {
    fn execute(
        &mut self,
        plan: &scheduler::StepPlan,
    ) -> Result<Vec<scheduler::SampledToken>, scheduler::ExecutorError> {
        if plan.step_id >= self.at {
            if plan.step_id > self.at {
                self.calls_after
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            return Err(engine::EngineError::DeviceLost(
                "CUDA driver: DriverError(CUDA_ERROR_ILLEGAL_ADDRESS)".into(),
            )
            .into());
        }
        self.inner.execute(plan)
    }
}

/// A lost device ends every request, running and waiting alike, with its error at once (not
/// one failed step at a time), runs no step after it, refuses new requests as out of service
/// (a gateway retries those on another worker) and says why in the metrics.
#[tokio::test]
async fn a_lost_device_ends_every_request_and_refuses_new_ones() {
    let calls_after = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut inner = fake();
    inner.step_delay = Duration::from_millis(2);
    let engine = EngineLoop::spawn(
        SchedulerConfig {
            max_num_seqs: 2,
            ..config()
        },
        LosesItsDevice {
            inner,
            at: 4,
            calls_after: calls_after.clone(),
        },
        Arc::new(FakeDetokenizer {
            special_token_ids: vec![0],
        }),
    )
    .unwrap();
    // Two run (max_num_seqs 2), one waits.
    let mut streams = Vec::new();
    for id in ["a", "b", "c"] {
        streams.push(engine.submit(req(id, Some(100))).await.unwrap());
    }
    for s in &mut streams {
        let last = finish_reason(s).await;
        assert!(
            matches!(last, Some(FinishReason::Error(ref m)) if m.contains("until the process restarts")),
            "{last:?}"
        );
    }
    let err = engine
        .submit(req("d", Some(5)))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, SchedulerError::EngineFailed(ref m) if m.contains("ILLEGAL_ADDRESS")),
        "{err}"
    );
    assert!(matches!(
        protocol::BackendError::from(err),
        protocol::BackendError::ShuttingDown
    ));
    let m = engine.metrics().engine_loop;
    assert!(
        m.failed
            .as_deref()
            .is_some_and(|f| f.contains("ILLEGAL_ADDRESS")),
        "{m:?}"
    );
    assert_eq!(m.num_step_errors_total, 1);
    assert_eq!(calls_after.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn graceful_shutdown_finishes_submitted_requests() {
    let mut exec = fake();
    exec.step_delay = Duration::from_millis(1);
    let engine = start(exec);
    let streams: Vec<_> = (0..4)
        .map(|i| {
            engine
                .submit_blocking(req(&format!("r{i}"), Some(10)))
                .unwrap()
        })
        .collect();
    engine.shutdown();
    for mut s in streams {
        let mut tokens = 0;
        let mut last = None;
        while let Some(d) = s.blocking_recv() {
            tokens += d.token_ids.len();
            last = d.finish_reason;
        }
        assert_eq!((tokens, last), (10, Some(FinishReason::Length)));
    }
}

#[test]
fn dropping_the_loop_aborts_what_is_left() {
    let mut exec = fake();
    exec.step_delay = Duration::from_millis(1);
    let engine = start(exec);
    let mut s = engine.submit_blocking(req("endless", None)).unwrap();
    assert!(s.blocking_recv().is_some());
    drop(engine);
    let mut last = None;
    while let Some(d) = s.blocking_recv() {
        last = d.finish_reason;
    }
    assert_eq!(last, Some(FinishReason::Abort));
}

#[tokio::test]
async fn admission_errors_come_back_from_submit() {
    let mut c = config();
    c.admission.max_waiting_requests_per_tenant = 1;
    let mut exec = fake();
    exec.step_delay = Duration::from_millis(20);
    let engine = EngineLoop::spawn(c, exec, Arc::new(FakeDetokenizer::default())).unwrap();
    // Fill the batch so that further requests wait.
    let mut held = Vec::new();
    let mut refused = None;
    for i in 0..20 {
        match engine.submit(req(&format!("r{i}"), None)).await {
            Ok(s) => held.push(s),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(
            refused,
            Some(SchedulerError::QueueFull {
                scope: QueueScope::Tenant,
                ..
            })
        ),
        "{refused:?}"
    );
    let long = NewRequest::new("long", "t", vec![1; 100_000], SamplingParams::default());
    assert!(matches!(
        engine.submit(long).await,
        Err(SchedulerError::PromptTooLong { .. })
    ));
}

#[test]
fn batching_raises_throughput_under_closed_loop_load() {
    // The gateway shares one loop between request handlers.
    fn assert_shareable<T: Send + Sync>() {}
    assert_shareable::<EngineLoop>();

    let mut exec = fake();
    // A step costs the same whatever its batch, as a memory-bound forward pass roughly does.
    exec.step_delay = Duration::from_millis(2);
    let engine = start(exec);
    let make = |c: usize, i: usize| {
        let params = SamplingParams {
            max_tokens: Some(16),
            ignore_eos: true,
            ..Default::default()
        };
        let prompt = (0..32)
            .map(|t| (t + c * 37 + i * 101) as u32 % 900 + 1)
            .collect();
        NewRequest::new(format!("c{c}-{i}"), "t", prompt, params)
    };
    let one = scheduler::load::run_closed_loop(&engine, 1, 2, make);
    let eight = scheduler::load::run_closed_loop(&engine, 8, 2, make);
    assert_eq!((one.output_tokens, eight.output_tokens), (32, 256));
    assert_eq!(eight.failed_requests, 0);
    assert!(eight.ttft_p50 > 0.0 && eight.itl_p99 >= eight.itl_p50);
    assert!(
        eight.output_tokens_per_second > 3.0 * one.output_tokens_per_second,
        "8 clients: {} tok/s, 1 client: {} tok/s",
        eight.to_json(),
        one.to_json()
    );
}
