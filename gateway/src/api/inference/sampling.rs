//! A request's sampling fields become the engine's `SamplingParams` (vLLM's names), with the
//! model's configured defaults for what the request leaves out, checked against the model;
//! and `max_tokens` is fitted into the context beside the prompt.

use std::collections::HashMap;

use engine::SamplingParams;
use protocol::StructuredOutput;

use super::request::{StopSpec, MAX_N};
use crate::error::ApiError;
use crate::inference::ServedModel;

/// The sampling fields every generation request shares (see `generation_request!`).
pub(crate) struct SamplingFields<'a> {
    pub n: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub logit_bias: Option<&'a HashMap<String, f32>>,
    /// How many top alternatives, when logprobs were asked for.
    pub logprobs: Option<usize>,
    /// The request field that asked for them (`top_logprobs` or `logprobs`).
    pub logprobs_field: &'static str,
    pub stop: Option<&'a StopSpec>,
    pub stop_token_ids: Option<&'a Vec<u32>>,
    pub min_tokens: Option<u32>,
    pub ignore_eos: Option<bool>,
    /// The output's constraint and the request field that gave it.
    pub structured: Option<(StructuredOutput, &'static str)>,
}

/// The engine's sampling parameters, checked against the model; `max_tokens` is left unset.
pub(crate) fn sampling_params(
    f: SamplingFields,
    model: &dyn ServedModel,
) -> Result<SamplingParams, ApiError> {
    let d = SamplingParams::default();
    let m = model.defaults();
    let vocab = model.vocab_size();
    let n = f.n.unwrap_or(1) as usize;
    if n == 0 || n > MAX_N {
        return Err(ApiError::field(
            "n",
            format_args!("must be between 1 and {MAX_N}"),
        ));
    }
    let logprobs = f.logprobs;
    if logprobs.is_some() && model.owns_tokenizer() {
        return Err(ApiError::bad_request(
            format!(
                "'logprobs' is not supported for the model '{}': an upstream server runs it \
                 with its own tokenizer, so Starfire cannot name its tokens.",
                model.name()
            ),
            Some("logprobs"),
        ));
    }
    if logprobs.is_some_and(|k| k > engine::sampling::MAX_LOGPROBS) {
        return Err(ApiError::field(
            f.logprobs_field,
            "must be between 0 and 20",
        ));
    }
    let logit_bias = f
        .logit_bias
        .into_iter()
        .flatten()
        .map(|(k, v)| match k.parse::<u32>() {
            Ok(id) if (id as usize) < vocab => Ok((id, *v)),
            _ => Err(ApiError::field(
                "logit_bias",
                format_args!("'{k}' is not a token id below {vocab}"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stop_token_ids = f.stop_token_ids.cloned().unwrap_or_default();
    if let Some(bad) = stop_token_ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(ApiError::field(
            "stop_token_ids",
            format_args!("{bad} is not a token id below {vocab}"),
        ));
    }
    let stop = match f.stop {
        None => Vec::new(),
        Some(StopSpec::One(s)) => vec![s.clone()],
        Some(StopSpec::Many(v)) => v.clone(),
    };
    let structured = match f.structured {
        Some((spec, field)) => {
            if f.ignore_eos == Some(true) {
                return Err(ApiError::field(
                    "ignore_eos",
                    format_args!("cannot be combined with `{field}` (the grammar decides where the output ends)"),
                ));
            }
            model.check_structured(&spec, field)?;
            Some(spec)
        }
        None => None,
    };
    let params = SamplingParams {
        structured,
        n,
        temperature: f.temperature.or(m.temperature).unwrap_or(d.temperature),
        top_p: f.top_p.or(m.top_p).unwrap_or(d.top_p),
        top_k: f.top_k.or(m.top_k).unwrap_or(d.top_k),
        min_p: f.min_p.or(m.min_p).unwrap_or(d.min_p),
        seed: f.seed.map(|s| s as u64),
        presence_penalty: f
            .presence_penalty
            .or(m.presence_penalty)
            .unwrap_or(d.presence_penalty),
        frequency_penalty: f
            .frequency_penalty
            .or(m.frequency_penalty)
            .unwrap_or(d.frequency_penalty),
        repetition_penalty: f
            .repetition_penalty
            .or(m.repetition_penalty)
            .unwrap_or(d.repetition_penalty),
        logit_bias,
        logprobs,
        stop_token_ids,
        stop,
        max_tokens: None,
        min_tokens: f.min_tokens.unwrap_or(0) as usize,
        ignore_eos: f.ignore_eos.unwrap_or(false),
        ..d
    };
    params.validate().map_err(|e| {
        // The engine's name for the logprobs count is the request's `logprobs` or `top_logprobs`.
        let field = match e.field.as_str() {
            "logprobs" => f.logprobs_field,
            other => other,
        };
        ApiError::field(field, &e.message)
    })?;
    Ok(params)
}

/// Fits `max_tokens` into the context: an explicit value must fit beside the prompt, a missing
/// one becomes the default (the model's configured one, if any), cut to what the context leaves.
pub(crate) fn fit_context(
    prompt_len: usize,
    max_tokens: Option<usize>,
    default: Option<usize>,
    max_model_len: usize,
    what: &'static str,
) -> Result<usize, ApiError> {
    let exceeded = |requested: usize| ApiError::ContextLengthExceeded {
        message: format!(
            "This model's maximum context length is {max_model_len} tokens. However, you \
             requested {requested} tokens ({prompt_len} in the {what}, {} in the completion). \
             Please reduce the length of the {what} or completion.",
            requested - prompt_len
        ),
        param: what,
    };
    match max_tokens {
        Some(m) if prompt_len + m > max_model_len => Err(exceeded(prompt_len + m)),
        Some(m) => Ok(m),
        None if prompt_len >= max_model_len => Err(exceeded(prompt_len + 1)),
        None => Ok(default.map_or(max_model_len - prompt_len, |d| {
            d.min(max_model_len - prompt_len)
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_tokens_must_fit_beside_the_prompt() {
        assert_eq!(fit_context(10, Some(5), None, 100, "prompt").unwrap(), 5);
        assert_eq!(fit_context(10, None, None, 100, "prompt").unwrap(), 90);
        assert_eq!(fit_context(10, None, Some(16), 100, "prompt").unwrap(), 16);
        assert_eq!(fit_context(95, None, Some(16), 100, "prompt").unwrap(), 5);
        assert_eq!(
            fit_context(10, Some(50), Some(16), 100, "prompt").unwrap(),
            50
        );
        let err = fit_context(96, Some(5), None, 100, "prompt").unwrap_err();
        assert_eq!(err.body().error.code, "context_length_exceeded");
        assert_eq!(err.body().error.param.as_deref(), Some("prompt"));
        assert!(fit_context(100, None, None, 100, "messages").is_err());
        assert!(fit_context(100, None, Some(4), 100, "messages").is_err());
    }
}
