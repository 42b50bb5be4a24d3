//! Closed-loop load through an `EngineLoop`: `concurrency` clients each submit a request,
//! read its stream to the end, and submit the next. Measures what a benchmark reports
//! (aggregate output tokens/s, time to first token, inter-token latency) from the client's
//! side of the streams. `bench/` drives the real engine with it; tests drive the fake.

use std::time::{Duration, Instant};

use crate::engine_loop::EngineLoop;
use crate::request::{FinishReason, NewRequest};

/// Results of one load run. Latencies in seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    pub concurrency: usize,
    pub requests: usize,
    pub failed_requests: usize,
    pub output_tokens: usize,
    pub wall_seconds: f64,
    pub output_tokens_per_second: f64,
    pub ttft_p50: f64,
    pub ttft_p99: f64,
    pub itl_p50: f64,
    pub itl_p99: f64,
}

impl LoadReport {
    /// One JSON object (no serde needed for flat numbers).
    pub fn to_json(&self) -> String {
        format!(
            concat!(
                "{{\"concurrency\":{},\"requests\":{},\"failed_requests\":{},\"output_tokens\":{},",
                "\"wall_seconds\":{:.4},\"output_tokens_per_second\":{:.2},",
                "\"ttft_p50_ms\":{:.3},\"ttft_p99_ms\":{:.3},\"itl_p50_ms\":{:.3},\"itl_p99_ms\":{:.3}}}"
            ),
            self.concurrency,
            self.requests,
            self.failed_requests,
            self.output_tokens,
            self.wall_seconds,
            self.output_tokens_per_second,
            self.ttft_p50 * 1e3,
            self.ttft_p99 * 1e3,
            self.itl_p50 * 1e3,
            self.itl_p99 * 1e3,
        )
    }
}

/// Runs `concurrency` client threads, each sending `requests_per_client` requests made by
/// `make_request(client, i)` (ids must be unique), one after the other.
pub fn run_closed_loop<F>(
    engine: &EngineLoop,
    concurrency: usize,
    requests_per_client: usize,
    make_request: F,
) -> LoadReport
where
    F: Fn(usize, usize) -> NewRequest + Sync,
{
    let start = Instant::now();
    let per_client: Vec<ClientStats> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..concurrency)
            .map(|c| {
                let make_request = &make_request;
                s.spawn(move || client(engine, c, requests_per_client, make_request))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let mut ttft = Vec::new();
    let mut itl = Vec::new();
    let mut report = LoadReport {
        concurrency,
        wall_seconds: wall,
        ..LoadReport::default()
    };
    for c in per_client {
        report.requests += c.requests;
        report.failed_requests += c.failed;
        report.output_tokens += c.tokens;
        ttft.extend(c.ttft);
        itl.extend(c.itl);
    }
    report.output_tokens_per_second = report.output_tokens as f64 / wall.max(1e-9);
    report.ttft_p50 = percentile(&mut ttft, 0.50);
    report.ttft_p99 = percentile(&mut ttft, 0.99);
    report.itl_p50 = percentile(&mut itl, 0.50);
    report.itl_p99 = percentile(&mut itl, 0.99);
    report
}

#[derive(Default)]
struct ClientStats {
    requests: usize,
    failed: usize,
    tokens: usize,
    ttft: Vec<f64>,
    itl: Vec<f64>,
}

fn client<F: Fn(usize, usize) -> NewRequest>(
    engine: &EngineLoop,
    c: usize,
    n: usize,
    make_request: &F,
) -> ClientStats {
    let mut st = ClientStats::default();
    for i in 0..n {
        let sent = Instant::now();
        st.requests += 1;
        let Ok(mut stream) = engine.submit_blocking(make_request(c, i)) else {
            st.failed += 1;
            continue;
        };
        let mut last: Option<Instant> = None;
        while let Some(d) = stream.blocking_recv() {
            if !d.token_ids.is_empty() {
                let now = Instant::now();
                match last {
                    None => st.ttft.push((now - sent).as_secs_f64()),
                    Some(t) => st.itl.push(gap(now, t)),
                }
                last = Some(now);
                st.tokens += d.token_ids.len();
            }
            if matches!(d.finish_reason, Some(FinishReason::Error(_))) {
                st.failed += 1;
            }
        }
    }
    st
}

fn gap(now: Instant, before: Instant) -> f64 {
    now.saturating_duration_since(before)
        .max(Duration::ZERO)
        .as_secs_f64()
}

/// Nearest-rank percentile; 0 for no samples.
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&mut v, 0.5), 3.0);
        assert_eq!(percentile(&mut v, 0.99), 5.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }
}
