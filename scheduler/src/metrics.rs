//! Metric values, named like vLLM's under `starfire:`, and their Prometheus text form.
//!
//! The scheduler produces counters and gauges (`SchedulerStats`); the engine loop adds the
//! latency histograms it can time (`LoopMetrics`). The gateway serves `render_prometheus` of a
//! snapshot; no metrics library is needed for that.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Per-tenant values (the tenant label is cheap: tenants are few compared to requests).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantStats {
    pub num_running_seqs: usize,
    pub num_waiting_requests: usize,
    pub prompt_tokens_total: u64,
    pub generation_tokens_total: u64,
    /// The fairness counter (weighted service received).
    pub virtual_token_counter: f64,
}

/// The scheduler's counters and gauges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchedulerStats {
    pub num_requests_running: usize,
    pub num_requests_waiting: usize,
    /// Preempted sequences waiting to be recomputed.
    pub num_seqs_preempted: usize,
    /// 0.0..=1.0, as vLLM.
    pub kv_cache_usage_perc: f64,
    pub prefix_cache_queries: u64,
    pub prefix_cache_hits: u64,
    pub num_preemptions_total: u64,
    /// Prompt tokens computed (cache hits and recomputation excluded).
    pub prompt_tokens_total: u64,
    pub generation_tokens_total: u64,
    pub tenants: BTreeMap<String, TenantStats>,
}

/// A Prometheus histogram (cumulative buckets are produced when rendering).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bounds: Vec<f64>,
    /// `counts[i]` observations in `(bounds[i-1], bounds[i]]`; the last entry is `+Inf`.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

// vLLM's bucket boundaries, so dashboards built for vLLM read ours unchanged.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// What the engine loop times.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopMetrics {
    pub time_to_first_token_seconds: Histogram,
    pub inter_token_latency_seconds: Histogram,
    pub e2e_request_latency_seconds: Histogram,
    pub request_queue_time_seconds: Histogram,
    /// Finished requests by finish reason (vLLM's `request_success`).
    pub request_success: BTreeMap<String, u64>,
    pub num_steps_total: u64,
    pub num_step_errors_total: u64,
    /// Why the engine stopped for good (its device failed, or it never started); `None`
    /// while it serves.
    pub failed: Option<String>,
}

impl Default for LoopMetrics {
    fn default() -> Self {
        Self {
            time_to_first_token_seconds: Histogram::new(TTFT_BUCKETS),
            inter_token_latency_seconds: Histogram::new(ITL_BUCKETS),
            e2e_request_latency_seconds: Histogram::new(REQUEST_LATENCY_BUCKETS),
            request_queue_time_seconds: Histogram::new(REQUEST_LATENCY_BUCKETS),
            request_success: BTreeMap::new(),
            num_steps_total: 0,
            num_step_errors_total: 0,
            failed: None,
        }
    }
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub scheduler: SchedulerStats,
    pub engine_loop: LoopMetrics,
}

/// Renders a snapshot in the Prometheus text exposition format, every series labelled with
/// `model_name` (as vLLM does).
pub fn render_prometheus(m: &MetricsSnapshot, model_name: &str) -> String {
    let mut out = String::new();
    let base = format!("model_name=\"{}\"", escape(model_name));
    let (s, l) = (&m.scheduler, &m.engine_loop);
    let gauges: [(&str, &str, f64); 3] = [
        (
            "num_requests_running",
            "Requests with a sequence in the running batch.",
            s.num_requests_running as f64,
        ),
        (
            "num_requests_waiting",
            "Requests waiting for admission.",
            s.num_requests_waiting as f64,
        ),
        (
            "kv_cache_usage_perc",
            "Fraction of KV cache blocks in use (1 = full).",
            s.kv_cache_usage_perc,
        ),
    ];
    for (name, help, v) in gauges {
        header(&mut out, name, help, "gauge");
        let _ = writeln!(out, "starfire:{name}{{{base}}} {v}");
    }
    let counters: [(&str, &str, u64); 7] = [
        (
            "prefix_cache_queries",
            "Tokens looked up in the prefix cache.",
            s.prefix_cache_queries,
        ),
        (
            "prefix_cache_hits",
            "Tokens found in the prefix cache.",
            s.prefix_cache_hits,
        ),
        (
            "num_preemptions",
            "Sequences preempted (recomputed later).",
            s.num_preemptions_total,
        ),
        (
            "prompt_tokens",
            "Prompt tokens computed.",
            s.prompt_tokens_total,
        ),
        (
            "generation_tokens",
            "Tokens generated.",
            s.generation_tokens_total,
        ),
        ("num_steps", "Engine steps run.", l.num_steps_total),
        (
            "num_step_errors",
            "Engine steps that failed.",
            l.num_step_errors_total,
        ),
    ];
    for (name, help, v) in counters {
        header(&mut out, &format!("{name}_total"), help, "counter");
        let _ = writeln!(out, "starfire:{name}_total{{{base}}} {v}");
    }
    render_tenants(&mut out, &base, s);
    render_outcomes(&mut out, &base, l);
    out
}

/// The fairness view: one series per tenant with work in the scheduler.
fn render_tenants(out: &mut String, base: &str, s: &SchedulerStats) {
    type PerTenant = fn(&TenantStats) -> f64;
    let per_tenant: [(&str, &str, &str, PerTenant); 5] = [
        (
            "tenant_num_seqs_running",
            "Running sequences per tenant.",
            "gauge",
            |t| t.num_running_seqs as f64,
        ),
        (
            "tenant_num_requests_waiting",
            "Waiting requests per tenant.",
            "gauge",
            |t| t.num_waiting_requests as f64,
        ),
        (
            "tenant_prompt_tokens_total",
            "Prompt tokens computed per tenant.",
            "counter",
            |t| t.prompt_tokens_total as f64,
        ),
        (
            "tenant_generation_tokens_total",
            "Tokens generated per tenant.",
            "counter",
            |t| t.generation_tokens_total as f64,
        ),
        (
            "tenant_virtual_token_counter",
            "Fairness counter (weighted service) per tenant.",
            "gauge",
            |t| t.virtual_token_counter,
        ),
    ];
    for (name, help, kind, value) in per_tenant {
        header(out, name, help, kind);
        for (t, ts) in &s.tenants {
            let tenant = escape(t);
            let _ = writeln!(
                out,
                "starfire:{name}{{{base},tenant=\"{tenant}\"}} {}",
                value(ts)
            );
        }
    }
}

/// How requests ended and how long their phases took.
fn render_outcomes(out: &mut String, base: &str, l: &LoopMetrics) {
    header(
        out,
        "request_success_total",
        "Finished requests by finish reason.",
        "counter",
    );
    for (reason, n) in &l.request_success {
        let _ = writeln!(
            out,
            "starfire:request_success_total{{{base},finished_reason=\"{}\"}} {n}",
            escape(reason)
        );
    }
    let histograms: [(&str, &str, &Histogram); 4] = [
        (
            "time_to_first_token_seconds",
            "Time to first token.",
            &l.time_to_first_token_seconds,
        ),
        (
            "inter_token_latency_seconds",
            "Time between two output tokens.",
            &l.inter_token_latency_seconds,
        ),
        (
            "e2e_request_latency_seconds",
            "Request latency, arrival to finish.",
            &l.e2e_request_latency_seconds,
        ),
        (
            "request_queue_time_seconds",
            "Time from arrival to first scheduling.",
            &l.request_queue_time_seconds,
        ),
    ];
    for (name, help, h) in histograms {
        histogram(out, base, name, help, h);
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP starfire:{name} {help}");
    let _ = writeln!(out, "# TYPE starfire:{name} {kind}");
}

fn histogram(out: &mut String, base: &str, name: &str, help: &str, h: &Histogram) {
    header(out, name, help, "histogram");
    let mut cum = 0;
    for (i, b) in h.bounds.iter().enumerate() {
        cum += h.counts[i];
        let _ = writeln!(out, "starfire:{name}_bucket{{{base},le=\"{b}\"}} {cum}");
    }
    let _ = writeln!(
        out,
        "starfire:{name}_bucket{{{base},le=\"+Inf\"}} {}",
        h.count
    );
    let _ = writeln!(out, "starfire:{name}_sum{{{base}}} {}", h.sum);
    let _ = writeln!(out, "starfire:{name}_count{{{base}}} {}", h.count);
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vllm_names_and_cumulative_buckets() {
        let mut m = MetricsSnapshot::default();
        m.scheduler.num_requests_running = 3;
        m.scheduler.prefix_cache_hits = 42;
        m.scheduler.tenants.insert(
            "acme\"co".into(),
            TenantStats {
                generation_tokens_total: 7,
                ..Default::default()
            },
        );
        m.engine_loop.time_to_first_token_seconds.observe(0.003);
        m.engine_loop.time_to_first_token_seconds.observe(0.05);
        m.engine_loop.request_success.insert("stop".into(), 2);
        let text = render_prometheus(&m, "smollm2");
        assert!(text.contains("starfire:num_requests_running{model_name=\"smollm2\"} 3"));
        assert!(text.contains("starfire:prefix_cache_hits_total{model_name=\"smollm2\"} 42"));
        assert!(text.contains("tenant=\"acme\\\"co\"} 7"));
        assert!(text.contains(
            "starfire:time_to_first_token_seconds_bucket{model_name=\"smollm2\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "starfire:time_to_first_token_seconds_bucket{model_name=\"smollm2\",le=\"0.06\"} 2"
        ));
        assert!(
            text.contains("starfire:time_to_first_token_seconds_count{model_name=\"smollm2\"} 2")
        );
        assert!(text.contains(
            "starfire:request_success_total{model_name=\"smollm2\",finished_reason=\"stop\"} 2"
        ));
        assert!(text.contains("# TYPE starfire:inter_token_latency_seconds histogram"));
    }
}
