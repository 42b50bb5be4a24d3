//! The engine loop: one thread owns the scheduler and the executor, so neither needs a lock,
//! and runs `schedule -> execute -> update` while there is work. Requests and aborts arrive
//! over a channel between steps; deltas leave through one tokio channel per request.
//!
//! A dropped `DeltaStream` aborts its request: the stream's `Drop` sends an abort, and the
//! loop also notices closed channels before each step, so the blocks are free by the next
//! step at the latest. An executor error (or panic) fails only that step's requests.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc as tmpsc, oneshot};

use crate::config::SchedulerConfig;
use crate::detokenizer::Detokenizer;
use crate::error::SchedulerError;
use crate::executor::{ExecutorError, ModelExecutor};
use crate::metrics::{LoopMetrics, MetricsSnapshot};
use crate::request::{Delta, NewRequest};
use crate::scheduler::Scheduler;
pub use protocol::{DeltaObserver, DeltaStream};

enum Command {
    Submit {
        req: Box<NewRequest>,
        tx: tmpsc::UnboundedSender<Delta>,
        reply: oneshot::Sender<Result<u64, SchedulerError>>,
    },
    /// (request id, generation): the generation keeps a late abort from hitting a new request
    /// that reuses the id.
    Abort(String, u64),
    Shutdown {
        drain: bool,
    },
}

/// Handle to the loop thread. Cloneable through `Arc`; dropping it aborts what is left and
/// joins the thread, `shutdown` finishes what was submitted first.
pub struct EngineLoop {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
    metrics: Arc<Mutex<MetricsSnapshot>>,
}

impl EngineLoop {
    /// Starts the loop with an executor built here.
    pub fn spawn<E: ModelExecutor + 'static>(
        config: SchedulerConfig,
        executor: E,
        detokenizer: Arc<dyn Detokenizer>,
    ) -> Result<Self, SchedulerError> {
        Self::spawn_with(config, detokenizer, move || Ok(executor))
    }

    /// Starts the loop with an executor built on the loop thread (for backends whose device
    /// context belongs to the thread that made it). A build error fails every request.
    pub fn spawn_with<E, F>(
        config: SchedulerConfig,
        detokenizer: Arc<dyn Detokenizer>,
        make_executor: F,
    ) -> Result<Self, SchedulerError>
    where
        E: ModelExecutor + 'static,
        F: FnOnce() -> Result<E, ExecutorError> + Send + 'static,
    {
        let scheduler = Scheduler::new(config, detokenizer)?;
        let (commands, rx) = mpsc::channel();
        let metrics = Arc::new(Mutex::new(MetricsSnapshot::default()));
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("starfire-engine".into())
            .spawn(move || {
                let executor = make_executor();
                LoopState::new(scheduler, rx, m).run(executor);
            })
            .map_err(|e| {
                SchedulerError::InvalidConfig(format!("cannot start the engine thread: {e}"))
            })?;
        Ok(Self {
            commands,
            thread: Some(thread),
            metrics,
        })
    }

    /// Queues a request; its deltas arrive on the returned stream. Admission errors
    /// (`QueueFull`, `PromptTooLong`, ...) come back here, before any stream exists.
    pub async fn submit(&self, req: NewRequest) -> Result<DeltaStream, SchedulerError> {
        let (reply, rx, pending) = self.send_submit(req)?;
        let generation = reply.await.map_err(|_| SchedulerError::ShuttingDown)??;
        Ok(pending.into_stream(rx, generation))
    }

    /// `submit` for threads outside a runtime.
    pub fn submit_blocking(&self, req: NewRequest) -> Result<DeltaStream, SchedulerError> {
        let (reply, rx, pending) = self.send_submit(req)?;
        let generation = reply
            .blocking_recv()
            .map_err(|_| SchedulerError::ShuttingDown)??;
        Ok(pending.into_stream(rx, generation))
    }

    #[allow(clippy::type_complexity)]
    fn send_submit(
        &self,
        req: NewRequest,
    ) -> Result<
        (
            oneshot::Receiver<Result<u64, SchedulerError>>,
            tmpsc::UnboundedReceiver<Delta>,
            PendingStream,
        ),
        SchedulerError,
    > {
        let (tx, rx) = tmpsc::unbounded_channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let pending = PendingStream {
            request_id: req.request_id.clone(),
            commands: self.commands.clone(),
        };
        self.commands
            .send(Command::Submit {
                req: Box::new(req),
                tx,
                reply: reply_tx,
            })
            .map_err(|_| SchedulerError::ShuttingDown)?;
        Ok((reply_rx, rx, pending))
    }

    /// The latest metrics (updated after every step).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Stops taking requests, finishes the ones already submitted, then stops the thread.
    pub fn shutdown(mut self) {
        let _ = self.commands.send(Command::Shutdown { drain: true });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EngineLoop {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.commands.send(Command::Shutdown { drain: false });
            let _ = t.join();
        }
    }
}

struct PendingStream {
    request_id: String,
    commands: mpsc::Sender<Command>,
}

impl PendingStream {
    fn into_stream(self, rx: tmpsc::UnboundedReceiver<Delta>, generation: u64) -> DeltaStream {
        let (commands, id) = (self.commands, self.request_id.clone());
        // The loop may be gone already; then there is nothing left to abort.
        let abort = Box::new(move || {
            let _ = commands.send(Command::Abort(id, generation));
        });
        DeltaStream::new(self.request_id, rx, abort)
    }
}

struct Live {
    generation: u64,
    tx: tmpsc::UnboundedSender<Delta>,
    arrival: Instant,
    last_token: Option<Instant>,
}

struct LoopState {
    scheduler: Scheduler,
    rx: mpsc::Receiver<Command>,
    live: HashMap<String, Live>,
    next_generation: u64,
    draining: bool,
    stop_now: bool,
    metrics: Arc<Mutex<MetricsSnapshot>>,
    loop_metrics: LoopMetrics,
}

impl LoopState {
    fn new(
        scheduler: Scheduler,
        rx: mpsc::Receiver<Command>,
        metrics: Arc<Mutex<MetricsSnapshot>>,
    ) -> Self {
        Self {
            scheduler,
            rx,
            live: HashMap::new(),
            next_generation: 0,
            draining: false,
            stop_now: false,
            metrics,
            loop_metrics: LoopMetrics::default(),
        }
    }

    fn run<E: ModelExecutor>(mut self, executor: Result<E, ExecutorError>) {
        let mut executor = match executor {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!(error = %e, "the model executor failed to start");
                self.fail_all_until_shutdown(&e.to_string(), Vec::new());
                return;
            }
        };
        while self.take_commands() {
            let plan = self.scheduler.schedule();
            if plan.is_empty() {
                // Unfinished requests but nothing runnable cannot last (admission guarantees a
                // lone request fits); release the empty step and wait for commands.
                self.scheduler.update(Vec::new());
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            self.note_admitted();
            let exec = executor.as_mut().expect("executor present while running");
            let mut lost = None;
            let deltas = match catch_unwind(AssertUnwindSafe(|| exec.execute(&plan))) {
                Ok(Ok(tokens)) => self.scheduler.update(tokens),
                Ok(Err(e)) if e.device_lost() => {
                    // Every later step would fail the same way: end them all now.
                    tracing::error!(error = %e, step = plan.step_id, "the device failed; the engine stops");
                    self.loop_metrics.num_step_errors_total += 1;
                    lost = Some(e.to_string());
                    self.scheduler.fail_all(&e.to_string())
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, step = plan.step_id, "engine step failed");
                    self.loop_metrics.num_step_errors_total += 1;
                    self.scheduler.fail_step(&e.to_string())
                }
                Err(panic) => {
                    let msg = panic_message(&panic);
                    tracing::error!(error = %msg, step = plan.step_id, "engine step panicked");
                    self.loop_metrics.num_step_errors_total += 1;
                    self.scheduler
                        .fail_step(&ExecutorError::Panicked(msg).to_string())
                }
            };
            self.loop_metrics.num_steps_total += 1;
            if let Some(error) = lost {
                self.fail_all_until_shutdown(&error, deltas);
                return;
            }
            // Metrics first: whoever reads a delta then sees a snapshot at least as new.
            self.publish_metrics();
            self.route(deltas);
        }
        // Leaving: whatever is left ends with an abort delta (a graceful drain left nothing).
        let ids: Vec<String> = self.live.keys().cloned().collect();
        for id in ids {
            let deltas = self.scheduler.abort(&id);
            self.route(deltas);
        }
        self.publish_metrics();
    }

    /// Applies queued commands, blocking while there is nothing to compute. False when the
    /// loop should end.
    fn take_commands(&mut self) -> bool {
        loop {
            while let Ok(c) = self.rx.try_recv() {
                self.apply(c);
            }
            if self.stop_now {
                return false;
            }
            self.abort_closed_streams();
            if self.scheduler.has_unfinished_requests() {
                return true;
            }
            if self.draining {
                return false;
            }
            self.publish_metrics();
            match self.rx.recv() {
                Ok(c) => self.apply(c),
                Err(_) => return false, // every handle is gone
            }
        }
    }

    fn apply(&mut self, c: Command) {
        match c {
            Command::Submit { req, tx, reply } => {
                if self.draining || self.stop_now {
                    let _ = reply.send(Err(SchedulerError::ShuttingDown));
                    return;
                }
                let id = req.request_id.clone();
                match self.scheduler.add_request(*req) {
                    Ok(()) => {
                        let generation = self.next_generation;
                        self.next_generation += 1;
                        if reply.send(Ok(generation)).is_err() {
                            // The submitter gave up before it got its stream.
                            self.scheduler.abort(&id);
                            return;
                        }
                        tracing::debug!(request_id = %id, "request queued");
                        self.live.insert(
                            id,
                            Live {
                                generation,
                                tx,
                                arrival: Instant::now(),
                                last_token: None,
                            },
                        );
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Abort(id, generation) => {
                if self
                    .live
                    .get(&id)
                    .is_some_and(|l| l.generation == generation)
                {
                    self.abort_unwanted(&id, "abort command");
                }
            }
            Command::Shutdown { drain } => {
                self.draining = true;
                if !drain {
                    self.stop_now = true;
                }
            }
        }
    }

    /// Ends a request nobody reads any more; its final deltas go nowhere.
    fn abort_unwanted(&mut self, id: &str, why: &str) {
        self.live.remove(id);
        self.scheduler.abort(id);
        tracing::debug!(request_id = %id, why, "request aborted");
        *self
            .loop_metrics
            .request_success
            .entry("abort".into())
            .or_default() += 1;
    }

    fn abort_closed_streams(&mut self) {
        let closed: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| l.tx.is_closed())
            .map(|(id, _)| id.clone())
            .collect();
        for id in closed {
            self.abort_unwanted(&id, "stream dropped");
        }
    }

    fn note_admitted(&mut self) {
        let now = Instant::now();
        for id in self.scheduler.take_newly_admitted() {
            if let Some(l) = self.live.get(&id) {
                let wait = now.duration_since(l.arrival).as_secs_f64();
                self.loop_metrics.request_queue_time_seconds.observe(wait);
            }
        }
    }

    fn route(&mut self, deltas: Vec<Delta>) {
        let now = Instant::now();
        for d in deltas {
            let Some(l) = self.live.get_mut(&d.request_id) else {
                continue;
            };
            if !d.token_ids.is_empty() {
                match l.last_token {
                    None => self
                        .loop_metrics
                        .time_to_first_token_seconds
                        .observe((now - l.arrival).as_secs_f64()),
                    Some(t) => self
                        .loop_metrics
                        .inter_token_latency_seconds
                        .observe((now - t).as_secs_f64()),
                }
                l.last_token = Some(now);
            }
            let last = d.usage.is_some();
            if last {
                self.loop_metrics
                    .e2e_request_latency_seconds
                    .observe((now - l.arrival).as_secs_f64());
                let reason = d.finish_reason.as_ref().map_or("stop", |r| r.as_str());
                if let Some(u) = &d.usage {
                    tracing::debug!(
                        request_id = %d.request_id,
                        finish_reason = reason,
                        prompt_tokens = u.prompt_tokens,
                        completion_tokens = u.completion_tokens,
                        cached_tokens = u.cached_tokens,
                        "request finished"
                    );
                }
                *self
                    .loop_metrics
                    .request_success
                    .entry(reason.to_string())
                    .or_default() += 1;
            }
            let id = d.request_id.clone();
            if l.tx.send(d).is_err() && !last {
                // The receiver is gone: stop computing for nobody.
                self.abort_unwanted(&id, "stream closed");
            } else if last {
                self.live.remove(&id);
            }
        }
    }

    fn publish_metrics(&mut self) {
        if let Ok(mut m) = self.metrics.lock() {
            m.scheduler = self.scheduler.stats();
            m.engine_loop = self.loop_metrics.clone();
        }
    }

    /// Without an executor every request fails at once, until shutdown; the metrics say why
    /// (`failed`). `ended`: the deltas that ended the requests the loop had.
    fn fail_all_until_shutdown(&mut self, error: &str, ended: Vec<Delta>) {
        self.loop_metrics.failed = Some(error.to_string());
        // Metrics first, as for every step.
        self.publish_metrics();
        self.route(ended);
        while let Ok(c) = self.rx.recv() {
            match c {
                Command::Submit { reply, .. } => {
                    let _ = reply.send(Err(SchedulerError::EngineFailed(error.to_string())));
                }
                Command::Shutdown { .. } => return,
                Command::Abort(..) => {}
            }
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
