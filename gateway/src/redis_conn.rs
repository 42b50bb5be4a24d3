//! One lazily connected Redis handle, the way every Redis user of the gateway (the rate limiter,
//! the usage progress journal) connects: a `ConnectionManager` made on first use, shared by
//! clones, reconnecting on its own, with the configured timeout on connect, on each response
//! and as the cap of its reconnect backoff.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Clone)]
pub struct LazyRedis {
    client: redis::Client,
    manager: Arc<tokio::sync::OnceCell<ConnectionManager>>,
    timeout: Duration,
}

impl LazyRedis {
    pub fn open(url: &str, timeout: Duration) -> redis::RedisResult<LazyRedis> {
        Ok(LazyRedis {
            client: redis::Client::open(url)?,
            manager: Default::default(),
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The shared connection (made on the first call; nothing is sent until it is used).
    pub async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.timeout);
        let manager = self
            .manager
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(manager.clone())
    }
}
