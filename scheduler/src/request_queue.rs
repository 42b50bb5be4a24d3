//! Requests waiting for their first admission, one ordered queue per tenant, with the
//! admission caps that bound how much work may queue up at all.
//!
//! Which tenant goes next is `fairness`'s call; inside a tenant, lower `priority` first, then
//! arrival order.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{QueueScope, SchedulerError};

/// Caps on queued (not yet admitted) work. Requests beyond them are refused at once rather
/// than queued for minutes: a client can retry elsewhere, a queue cannot be drained faster.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AdmissionLimits {
    pub max_waiting_requests: usize,
    pub max_waiting_tokens: usize,
    pub max_waiting_requests_per_tenant: usize,
    pub max_waiting_tokens_per_tenant: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self {
            max_waiting_requests: 10_000,
            max_waiting_tokens: 20_000_000,
            max_waiting_requests_per_tenant: 2_000,
            max_waiting_tokens_per_tenant: 4_000_000,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct TenantQueue {
    /// (priority, request key); keys grow with arrival, so ties go to the earlier request.
    entries: BTreeSet<(i32, u64)>,
    tokens: usize,
}

#[derive(Clone, Debug, Default)]
pub struct RequestQueue {
    tenants: BTreeMap<String, TenantQueue>,
    len: usize,
    tokens: usize,
}

impl RequestQueue {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn num_tokens(&self) -> usize {
        self.tokens
    }

    pub fn tenant_len(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).map_or(0, |q| q.entries.len())
    }

    /// Refuses a request of `tokens` prompt tokens when it would cross a cap.
    pub fn check_admission(
        &self,
        limits: &AdmissionLimits,
        tenant: &str,
        tokens: usize,
    ) -> Result<(), SchedulerError> {
        let (t_len, t_tokens) = self
            .tenants
            .get(tenant)
            .map_or((0, 0), |q| (q.entries.len(), q.tokens));
        let full = |scope, what: String| Err(SchedulerError::QueueFull { scope, what });
        if t_len + 1 > limits.max_waiting_requests_per_tenant {
            return full(
                QueueScope::Tenant,
                format!("{t_len} requests of this tenant are waiting"),
            );
        }
        if t_tokens + tokens > limits.max_waiting_tokens_per_tenant {
            return full(
                QueueScope::Tenant,
                format!("{t_tokens} prompt tokens of this tenant are waiting"),
            );
        }
        if self.len + 1 > limits.max_waiting_requests {
            return full(
                QueueScope::Global,
                format!("{} requests are waiting", self.len),
            );
        }
        if self.tokens + tokens > limits.max_waiting_tokens {
            return full(
                QueueScope::Global,
                format!("{} prompt tokens are waiting", self.tokens),
            );
        }
        Ok(())
    }

    /// Queues a request; true when the tenant had nothing waiting before (it "returns").
    pub fn push(&mut self, tenant: &str, priority: i32, key: u64, tokens: usize) -> bool {
        let q = self.tenants.entry(tenant.to_string()).or_default();
        let returning = q.entries.is_empty();
        q.entries.insert((priority, key));
        q.tokens += tokens;
        self.len += 1;
        self.tokens += tokens;
        returning
    }

    /// Removes a request; true when the tenant has nothing waiting any more.
    pub fn remove(&mut self, tenant: &str, priority: i32, key: u64, tokens: usize) -> bool {
        let Some(q) = self.tenants.get_mut(tenant) else {
            return false;
        };
        if !q.entries.remove(&(priority, key)) {
            return false;
        }
        q.tokens -= tokens;
        self.len -= 1;
        self.tokens -= tokens;
        if q.entries.is_empty() {
            self.tenants.remove(tenant);
            return true;
        }
        false
    }

    /// The tenant's next request.
    pub fn first_of(&self, tenant: &str) -> Option<u64> {
        self.tenants.get(tenant)?.entries.first().map(|&(_, k)| k)
    }

    /// Tenants with at least one waiting request, in name order (deterministic).
    pub fn backlogged(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_name_their_scope() {
        let limits = AdmissionLimits {
            max_waiting_requests: 3,
            max_waiting_tokens: 100,
            max_waiting_requests_per_tenant: 2,
            max_waiting_tokens_per_tenant: 50,
        };
        let mut q = RequestQueue::default();
        assert!(q.push("a", 0, 1, 10));
        assert!(!q.push("a", 0, 2, 10));
        let e = q.check_admission(&limits, "a", 1).unwrap_err();
        assert!(matches!(
            e,
            SchedulerError::QueueFull {
                scope: QueueScope::Tenant,
                ..
            }
        ));
        assert!(matches!(
            q.check_admission(&limits, "b", 60),
            Err(SchedulerError::QueueFull {
                scope: QueueScope::Tenant,
                ..
            })
        ));
        q.push("b", 0, 3, 10);
        assert!(matches!(
            q.check_admission(&limits, "c", 1),
            Err(SchedulerError::QueueFull {
                scope: QueueScope::Global,
                ..
            })
        ));
        assert!(!q.remove("a", 0, 1, 10));
        assert!(q.remove("a", 0, 2, 10));
        assert_eq!((q.len(), q.num_tokens()), (1, 10));
    }

    #[test]
    fn priority_then_arrival_inside_a_tenant() {
        let mut q = RequestQueue::default();
        q.push("a", 5, 1, 1);
        q.push("a", 0, 2, 1);
        q.push("a", 0, 3, 1);
        assert_eq!(q.first_of("a"), Some(2));
        q.remove("a", 0, 2, 1);
        assert_eq!(q.first_of("a"), Some(3));
        q.remove("a", 0, 3, 1);
        assert_eq!(q.first_of("a"), Some(1));
    }
}
