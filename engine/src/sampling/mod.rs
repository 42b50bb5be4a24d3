//! Sampling: parameters and the sampler.

mod sampler;

pub use protocol::{SamplingParams, MAX_LOGIT_BIAS, MAX_LOGPROBS, MAX_STOP_TOKEN_IDS};
pub use sampler::{
    argmax, device_pick, is_plain_greedy, log_softmax, max_device_edits, sample, top_k_of,
    DeviceSample, RowPick, SampleContext, SampledToken,
};
