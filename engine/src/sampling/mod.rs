//! Sampling: parameters and the sampler.

mod params;

pub use params::{SamplingParams, MAX_LOGPROBS};
