//! The golden-file harness shared by the tests of each kernel path: llama.cpp's reference
//! outputs for the default model (tests/golden, see its README) and the comparison of greedy
//! continuations against them.

use std::sync::OnceLock;

use engine::generate::{generate, GenerateOptions};
use engine::kernels::cpu::{self, Isa};
use engine::sampling::SamplingParams;
use engine::{ChatMessage, Model};
use serde::Deserialize;

#[derive(Deserialize)]
#[allow(dead_code)]
pub struct Case {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub prompt: String,
    pub templated_prompt: String,
    pub prompt_token_ids: Vec<u32>,
    pub max_tokens: usize,
    pub ignore_eos: bool,
    pub greedy_token_ids: Vec<u32>,
    pub greedy_text: String,
    /// `None` where llama-server reported no probabilities (a byte token inside a character).
    pub top2_logprobs: Vec<Option<[(u32, f32); 2]>>,
}

/// The default model, loaded once per test binary, with the kernel path forced to `isa`
/// before anything is computed (each test binary is its own process).
pub fn model(isa: Isa) -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let used = cpu::force(isa);
        eprintln!("kernel path: {} (requested {})", used.name(), isa.name());
        let path =
            engine::model_cache::find_default_model().expect("run `starfire model fetch` first");
        Model::load(&path).expect("load the default model")
    })
}

pub fn cases(json: &str) -> Vec<Case> {
    serde_json::from_str(json).unwrap()
}

/// The reference's top-2 gap at `pos` (how close llama.cpp itself was to picking otherwise),
/// `None` where it reported none.
fn gap(case: &Case, pos: usize) -> Option<f32> {
    case.top2_logprobs
        .get(pos)
        .copied()
        .flatten()
        .map(|[a, b]| (a.1 - b.1).abs())
}

/// What llama-server reported for a token stream: it holds back tokens that end inside a
/// UTF-8 character and reports only the token that completes the text piece. Three reference
/// cases of the AVX2 file (CJK, emoji, accented text) were recorded that way; their ids are
/// compared in this view.
fn reported_view(m: &Model, ids: &[u32]) -> Vec<u32> {
    let mut dec = engine::IncrementalDecoder::new(false);
    ids.iter()
        .copied()
        .filter(|&id| !dec.push(&m.tokenizer, id).unwrap().is_empty())
        .collect()
}

/// Greedy continuations against a reference file: at least `min_exact` of the cases identical
/// over the whole reference length, and any divergence only where the reference itself was at
/// a near-tie (top-2 gap under 0.1). Returns how many were exact.
pub fn check_greedy(m: &Model, all: &[Case], min_exact: usize) -> usize {
    const MAX_DIVERGENCE_GAP: f32 = 0.1;
    let mut exact = 0;
    let mut report = Vec::new();
    for case in all {
        let params = SamplingParams {
            ignore_eos: case.ignore_eos,
            ..SamplingParams::greedy(case.max_tokens)
        };
        let got: Vec<u32> = generate(
            m,
            &case.prompt_token_ids,
            &params,
            0,
            &GenerateOptions::default(),
        )
        .unwrap()
        .into_iter()
        .map(|s| s.token)
        .collect();
        let reference_is_reported_view =
            m.tokenizer.decode(&case.greedy_token_ids, true).unwrap() != case.greedy_text;
        let got = if reference_is_reported_view {
            reported_view(m, &got)
        } else {
            got
        };
        match got
            .iter()
            .zip(&case.greedy_token_ids)
            .position(|(a, b)| a != b)
        {
            None if got.len() == case.greedy_token_ids.len() => exact += 1,
            None => panic!(
                "{}: length {} vs reference {}",
                case.name,
                got.len(),
                case.greedy_token_ids.len()
            ),
            Some(pos) => {
                let g = gap(case, pos);
                report.push(format!(
                    "{} diverges at {pos} (reference gap {g:?})",
                    case.name
                ));
                assert!(
                    g.is_some_and(|g| g < MAX_DIVERGENCE_GAP),
                    "{}: diverges at {pos} where the reference gap is {g:?} (not a near-tie)",
                    case.name
                );
            }
        }
    }
    eprintln!("{exact}/{} exact; {report:?}", all.len());
    assert!(
        exact >= min_exact,
        "only {exact}/{} cases match exactly (at least {min_exact} needed): {report:?}",
        all.len()
    );
    exact
}
