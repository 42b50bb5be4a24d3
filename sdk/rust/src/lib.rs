//! Rust client of Starfire's OpenAI-compatible API: chat completions (whole, streamed, or over
//! a WebSocket), projects, API keys, private deployments, usage, costs, credits, billing
//! (balance, ledger, invoices, prices) and budgets, with retries, timeouts and typed errors.
//!
//! ```no_run
//! # async fn run() -> Result<(), starfire_sdk::Error> {
//! use futures_util::StreamExt;
//! use starfire_sdk::{ChatCompletionRequest, ChatMessage, Client};
//!
//! let client = Client::from_env()?; // STARFIRE_API_KEY, STARFIRE_BASE_URL
//! let mut stream = client
//!     .chat_completion_stream(ChatCompletionRequest {
//!         model: "smollm2-135m-instruct".into(),
//!         messages: vec![ChatMessage::user("Hello")],
//!         ..Default::default()
//!     })
//!     .await?;
//! while let Some(chunk) = stream.next().await {
//!     for choice in chunk?.choices {
//!         print!("{}", choice.delta.content.unwrap_or_default());
//!     }
//! }
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod types;
mod websocket;

#[doc(hidden)]
pub use client::{next_event_data, parse_chunk};
pub use client::{ChunkStream, Client, OPERATIONS};
pub use error::{Error, ErrorKind};
pub use types::*;
pub use websocket::{ChatDone, ChatSocket, ServerFrame};
