//! The model as a separate service: `starfire worker` on one side, a pool of workers behind the
//! backend seam on the other.
//!
//! - `server`: the worker process (engine and scheduler behind HTTP, no accounts or database),
//!   its health, readiness and metrics routes, and its drain on SIGTERM.
//! - `pool`: a model's workers, the router that picks one per request, retries and cool-downs;
//!   `affinity`: which worker last got each prompt prefix (the router's first criterion).
//! - `remote`: a model served by a pool, implementing `ServedModel` like the in-process engine
//!   (the gateway keeps the tokenizer and chat template; workers get token ids).
//!
//! What travels between them is `protocol::wire`.

pub mod affinity;
pub mod pool;
pub mod remote;
pub mod server;

pub use pool::{Members, Routing, Timeouts, WorkerPool};
pub use remote::RemoteModel;
pub use server::WorkerState;
