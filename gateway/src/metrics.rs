//! The gateway's own Prometheus metrics: a small registry of labelled counters and histograms,
//! rendered in the text exposition format at `/metrics` next to the scheduler's `starfire:`
//! series.
//!
//! Any module adds a series by name, with its help text, labels and value:
//! `metrics.inc("starfire_budget_refusals_total", "help", &[("reason", "balance")], 1)` or
//! `metrics.observe(name, help, buckets, labels, seconds)`. The first use of a name fixes its
//! kind and help; label sets are few by design (route patterns, not paths; no request ids).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use scheduler::metrics::Histogram;

/// HTTP request latency buckets in seconds (Prometheus' defaults, plus long generations).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Database write latency buckets in seconds.
pub const WRITE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

enum Series {
    Counter(BTreeMap<String, u64>),
    Histogram(BTreeMap<String, Histogram>),
}

struct Family {
    help: String,
    series: Series,
}

/// The registry. Cheap to share behind an `Arc`; every call takes one short lock.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<String, Family>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// `{a="x",b="y"}` with Prometheus escaping; empty for no labels.
fn label_text(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    /// Adds `by` to a counter (created at zero on first use).
    pub fn inc(&self, name: &str, help: &str, labels: &[(&str, &str)], by: u64) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name.to_owned()).or_insert_with(|| Family {
            help: help.to_owned(),
            series: Series::Counter(BTreeMap::new()),
        });
        if let Series::Counter(series) = &mut family.series {
            *series.entry(label_text(labels)).or_insert(0) += by;
        }
    }

    /// Records one observation in a histogram with `buckets` (upper bounds).
    pub fn observe(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name.to_owned()).or_insert_with(|| Family {
            help: help.to_owned(),
            series: Series::Histogram(BTreeMap::new()),
        });
        if let Series::Histogram(series) = &mut family.series {
            series
                .entry(label_text(labels))
                .or_insert_with(|| Histogram::new(buckets))
                .observe(value);
        }
    }

    /// The current value of a counter series (tests and health checks).
    pub fn counter_value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        match families.get(name).map(|f| &f.series) {
            Some(Series::Counter(series)) => series.get(&label_text(labels)).copied().unwrap_or(0),
            _ => 0,
        }
    }

    /// Every family in the text exposition format.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, family) in families.iter() {
            let kind = match family.series {
                Series::Counter(_) => "counter",
                Series::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            match &family.series {
                Series::Counter(series) => {
                    for (labels, value) in series {
                        let _ = writeln!(out, "{name}{labels} {value}");
                    }
                }
                Series::Histogram(series) => {
                    for (labels, h) in series {
                        render_histogram(&mut out, name, labels, h);
                    }
                }
            }
        }
        out
    }
}

fn render_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    // `labels` is `{...}` or empty; `le` joins the set.
    let with_le = |le: &str| {
        if labels.is_empty() {
            format!("{{le=\"{le}\"}}")
        } else {
            format!("{},le=\"{le}\"}}", &labels[..labels.len() - 1])
        }
    };
    let mut cumulative = 0;
    for (i, bound) in h.bounds.iter().enumerate() {
        cumulative += h.counts[i];
        let _ = writeln!(
            out,
            "{name}_bucket{} {cumulative}",
            with_le(&bound.to_string())
        );
    }
    cumulative += h.counts[h.bounds.len()];
    let _ = writeln!(out, "{name}_bucket{} {cumulative}", with_le("+Inf"));
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum);
    let _ = writeln!(out, "{name}_count{labels} {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_text_format() {
        let m = Metrics::default();
        m.inc("x_total", "Xs.", &[("route", "/a\"b")], 2);
        m.inc("x_total", "Xs.", &[("route", "/a\"b")], 1);
        m.observe("lat_seconds", "Latency.", &[0.1, 1.0], &[("r", "a")], 0.5);
        m.observe("lat_seconds", "Latency.", &[0.1, 1.0], &[("r", "a")], 5.0);
        let text = m.render();
        assert!(
            text.contains("# TYPE x_total counter\nx_total{route=\"/a\\\"b\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{r=\"a\",le=\"0.1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{r=\"a\",le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{r=\"a\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_count{r=\"a\"} 2\n"), "{text}");
        assert_eq!(m.counter_value("x_total", &[("route", "/a\"b")]), 3);
    }
}
