//! Starfire's scheduler: requests, continuous batching, KV block manager, tenant fairness.
