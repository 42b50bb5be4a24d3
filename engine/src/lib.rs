//! Starfire's model engine. It knows nothing of tenants, HTTP or money.
//!
//! Data flows through the modules in this order:
//! - `model_cache`: fetches the default GGUF into `$STARFIRE_HOME/models` and finds it again.
