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
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i32>,
    pub min_p: Option<f64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub logit_bias: Option<&'a HashMap<String, f64>>,
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
        .map(|(k, v)| match plain_token_id(k) {
            Some(_) if !(-100.0..=100.0).contains(v) => Err(ApiError::field(
                "logit_bias",
                format_args!("the bias of '{k}' must be between -100 and 100"),
            )),
            Some(id) if (id as usize) < vocab => Ok((id, *v as f32)),
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
    let temperature = TEMPERATURE.narrow(f.temperature)?;
    let top_p = TOP_P.narrow(f.top_p)?;
    let min_p = MIN_P.narrow(f.min_p)?;
    let presence_penalty = PRESENCE_PENALTY.narrow(f.presence_penalty)?;
    let frequency_penalty = FREQUENCY_PENALTY.narrow(f.frequency_penalty)?;
    let repetition_penalty = REPETITION_PENALTY.narrow(f.repetition_penalty)?;
    let params = SamplingParams {
        structured,
        n,
        temperature: temperature.or(m.temperature).unwrap_or(d.temperature),
        top_p: top_p.or(m.top_p).unwrap_or(d.top_p),
        top_k: f.top_k.or(m.top_k).unwrap_or(d.top_k),
        min_p: min_p.or(m.min_p).unwrap_or(d.min_p),
        seed: f.seed.map(|s| s as u64),
        presence_penalty: presence_penalty
            .or(m.presence_penalty)
            .unwrap_or(d.presence_penalty),
        frequency_penalty: frequency_penalty
            .or(m.frequency_penalty)
            .unwrap_or(d.frequency_penalty),
        repetition_penalty: repetition_penalty
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

/// The range of a float sampling field. Requests carry it as a 64-bit float and it is checked
/// as one, before it becomes the engine's 32-bit float: a positive `top_p` of 1e-300 is in range
/// and must not round to a 0 that is not.
struct FloatRange {
    field: &'static str,
    min: f64,
    /// `min` itself is out of range.
    min_exclusive: bool,
    max: f64,
    /// Why a value is refused, as the engine says it.
    rule: &'static str,
}

const TEMPERATURE: FloatRange =
    FloatRange::closed("temperature", 0.0, 2.0, "must be between 0 and 2");
const TOP_P: FloatRange = FloatRange::open_below("top_p", 0.0, 1.0, "must be in (0, 1]");
const MIN_P: FloatRange = FloatRange::closed("min_p", 0.0, 1.0, "must be in [0, 1]");
const PRESENCE_PENALTY: FloatRange =
    FloatRange::closed("presence_penalty", -2.0, 2.0, "must be between -2 and 2");
const FREQUENCY_PENALTY: FloatRange =
    FloatRange::closed("frequency_penalty", -2.0, 2.0, "must be between -2 and 2");
const REPETITION_PENALTY: FloatRange =
    FloatRange::open_below("repetition_penalty", 0.0, 10.0, "must be in (0, 10]");

impl FloatRange {
    const fn closed(field: &'static str, min: f64, max: f64, rule: &'static str) -> Self {
        Self {
            field,
            min,
            min_exclusive: false,
            max,
            rule,
        }
    }

    const fn open_below(field: &'static str, min: f64, max: f64, rule: &'static str) -> Self {
        Self {
            min_exclusive: true,
            ..Self::closed(field, min, max, rule)
        }
    }

    /// The value as the engine's f32, or the field's 400. A value above an exclusive minimum
    /// stays above it: one too close to round to it becomes the next f32 up.
    fn narrow(&self, value: Option<f64>) -> Result<Option<f32>, ApiError> {
        let Some(v) = value else { return Ok(None) };
        let above_min = if self.min_exclusive {
            v > self.min
        } else {
            v >= self.min
        };
        if !above_min || v > self.max || v.is_nan() {
            return Err(ApiError::field(self.field, self.rule));
        }
        let narrow = v as f32;
        let min = self.min as f32;
        Ok(Some(if self.min_exclusive && narrow <= min {
            next_up(min)
        } else {
            narrow
        }))
    }
}

/// The smallest f32 above `x` (finite `x`).
fn next_up(x: f32) -> f32 {
    if x == 0.0 {
        f32::from_bits(1)
    } else if x > 0.0 {
        f32::from_bits(x.to_bits() + 1)
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
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

/// A `logit_bias` key's token id, in plain decimal only, so that no two keys ("1", "01", "+1")
/// name one token.
fn plain_token_id(key: &str) -> Option<u32> {
    key.parse::<u32>().ok().filter(|id| id.to_string() == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_fields_are_checked_before_they_become_f32() {
        // Positive, but 0 as an f32: still positive, and accepted.
        let tiny = TOP_P.narrow(Some(1e-300)).unwrap().unwrap();
        assert!(tiny > 0.0);
        assert!(REPETITION_PENALTY.narrow(Some(1e-50)).unwrap().unwrap() > 0.0);
        // Above the bound, but the bound as an f32: refused.
        let err = TEMPERATURE.narrow(Some(2.000_000_000_1)).unwrap_err();
        assert_eq!(err.body().error.param.as_deref(), Some("temperature"));
        assert!(TOP_P.narrow(Some(0.0)).is_err());
        assert!(TOP_P.narrow(Some(-1e-300)).is_err());
        assert!(MIN_P.narrow(Some(-1e-300)).is_err());
        assert_eq!(MIN_P.narrow(Some(0.0)).unwrap(), Some(0.0));
        assert_eq!(PRESENCE_PENALTY.narrow(Some(-2.0)).unwrap(), Some(-2.0));
        assert_eq!(TEMPERATURE.narrow(None).unwrap(), None);
        assert_eq!(TOP_P.narrow(Some(0.25)).unwrap(), Some(0.25));
        assert_eq!(next_up(1.0), 1.0 + f32::EPSILON);
        assert!(next_up(-1.0) > -1.0);
    }

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
