//! Sampling: parameters and the sampler.

mod sampler;

pub use protocol::{SamplingParams, MAX_LOGPROBS};
pub use sampler::{argmax, log_softmax, sample, top_k_of, SampleContext, SampledToken};
