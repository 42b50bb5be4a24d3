//! The per-request guard: counts what a request generates and finalizes its usage row exactly
//! once, also when the request's future or stream is dropped mid-way.
//!
//! A [`Meter`] is created by `Metering::admit`. Each scheduler stream goes through
//! [`Meter::attach`], which installs an observer on it; the observers and the `Meter` share
//! one state. The row is
//! finalized by whichever comes first:
//! - every attached stream delivered its usage delta: `completed` (the scheduler's counts);
//! - a stream reported a failed generation, or ended without usage: `failed`;
//! - [`Meter::complete`] (embeddings, which do not stream);
//! - the last handle is dropped before any of those: `cancelled` with the tokens received so
//!   far when streams were attached (the client went away), `rejected` when nothing was
//!   submitted (the scheduler refused the request), `failed` after a failure was noted.
//!
//! The drop path cannot await, so it spawns the write onto the current Tokio runtime (or, with
//! none, a thread of its own). The in-process `final` flag keeps a request from finalizing
//! twice here; the conditional UPDATE in the store keeps it exactly once across processes.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use scheduler::{Delta, DeltaObserver, DeltaStream, FinishReason};

use super::money::{Money, Prices};
use super::{Charge, Metering};
use crate::store::now_ms;
use crate::store::usage::{FinalUsage, UsageStatus};

#[derive(Debug, Default)]
struct Progress {
    prompt_tokens: u64,
    cached_tokens: u64,
    completion_tokens: u64,
    ttft_ms: Option<i64>,
    streams: usize,
    ended_streams: usize,
    /// Work began (a stream was attached, or `running` was called).
    running: bool,
    failed: bool,
    finalized: bool,
    /// The spawned final write, awaited by whoever reads the end of a stream.
    write: Option<tokio::task::JoinHandle<()>>,
}

/// State shared by a request's meter and its metered streams.
pub(crate) struct Shared {
    metering: Arc<Metering>,
    request_id: String,
    prices: Prices,
    reserved: Money,
    started: Instant,
    progress: Mutex<Progress>,
}

impl Shared {
    pub(crate) fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Tokens generated so far and the time to the first one.
    pub(crate) fn progress(&self) -> (u64, Option<i64>) {
        let p = self.lock();
        (p.completion_tokens, p.ttft_ms)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn final_usage(&self, p: &Progress, status: UsageStatus) -> FinalUsage {
        let cost = if status == UsageStatus::Rejected {
            Money::ZERO
        } else {
            self.prices
                .cost(p.prompt_tokens, p.cached_tokens, p.completion_tokens)
        };
        FinalUsage {
            status,
            prompt_tokens: p.prompt_tokens,
            cached_tokens: p.cached_tokens,
            completion_tokens: p.completion_tokens,
            ttft_ms: p.ttft_ms,
            latency_ms: Some(self.started.elapsed().as_millis() as i64),
            cost,
            finished_ms: now_ms(),
        }
    }

    /// Finalizes once: spawns the write and keeps its handle.
    fn finalize(&self, p: &mut Progress, status: UsageStatus) {
        if p.finalized {
            return;
        }
        p.finalized = true;
        let f = self.final_usage(p, status);
        p.write = spawn_write(self.metering.clone(), self.request_id.clone(), f);
        self.metering.unregister(&self.request_id);
    }

    /// Waits for the final write when there is one pending.
    async fn settled(&self) {
        let write = self.lock().write.take();
        if let Some(write) = write {
            let _ = write.await;
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut p = std::mem::take(self.progress.get_mut().unwrap_or_else(|e| e.into_inner()));
        if p.finalized {
            return;
        }
        let status = if p.failed {
            UsageStatus::Failed
        } else if !p.running {
            UsageStatus::Rejected
        } else {
            UsageStatus::Cancelled
        };
        p.finalized = true;
        let f = self.final_usage(&p, status);
        // Dropped with the response: nobody waits for this write.
        drop(spawn_write(
            self.metering.clone(),
            self.request_id.clone(),
            f,
        ));
        self.metering.unregister(&self.request_id);
    }
}

/// Runs the final write on the current runtime, or on a thread of its own when there is none
/// (a drop outside any runtime); the orphan sweep covers a write that never runs.
fn spawn_write(
    metering: Arc<Metering>,
    request_id: String,
    f: FinalUsage,
) -> Option<tokio::task::JoinHandle<()>> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Some(handle.spawn(async move { metering.write_final(&request_id, f).await })),
        Err(_) => {
            let spawned = std::thread::Builder::new()
                .name("usage-final-write".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(metering.write_final(&request_id, f)),
                        Err(e) => tracing::error!(error = %e, "no runtime for a usage write"),
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot spawn a usage write");
            }
            None
        }
    }
}

/// A request's meter, from admission to the end.
pub struct Meter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("request_id", &self.shared.request_id)
            .finish()
    }
}

impl Meter {
    pub(crate) fn start(
        metering: Arc<Metering>,
        charge: Charge,
        prices: Prices,
        reserved: Money,
        started_ms: i64,
    ) -> Meter {
        // `started` counts from admission, like the row's `started_ms`.
        let behind = (now_ms() - started_ms).max(0) as u64;
        let started = Instant::now()
            .checked_sub(std::time::Duration::from_millis(behind))
            .unwrap_or_else(Instant::now);
        let shared = Arc::new(Shared {
            metering: metering.clone(),
            request_id: charge.request_id,
            prices,
            reserved,
            started,
            progress: Mutex::new(Progress {
                prompt_tokens: charge.prompt_tokens,
                ..Progress::default()
            }),
        });
        metering.register(&shared.request_id, &shared);
        Meter { shared }
    }

    pub fn request_id(&self) -> &str {
        &self.shared.request_id
    }

    /// What admission holds on the prepaid account for this request.
    pub fn reserved(&self) -> Money {
        self.shared.reserved
    }

    /// Meters one of the request's streams, whose prompt was counted as `prompt_tokens` at
    /// admission: the same stream, reporting to this meter. Attach every stream of the request
    /// before reading any.
    pub fn attach(&self, stream: DeltaStream, prompt_tokens: usize) -> DeltaStream {
        {
            let mut p = self.shared.lock();
            p.streams += 1;
            p.running = true;
        }
        stream.observed(Box::new(StreamMeter {
            shared: self.shared.clone(),
            prompt_counted: prompt_tokens as u64,
            received: 0,
            ended: false,
        }))
    }

    /// Waits until the request's usage row is written, when its end is known (every stream
    /// read to the end). Non-streaming routes await this before answering, so that a client
    /// that has its response finds its usage recorded.
    pub async fn settled(&self) {
        self.shared.settled().await;
    }

    /// Marks that work began without a stream (embeddings): a drop then records `cancelled`
    /// rather than `rejected`.
    pub fn running(&self) {
        self.shared.lock().running = true;
    }

    /// Marks the request failed: a drop then records `failed` rather than `cancelled`.
    pub fn fail(&self) {
        self.shared.lock().failed = true;
    }

    /// Finalizes a request that does not stream (embeddings) as `completed` and waits for the
    /// write.
    pub async fn complete(self, prompt_tokens: u64, completion_tokens: u64) {
        {
            let mut p = self.shared.lock();
            p.prompt_tokens = prompt_tokens;
            p.completion_tokens = completion_tokens;
            self.shared.finalize(&mut p, UsageStatus::Completed);
        }
        self.shared.settled().await;
    }
}

/// What a metered stream reports to its request's meter (the stream's observer).
struct StreamMeter {
    shared: Arc<Shared>,
    /// This stream's prompt tokens as counted at admission (an estimate where the backend
    /// owns its tokenizer; its usage then replaces it).
    prompt_counted: u64,
    /// Tokens this stream delivered (before its usage delta replaces the count).
    received: u64,
    ended: bool,
}

impl DeltaObserver for StreamMeter {
    fn on_delta(&mut self, d: &Delta) {
        let mut p = self.shared.lock();
        if d.tokens() > 0 {
            if p.ttft_ms.is_none() {
                p.ttft_ms = Some(self.shared.started.elapsed().as_millis() as i64);
            }
            self.received += d.tokens() as u64;
            p.completion_tokens += d.tokens() as u64;
            if let Some(journal) = self.shared.metering.journal() {
                journal.progress(&self.shared.request_id, p.completion_tokens);
            }
        }
        if matches!(
            d.finish_reason,
            Some(FinishReason::Error(_)) | Some(FinishReason::Abort)
        ) {
            p.failed = true;
        }
        if let Some(u) = d.usage {
            // The backend's counts are authoritative: they replace what was counted so far
            // (for the prompt, the count made at admission).
            p.completion_tokens = p.completion_tokens - self.received + u.completion_tokens as u64;
            self.received = u.completion_tokens as u64;
            p.prompt_tokens =
                p.prompt_tokens.saturating_sub(self.prompt_counted) + u.prompt_tokens as u64;
            self.prompt_counted = u.prompt_tokens as u64;
            p.cached_tokens += u.cached_tokens as u64;
            drop(p);
            self.end(false);
        }
    }

    fn on_end(&mut self) {
        self.end(true);
    }
}

impl StreamMeter {
    /// This stream is over; the last one to end finalizes the request.
    fn end(&mut self, without_usage: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        let mut p = self.shared.lock();
        if without_usage {
            p.failed = true;
        }
        p.ended_streams += 1;
        if p.ended_streams == p.streams {
            let status = if p.failed {
                UsageStatus::Failed
            } else {
                UsageStatus::Completed
            };
            self.shared.finalize(&mut p, status);
        }
    }
}
