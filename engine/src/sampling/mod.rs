//! Sampling: parameters and the sampler.

mod params;
mod sampler;

pub use params::{SamplingParams, MAX_LOGPROBS};
pub use sampler::{argmax, log_softmax, sample, top_k_of, SampleContext, SampledToken};
