//! Sampling: parameters and the sampler.

mod sampler;

pub use protocol::{SamplingParams, MAX_LOGPROBS};
pub use sampler::{
    argmax, device_pick, is_plain_greedy, log_softmax, sample, top_k_of, DeviceSample, RowPick,
    SampleContext, SampledToken,
};
