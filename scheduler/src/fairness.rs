//! Tenant fairness by virtual token counters (VTC; Sheng et al., OSDI'24, "Fairness in
//! Serving Large Language Models").
//!
//! Each tenant's counter grows with the service it received: input tokens weigh 1, output
//! tokens 2 (decoding a token costs more than prefilling one), divided by the tenant's plan
//! weight. Admission takes the backlogged tenant with the smallest counter, so over any
//! interval in which two tenants stay backlogged their weighted service differs by a bounded
//! amount, however much either one queued.
//!
//! A tenant that comes back after a quiet spell is lifted to the smallest counter among the
//! backlogged tenants: idling must not bank credit that would later let it monopolise the
//! engine. With nobody backlogged it is lifted to the counter of the last tenant to leave.

use std::collections::BTreeMap;

use crate::request_queue::RequestQueue;

pub const INPUT_TOKEN_WEIGHT: f64 = 1.0;
pub const OUTPUT_TOKEN_WEIGHT: f64 = 2.0;

#[derive(Clone, Debug, Default)]
pub struct VirtualTokenCounter {
    counters: BTreeMap<String, f64>,
    weights: BTreeMap<String, f64>,
    last_left: f64,
}

impl VirtualTokenCounter {
    /// Records the tenant's plan weight (the latest request's wins).
    pub fn set_weight(&mut self, tenant: &str, weight: f64) {
        let w = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        self.weights.insert(tenant.to_string(), w);
    }

    pub fn weight(&self, tenant: &str) -> f64 {
        self.weights.get(tenant).copied().unwrap_or(1.0)
    }

    pub fn counter(&self, tenant: &str) -> f64 {
        self.counters.get(tenant).copied().unwrap_or(0.0)
    }

    /// Call when `tenant` gets a waiting request after having none; `queue` must not yet hold
    /// it (the minimum is over the *other* backlogged tenants).
    pub fn on_backlogged(&mut self, tenant: &str, queue: &RequestQueue) {
        let floor = queue
            .backlogged()
            .filter(|&t| t != tenant)
            .map(|t| self.counter(t))
            .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.min(c))))
            .unwrap_or(self.last_left);
        let c = self.counters.entry(tenant.to_string()).or_insert(0.0);
        *c = c.max(floor);
    }

    /// Call when `tenant` has no waiting request any more.
    pub fn on_idle(&mut self, tenant: &str) {
        self.last_left = self.counter(tenant);
    }

    /// Adds service received: prefill tokens computed and tokens generated.
    pub fn charge(&mut self, tenant: &str, input_tokens: usize, output_tokens: usize) {
        let cost =
            input_tokens as f64 * INPUT_TOKEN_WEIGHT + output_tokens as f64 * OUTPUT_TOKEN_WEIGHT;
        if cost == 0.0 {
            return;
        }
        let w = self.weight(tenant);
        *self.counters.entry(tenant.to_string()).or_insert(0.0) += cost / w;
    }

    /// The backlogged tenant with the smallest counter (name breaks ties, for determinism).
    pub fn pick<'q>(&self, queue: &'q RequestQueue) -> Option<&'q str> {
        let mut best: Option<(&str, f64)> = None;
        for t in queue.backlogged() {
            let c = self.counter(t);
            if best.is_none_or(|(_, b)| c < b) {
                best = Some((t, c));
            }
        }
        best.map(|(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_served_goes_first_and_weights_divide() {
        let mut v = VirtualTokenCounter::default();
        let mut q = RequestQueue::default();
        v.set_weight("paid", 2.0);
        q.push("free", 0, 1, 10);
        q.push("paid", 0, 2, 10);
        v.charge("free", 10, 5); // 20
        v.charge("paid", 20, 10); // 40 / 2 = 20
        assert_eq!(v.counter("free"), 20.0);
        assert_eq!(v.counter("paid"), 20.0);
        assert_eq!(v.pick(&q), Some("free"), "ties break by name");
        v.charge("free", 1, 0);
        assert_eq!(v.pick(&q), Some("paid"));
    }

    #[test]
    fn returning_tenant_is_lifted_to_the_backlogged_minimum() {
        let mut v = VirtualTokenCounter::default();
        let mut q = RequestQueue::default();
        q.push("a", 0, 1, 1);
        v.on_backlogged("a", &q);
        v.charge("a", 1000, 0);
        // b was idle all along: without the lift it would run alone for 1000 tokens.
        v.on_backlogged("b", &q);
        q.push("b", 0, 2, 1);
        assert_eq!(v.counter("b"), 1000.0);
        // a leaves, then comes back with nobody backlogged but b: lifted to b's counter.
        q.remove("a", 0, 1, 1);
        v.on_idle("a");
        v.charge("b", 500, 0);
        v.on_backlogged("a", &q);
        assert_eq!(v.counter("a"), 1500.0);
    }
}
