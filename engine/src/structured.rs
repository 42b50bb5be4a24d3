//! Structured outputs: a `StructuredOutput` (JSON Schema, JSON object, regex, choice, Lark
//! grammar) compiled by llguidance over the model's own vocabulary into a token mask per step.
//!
//! - [`Grammars`] is built once per tokenizer (its token trie and llguidance's parser factory)
//!   and compiles specifications, keeping the last few compiled ones so that a schema many
//!   requests share is compiled once.
//! - [`Constraint`] follows one sequence: it consumes the tokens the sequence produced (all of
//!   them again after a preemption dropped it) and gives the mask of tokens allowed next.
//! - [`apply_mask`] sets every token the mask refuses to minus infinity; EOS is allowed
//!   exactly when the grammar can end, and is the only token once it must.
//!
//! JSON is generated compactly with Python's separators (`", "` and `": "`) and no other
//! whitespace, so a small model cannot run to `max_tokens` on spaces and newlines.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::toktrie::{SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};
use protocol::InvalidParam;
pub use protocol::StructuredOutput;
use protocol::{ToolAnswer, ToolDefinition};

use crate::error::{EngineError, Result};
use crate::tokenizer::Tokenizer;

/// Compiled specifications kept for reuse.
const CACHE_ENTRIES: usize = 32;

/// llguidance's view of a tokenizer: the trie of every token's bytes (special tokens behind
/// the 0xFF marker, so no text can produce them) and byte-level tokenization.
struct Env {
    trie: TokTrie,
    tokenizer: tokenizers::Tokenizer,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// llguidance tokenizes the bytes a grammar forces, which can be part of a character
    /// (the rest of `±` after a token that was its first byte): valid UTF-8 goes through the
    /// tokenizer, anything else byte by byte through the trie. (Decoding it lossily made
    /// U+FFFD's tokens, which the grammar then refused.)
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        self.trie.tokenize_with_greedy_fallback(s, |text| {
            self.tokenizer
                .encode_fast(text, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default()
        })
    }
}

/// The grammar compiler of one vocabulary.
pub struct Grammars {
    factory: ParserFactory,
    eos_token_ids: Arc<[u32]>,
    /// (specification as JSON, fresh matcher), most recently used last.
    cache: Mutex<VecDeque<(String, Matcher)>>,
}

impl std::fmt::Debug for Grammars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammars")
            .field(
                "vocab_size",
                &self.factory.tok_env().tok_trie().vocab_size(),
            )
            .field("eos_token_ids", &self.eos_token_ids)
            .finish()
    }
}

impl Grammars {
    /// Builds the token trie from `tokenizer`'s vocabulary (as its `tokenizer.json` states it).
    pub fn new(tokenizer: &Tokenizer) -> Result<Self> {
        let json = serde_json::to_value(tokenizer.inner())
            .map_err(|e| EngineError::Tokenizer(format!("serialising the tokenizer: {e}")))?;
        let mut words = llguidance::token_bytes_from_tokenizer_json(&json)
            .map_err(|e| EngineError::Tokenizer(format!("token bytes for grammars: {e}")))?;
        let vocab = words.len().max(tokenizer.vocab_size());
        words.resize(vocab, Vec::new());
        let eos_token_ids = tokenizer.eos_token_ids().to_vec();
        let eos = *eos_token_ids.first().ok_or_else(|| {
            EngineError::Tokenizer("structured outputs need an EOS token".to_string())
        })?;
        let mut info = TokRxInfo::new(vocab as u32, eos);
        info.tok_bos = tokenizer.bos_token_id();
        info.tok_end_of_turn = eos_token_ids.get(1).copied();
        let env: TokEnv = Arc::new(Env {
            trie: TokTrie::from(&info, &words),
            tokenizer: tokenizer.inner().clone(),
        });
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| EngineError::Tokenizer(format!("grammar factory: {e}")))?;
        factory.quiet();
        *factory.limits_mut() = ParserLimits {
            verbose_errors: false,
            ..ParserLimits::default()
        };
        Ok(Self {
            factory,
            eos_token_ids: eos_token_ids.into(),
            cache: Mutex::new(VecDeque::new()),
        })
    }

    /// Compiles `spec`, or names what about it cannot be enforced (`field` is the request
    /// field it came from).
    pub fn check(
        &self,
        spec: &StructuredOutput,
        field: &str,
    ) -> std::result::Result<(), InvalidParam> {
        self.matcher(spec, field).map(drop)
    }

    /// A matcher at the start of `spec`'s output.
    fn matcher(
        &self,
        spec: &StructuredOutput,
        field: &str,
    ) -> std::result::Result<Matcher, InvalidParam> {
        spec.validate(field)?;
        let key = serde_json::to_string(spec).unwrap_or_default();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = cache.iter().position(|(k, _)| *k == key) {
                let entry = cache.remove(at).expect("position is in range");
                let matcher = entry.1.clone();
                cache.push_back(entry);
                return Ok(matcher);
            }
        }
        let grammar = top_level_grammar(spec);
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| InvalidParam::new(field, cannot_enforce(&e.to_string())))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(InvalidParam::new(field, cannot_enforce(&e)));
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back((key, matcher.clone()));
        Ok(matcher)
    }

    /// The constraint of one sequence at the start of its output.
    pub fn constraint(&self, spec: &StructuredOutput) -> std::result::Result<Constraint, String> {
        let matcher = self
            .matcher(spec, "structured output")
            .map_err(|e| e.to_string())?;
        Ok(Constraint {
            matcher,
            consumed: 0,
            eos_token_ids: self.eos_token_ids.clone(),
        })
    }
}

fn cannot_enforce(error: &str) -> String {
    // llguidance's messages can run over several lines (context it adds); the first says it.
    let first = error.lines().next().unwrap_or(error).trim();
    format!("cannot be enforced: {first}")
}

/// llguidance's grammar for a specification.
fn top_level_grammar(spec: &StructuredOutput) -> TopLevelGrammar {
    match spec {
        StructuredOutput::JsonObject => json_grammar(serde_json::json!({"type": "object"})),
        StructuredOutput::JsonSchema { schema } => json_grammar(schema.clone()),
        StructuredOutput::Regex { pattern } => TopLevelGrammar::from_regex(pattern),
        StructuredOutput::Choice { options } => {
            let alternatives: Vec<String> =
                options.iter().map(|o| regex_syntax::escape(o)).collect();
            TopLevelGrammar::from_regex(&format!("(?:{})", alternatives.join("|")))
        }
        StructuredOutput::Grammar { lark } => TopLevelGrammar::from_lark(lark.clone()),
        StructuredOutput::ToolCalls {
            functions,
            answer,
            parallel,
        } => TopLevelGrammar::from_lark(tool_calls_lark(functions, answer, *parallel)),
    }
}

/// The hermes tool-call format as a Lark grammar: each call is `<tool_call>\n` + a JSON
/// object `{"name": <one of the functions>, "arguments": <valid against its parameters>}` +
/// `\n</tool_call>`. With `ToolAnswer::Auto` the answer is free text without `<tool_call>`
/// in it, or text that ends in the first `<tool_call>`, whose call then follows: the grammar
/// only binds once a call has begun.
fn tool_calls_lark(functions: &[ToolDefinition], answer: &ToolAnswer, parallel: bool) -> String {
    let calls: Vec<serde_json::Value> = functions
        .iter()
        .filter(|f| match answer {
            ToolAnswer::Named { name } => f.name == *name,
            _ => true,
        })
        .map(|f| {
            let parameters = match &f.parameters {
                serde_json::Value::Bool(true) => serde_json::json!({}),
                other => other.clone(),
            };
            serde_json::json!({
                "type": "object",
                "properties": {"name": {"const": f.name}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let call_schema = compact_json_schema(serde_json::json!({ "anyOf": calls }));
    let more = if parallel { " (\"\\n\" call)*" } else { "" };
    let start = match answer {
        ToolAnswer::Required | ToolAnswer::Named { .. } => format!("start: call{more}"),
        ToolAnswer::Auto => format!(
            "start: TEXT | PRE body{more}\n\
             TEXT: /(?s:.*)/ & ~/(?s:.*<tool_call>.*)/\n\
             PRE: /(?s:.*)<tool_call>/ & ~/(?s:.*<tool_call>.+)/"
        ),
        ToolAnswer::AutoJson { schema } => format!(
            "start: answer | call{more}\nanswer: %json {}",
            compact_json_schema(schema.clone())
        ),
    };
    format!(
        "%llguidance {{}}\n{start}\n\
         call: \"<tool_call>\" body\n\
         body: \"\\n\" arguments \"\\n</tool_call>\"\n\
         arguments: %json {call_schema}\n"
    )
}

/// A JSON Schema grammar with compact separators and no free whitespace.
fn json_grammar(schema: serde_json::Value) -> TopLevelGrammar {
    TopLevelGrammar::from_json_schema(compact_json_schema(schema))
}

/// `schema` with llguidance's options for compact JSON: Python's separators, no free
/// whitespace (a schema's own `x-guidance` is replaced).
fn compact_json_schema(mut schema: serde_json::Value) -> serde_json::Value {
    if schema == serde_json::Value::Bool(true) {
        schema = serde_json::json!({});
    }
    let options = JsonCompileOptions {
        item_separator: ", ".to_string(),
        key_separator: ": ".to_string(),
        whitespace_flexible: false,
        ..JsonCompileOptions::default()
    };
    if let Some(object) = schema.as_object_mut() {
        object.remove("x-guidance");
        options.apply_to(&mut schema);
    }
    schema
}

/// One sequence's grammar state.
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    /// How many of the sequence's output tokens the matcher has consumed.
    consumed: usize,
    eos_token_ids: Arc<[u32]>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("consumed", &self.consumed)
            .finish()
    }
}

impl Constraint {
    /// Consumes the output tokens produced since the last call (`output` is the sequence's
    /// whole output so far).
    pub fn advance(&mut self, output: &[u32]) -> std::result::Result<(), String> {
        if output.len() < self.consumed {
            let back = self.consumed - output.len();
            self.matcher.rollback(back).map_err(|e| e.to_string())?;
            self.consumed = output.len();
        }
        let new = &output[self.consumed..];
        if !new.is_empty() {
            self.matcher
                .consume_tokens(new)
                .map_err(|e| format!("the structured output's grammar refused a token: {e}"))?;
            self.consumed = output.len();
        }
        Ok(())
    }

    /// The tokens allowed next: the grammar's, with every EOS id where the grammar may end.
    pub fn mask(&mut self) -> std::result::Result<Mask, String> {
        let allowed = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| format!("the structured output's grammar failed: {e}"))?;
        Ok(Mask {
            eos_allowed: self.eos_token_ids.iter().any(|&id| allowed.is_allowed(id)),
            allowed,
            eos_token_ids: self.eos_token_ids.clone(),
        })
    }
}

/// The tokens one step may sample for a constrained sequence.
#[derive(Clone, Debug)]
pub struct Mask {
    allowed: SimpleVob,
    eos_allowed: bool,
    eos_token_ids: Arc<[u32]>,
}

impl Mask {
    /// A mask over `vocab` tokens allowing `tokens`, as a grammar's would: the
    /// end-of-sequence ids are all allowed where one of them is among `tokens`.
    pub fn from_tokens(vocab: usize, tokens: &[u32], eos_token_ids: &[u32]) -> Self {
        let mut allowed = SimpleVob::alloc(vocab);
        for &t in tokens.iter().filter(|&&t| (t as usize) < vocab) {
            allowed.allow_token(t);
        }
        Self {
            eos_allowed: eos_token_ids.iter().any(|t| tokens.contains(t)),
            allowed,
            eos_token_ids: Arc::from(eos_token_ids),
        }
    }

    pub fn is_allowed(&self, token: u32) -> bool {
        if self.eos_token_ids.contains(&token) {
            return self.eos_allowed;
        }
        (token as usize) < self.allowed.len() && self.allowed.is_allowed(token)
    }

    /// Writes the mask over tokens `0..32 * words.len()` as bits (token `t` is bit `t % 32` of
    /// word `t / 32`), set where [`Mask::is_allowed`] is true: what a device applies.
    pub fn write_words(&self, words: &mut [u32]) {
        let src = self.allowed.as_slice();
        let bits = self.allowed.len().min(32 * words.len());
        let full = bits / 32;
        words[..full].copy_from_slice(&src[..full]);
        words[full..].fill(0);
        if !bits.is_multiple_of(32) {
            words[full] = src[full] & ((1u32 << (bits % 32)) - 1);
        }
        for &id in self.eos_token_ids.iter() {
            if let Some(w) = words.get_mut(id as usize / 32) {
                let bit = 1u32 << (id % 32);
                *w = if self.eos_allowed {
                    *w | bit
                } else {
                    *w & !bit
                };
            }
        }
    }

    /// The lowest allowed token id, if any.
    pub fn first_allowed(&self) -> Option<u32> {
        if self.eos_allowed {
            return self.eos_token_ids.first().copied();
        }
        let mut first = None;
        self.allowed.iter_set_entries(|i| {
            if first.is_none() && !self.eos_token_ids.contains(&(i as u32)) {
                first = Some(i as u32);
            }
        });
        first
    }
}

/// Sets the logit of every token `mask` refuses to minus infinity.
pub fn apply_mask(logits: &mut [f32], mask: &Mask) {
    let eos: Vec<(usize, f32)> = mask
        .eos_token_ids
        .iter()
        .filter_map(|&id| logits.get(id as usize).map(|&l| (id as usize, l)))
        .collect();
    let bits = mask.allowed.len().min(logits.len());
    mask.allowed.iter_unset_entries(|i| {
        if i < bits {
            logits[i] = f32::NEG_INFINITY;
        }
    });
    for l in logits.iter_mut().skip(bits) {
        *l = f32::NEG_INFINITY;
    }
    for (id, l) in eos {
        logits[id] = if mask.eos_allowed {
            l
        } else {
            f32::NEG_INFINITY
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device's bits say what `is_allowed` says for every token of the words, the
    /// end-of-sequence ids following the grammar's verdict on any of them, nothing past the
    /// mask's vocabulary, and nothing left of what the words held before.
    #[test]
    fn a_masks_words_match_is_allowed() {
        let eos = [2u32, 40, 70];
        for (vocab, tokens) in [
            (70usize, vec![0u32, 5, 31, 32, 40, 69]),
            (70, vec![1, 33, 64]),
            (64, vec![63, 2]),
            (65, vec![]),
        ] {
            let mask = Mask::from_tokens(vocab, &tokens, &eos);
            let mut words = vec![u32::MAX; 3];
            mask.write_words(&mut words);
            for t in 0..96u32 {
                let bit = words[t as usize / 32] >> (t % 32) & 1 == 1;
                assert_eq!(
                    bit,
                    mask.is_allowed(t),
                    "vocab {vocab} {tokens:?}: token {t}"
                );
            }
        }
        let eos_allowed = Mask::from_tokens(70, &[40], &eos);
        assert!(eos_allowed.is_allowed(2) && eos_allowed.is_allowed(40));
        assert_eq!(eos_allowed.first_allowed(), Some(2));
        assert!(!Mask::from_tokens(70, &[1], &eos).is_allowed(40));
    }
}
