//! The model as a separate service: `starfire worker` on one side, a pool of workers behind the
//! backend seam on the other.
//!
//! - `server`: the worker process (engine and scheduler behind HTTP, no accounts or database),
//!   its health, readiness and metrics routes, and its drain on SIGTERM; `openai_routes`: the
//!   same models on OpenAI's routes, for any OpenAI client.
//! - `pool`: a model's workers, the router that picks one per request, retries and cool-downs;
//!   `affinity`: which worker last got each prompt prefix (the router's first criterion).
//! - `remote`: a model served by a pool, implementing `ServedModel` like the in-process engine
//!   (the gateway keeps the tokenizer and chat template; workers get token ids).
//!
//! - `upstream`: a model served by any OpenAI-compatible server (vLLM, llama.cpp's server, a
//!   worker's OpenAI routes, a hosted provider), which tokenizes for itself.
//!
//! What travels between a gateway and its workers is `protocol::wire`.

pub mod affinity;
mod openai_routes;
pub mod pool;
pub mod remote;
pub mod server;
pub mod upstream;

pub use pool::{Members, Routing, Timeouts, WorkerPool};
pub use remote::RemoteModel;
pub use server::WorkerState;
pub use upstream::{UpstreamModel, UpstreamSettings};
