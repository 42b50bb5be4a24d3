//! Structured outputs over the default model's vocabulary: what the masks allow, step by step,
//! and greedy decoding under a JSON schema with the real model.

use std::sync::OnceLock;

use engine::sampling::{sample, SampleContext, SamplingParams};
use engine::structured::apply_mask;
use engine::{ChatMessage, KvCache, Model, StepBatch};
use protocol::{StructuredOutput, ToolAnswer, ToolDefinition};
use serde_json::json;

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path =
            engine::model_cache::find_default_model().expect("run `starfire model fetch` first");
        Model::load(&path).expect("load the default model")
    })
}

fn choice(options: &[&str]) -> StructuredOutput {
    StructuredOutput::Choice {
        options: options.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn a_choice_allows_only_its_options_then_only_eos() {
    let tok = &model().tokenizer;
    let grammars = tok.grammars().unwrap();
    let mut c = grammars.constraint(&choice(&["yes", "no"])).unwrap();
    let mask = c.mask().unwrap();
    let eos = tok.eos_token_ids()[0];
    assert!(!mask.is_allowed(eos), "nothing was written yet");
    let yes = tok.encode("yes", false).unwrap();
    let maybe = tok.encode("maybe", false).unwrap();
    assert!(mask.is_allowed(yes[0]));
    assert!(!mask.is_allowed(maybe[0]));
    c.advance(&yes).unwrap();
    let mask = c.mask().unwrap();
    assert!(mask.is_allowed(eos), "the option is complete");
    for id in 0..tok.vocab_size() as u32 {
        if !tok.eos_token_ids().contains(&id) {
            assert!(!mask.is_allowed(id), "{id} after a complete option");
        }
    }
    // A token the grammar refuses is an error, not a silent pass.
    let mut c = grammars.constraint(&choice(&["yes", "no"])).unwrap();
    assert!(c.advance(&maybe).is_err());

    let mut logits = vec![0.0f32; model().config.vocab_size];
    apply_mask(&mut logits, &mask);
    let open: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    assert_eq!(
        open,
        tok.eos_token_ids()
            .iter()
            .map(|&i| i as usize)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_token_that_splits_a_character_leaves_the_rest_of_it_allowed() {
    // The contract test's fuzzer found it: after a token holding only the first byte of `±`
    // (0xC2, which byte-level BPE writes `Â`), the grammar forces the byte 0xB1. Forced bytes
    // were tokenized as lossy UTF-8 (U+FFFD's tokens), so the mask let through a token that
    // the grammar then refused: a 500 in the middle of generation.
    let tok = &model().tokenizer;
    let grammars = tok.grammars().unwrap();
    let first_byte = tok
        .inner()
        .token_to_id("Â")
        .expect("the byte 0xC2 is a token");
    let mut c = grammars.constraint(&choice(&["±", "Î"])).unwrap();
    assert!(c.mask().unwrap().is_allowed(first_byte));
    c.advance(&[first_byte]).unwrap();
    let mask = c.mask().unwrap();
    let mut allowed = Vec::new();
    for id in 0..tok.vocab_size() as u32 {
        if mask.is_allowed(id) {
            allowed.push(id);
            let mut next = c.clone();
            next.advance(&[first_byte, id])
                .unwrap_or_else(|e| panic!("the mask allowed {id}, then: {e}"));
        }
    }
    let rest = tok
        .inner()
        .token_to_id("±")
        .expect("the byte 0xB1 is a token");
    assert_eq!(allowed, vec![rest]);
}

#[test]
fn what_cannot_be_enforced_is_named() {
    let grammars = model().tokenizer.grammars().unwrap();
    let unique = StructuredOutput::JsonSchema {
        schema: json!({"type": "array", "uniqueItems": true}),
    };
    let err = grammars.check(&unique, "response_format").unwrap_err();
    assert_eq!(err.field, "response_format");
    assert!(err.message.contains("uniqueItems"), "{}", err.message);
    let bad = StructuredOutput::Regex {
        pattern: "(unclosed".into(),
    };
    assert!(grammars.check(&bad, "guided_regex").is_err());
    let ok = StructuredOutput::JsonSchema {
        schema: json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
    };
    grammars.check(&ok, "response_format").unwrap();
}

fn weather_tools() -> Vec<ToolDefinition> {
    vec![
        ToolDefinition {
            name: "get_weather".into(),
            description: Some("The weather of a city".into()),
            parameters: json!({
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 30}},
                "required": ["city"],
                "additionalProperties": false
            }),
        },
        ToolDefinition {
            name: "get_time".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        },
    ]
}

fn tool_calls(answer: ToolAnswer, parallel: bool) -> StructuredOutput {
    StructuredOutput::ToolCalls {
        functions: weather_tools(),
        answer,
        parallel,
    }
}

/// Whether the constraint takes `text` (tokenized on its own) and then allows EOS.
fn takes(spec: &StructuredOutput, text: &str) -> (bool, bool) {
    let tok = &model().tokenizer;
    let mut c = tok.grammars().unwrap().constraint(spec).unwrap();
    let ids = tok.encode(text, false).unwrap();
    if c.advance(&ids).is_err() {
        return (false, false);
    }
    let eos = tok.eos_token_ids()[0];
    (true, c.mask().unwrap().is_allowed(eos))
}

#[test]
fn tool_call_grammars_bind_calls_and_free_text_as_asked() {
    let call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    let empty = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    let unknown = "<tool_call>\n{\"name\": \"get_news\"";
    let bad_args = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"town\"";

    let auto = tool_calls(ToolAnswer::Auto, true);
    assert_eq!(takes(&auto, "It is sunny <b>today</b>."), (true, true));
    assert_eq!(takes(&auto, call), (true, true));
    assert_eq!(
        takes(&auto, &format!("Let me check.\n{call}\n{empty}")),
        (true, true)
    );
    assert_eq!(
        takes(&auto, &format!("{call}\n")),
        (true, false),
        "a second call must follow"
    );
    assert!(!takes(&auto, unknown).0, "only offered functions");
    assert!(!takes(&auto, bad_args).0, "arguments follow the schema");
    assert!(!takes(&auto, &format!("{call} and more text")).0);

    let required = tool_calls(ToolAnswer::Required, false);
    assert!(!takes(&required, "It is sunny").0, "a call is required");
    assert_eq!(takes(&required, empty), (true, true));
    assert!(
        !takes(&required, &format!("{call}\n{empty}")).0,
        "one call only"
    );

    let named = tool_calls(
        ToolAnswer::Named {
            name: "get_time".into(),
        },
        false,
    );
    assert!(!takes(&named, call).0, "only the named function");
    assert_eq!(takes(&named, empty), (true, true));

    let json_or_call = tool_calls(
        ToolAnswer::AutoJson {
            schema: json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}),
        },
        false,
    );
    assert_eq!(
        takes(&json_or_call, "{\"answer\": \"sunny\"}"),
        (true, true)
    );
    assert_eq!(takes(&json_or_call, call), (true, true));
    assert!(!takes(&json_or_call, "sunny").0);

    let bad = StructuredOutput::ToolCalls {
        functions: vec![ToolDefinition {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "array", "uniqueItems": true}),
        }],
        answer: ToolAnswer::Required,
        parallel: false,
    };
    let err = model()
        .tokenizer
        .grammars()
        .unwrap()
        .check(&bad, "tools")
        .unwrap_err();
    assert!(err.message.contains("uniqueItems"), "{}", err.message);
}

#[test]
fn greedy_decoding_with_a_required_tool_gives_a_valid_call() {
    let spec = tool_calls(ToolAnswer::Required, false);
    let messages = [ChatMessage::new("user", "What is the weather in Paris?")];
    let (text, ended) = constrained_greedy_chat(&spec, &messages, &weather_tools(), 80);
    assert!(ended, "the grammar ends the output: {text}");
    let body = text
        .strip_prefix("<tool_call>\n")
        .and_then(|t| t.strip_suffix("\n</tool_call>"))
        .unwrap_or_else(|| panic!("not one call: {text}"));
    let call: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(
        call["name"] == "get_weather" && call["arguments"]["city"].is_string()
            || call["name"] == "get_time" && call["arguments"] == json!({}),
        "{text}"
    );
}

/// Greedy decoding with the mask applied, one sequence, straight through the model.
fn constrained_greedy(spec: &StructuredOutput, user: &str, max_tokens: usize) -> (String, bool) {
    constrained_greedy_chat(spec, &[ChatMessage::new("user", user)], &[], max_tokens)
}

fn constrained_greedy_chat(
    spec: &StructuredOutput,
    messages: &[ChatMessage],
    tools: &[ToolDefinition],
    max_tokens: usize,
) -> (String, bool) {
    let model = model();
    let text = model
        .chat_template
        .as_ref()
        .unwrap()
        .render_with_tools(messages, tools, true)
        .unwrap();
    let prompt = model.tokenizer.encode(&text, true).unwrap();
    let block_size = 16;
    let blocks = (prompt.len() + max_tokens).div_ceil(block_size) + 1;
    let mut cache: KvCache = model.new_kv_cache(block_size, blocks).unwrap();
    let table: Vec<u32> = (0..blocks as u32).collect();
    let mut constraint = model
        .tokenizer
        .grammars()
        .unwrap()
        .constraint(spec)
        .unwrap();
    let eos = model.tokenizer.eos_token_ids().to_vec();
    let params = SamplingParams::greedy(max_tokens);
    let mut output: Vec<u32> = Vec::new();
    let mut step =
        engine::SequenceStep::contiguous(prompt.clone(), 0, table.clone(), block_size, true);
    for _ in 0..max_tokens {
        let mut logits = model
            .step(&mut cache, &StepBatch { seqs: vec![step] })
            .unwrap();
        constraint.advance(&output).unwrap();
        let mask = constraint.mask().unwrap();
        let ctx = SampleContext {
            prompt_tokens: &prompt,
            output_tokens: &output,
            eos_token_ids: &eos,
            seed: 0,
            mask: Some(&mask),
        };
        let token = sample(&mut logits[0], &params, &ctx).token;
        if eos.contains(&token) {
            return (model.tokenizer.decode(&output, true).unwrap(), true);
        }
        output.push(token);
        let pos = prompt.len() + output.len() - 1;
        step = engine::SequenceStep::contiguous(vec![token], pos, table.clone(), block_size, true);
    }
    (model.tokenizer.decode(&output, true).unwrap(), false)
}

#[test]
fn greedy_decoding_under_a_schema_gives_valid_compact_json() {
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer", "minimum": 0},
            "capital": {"type": "boolean"}
        },
        "required": ["city", "population", "capital"],
        "additionalProperties": false
    });
    let spec = StructuredOutput::JsonSchema { schema };
    let (text, ended) = constrained_greedy(&spec, "Describe Paris as JSON.", 80);
    assert!(ended, "the grammar ends the output: {text}");
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(
        v["city"].is_string() && v["population"].is_u64() && v["capital"].is_boolean(),
        "{text}"
    );
    // Compact separators, no other whitespace outside strings.
    assert!(text.starts_with("{\"city\": "), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

/// `min_tokens` holds back EOS, but a grammar that is complete allows nothing else: the
/// grammar wins, so the output stays valid.
#[test]
fn a_complete_grammar_ends_even_before_min_tokens() {
    let tok = &model().tokenizer;
    let mut c = tok
        .grammars()
        .unwrap()
        .constraint(&choice(&["yes"]))
        .unwrap();
    let yes = tok.encode("yes", false).unwrap();
    c.advance(&yes).unwrap();
    let mask = c.mask().unwrap();
    let eos = tok.eos_token_ids().to_vec();
    let params = SamplingParams {
        min_tokens: 10,
        ..SamplingParams::greedy(16)
    };
    let mut logits = vec![0.0f32; model().config.vocab_size];
    let ctx = SampleContext {
        prompt_tokens: &[],
        output_tokens: &yes,
        eos_token_ids: &eos,
        seed: 0,
        mask: Some(&mask),
    };
    let token = sample(&mut logits, &params, &ctx).token;
    assert!(eos.contains(&token), "{token} is not EOS");
}
