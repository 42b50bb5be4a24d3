//! Text ⇄ token ids, built with the `tokenizers` crate from GGUF metadata or `tokenizer.json`.
//!
//! GGUF files carry a byte-level BPE vocabulary (`tokenizer.ggml.tokens`, `.merges`,
//! `.token_type`) and name llama.cpp's pre-tokenizer in `tokenizer.ggml.pre`. We rebuild the same
//! pipeline: the pre-tokenizer's split rules, byte-level mapping, BPE merges, and every control or
//! user-defined token as a special token that text may contain (`<|im_start|>` is one token).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::error::{EngineError, Result};
use crate::gguf::Metadata;
use crate::structured::Grammars;

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Llama 3's split rule (numbers in groups of at most three).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split rule (every digit on its own).
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer plus the ids the engine needs to know about.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos_token_id: Option<u32>,
    eos_token_ids: Vec<u32>,
    add_bos: bool,
    special_ids: Vec<u32>,
    grammars: Arc<OnceLock<Arc<Grammars>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_token_id", &self.bos_token_id)
            .field("eos_token_ids", &self.eos_token_ids)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(md: &Metadata) -> Result<Self> {
        let model = md.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(EngineError::Tokenizer(format!(
                "tokenizer model `{model}` is not supported (supported: gpt2, byte-level BPE)"
            )));
        }
        let tokens = md.string_array("tokenizer.ggml.tokens")?;
        let merges = md.string_array("tokenizer.ggml.merges")?;
        let types = md
            .i32_array("tokenizer.ggml.token_type")
            .unwrap_or_default();
        let pre = md
            .string("tokenizer.ggml.pre")
            .unwrap_or_else(|_| "default".to_string());

        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| EngineError::Tokenizer(format!("malformed merge `{m}`")))
            })
            .collect::<Result<Vec<_>>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| EngineError::Tokenizer(format!("BPE: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer_for(&pre)?));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        let special: Vec<AddedToken> = types
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
            .filter_map(|(i, _)| tokens.get(i))
            .map(|content| AddedToken::from(content.clone(), true).normalized(false))
            .collect();
        inner
            .add_special_tokens(special.iter().cloned())
            .map_err(|e| EngineError::Tokenizer(format!("special tokens: {e}")))?;
        let special_ids = special
            .iter()
            .filter_map(|t| inner.token_to_id(&t.content))
            .collect();

        let bos_token_id = md.u32("tokenizer.ggml.bos_token_id").ok();
        let eos = md.u32("tokenizer.ggml.eos_token_id").ok();
        let eot = md.u32("tokenizer.ggml.eot_token_id").ok();
        let mut eos_token_ids: Vec<u32> = eos.into_iter().chain(eot).collect();
        eos_token_ids.dedup();
        let add_bos = md.bool("tokenizer.ggml.add_bos_token").unwrap_or(false);
        Ok(Self {
            inner,
            bos_token_id,
            eos_token_ids,
            add_bos,
            special_ids,
            grammars: Arc::default(),
        })
    }

    /// `vocab_size` tokens named `<0>`, `<1>`, ..., split on whitespace, no special tokens and
    /// no EOS: for models of random weights (the GPU check, benchmarks), where only ids matter.
    pub fn numbered(vocab_size: usize) -> Result<Self> {
        let vocab: tokenizers::models::bpe::Vocab = (0..vocab_size as u32)
            .map(|i| (format!("<{i}>"), i))
            .collect();
        let model = tokenizers::models::wordlevel::WordLevel::builder()
            .vocab(vocab)
            .unk_token("<0>".into())
            .build()
            .map_err(|e| EngineError::Tokenizer(format!("word-level vocabulary: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_pre_tokenizer(Some(PreTokenizerWrapper::WhitespaceSplit(
            tokenizers::pre_tokenizers::whitespace::WhitespaceSplit,
        )));
        Ok(Self {
            inner,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            add_bos: false,
            special_ids: Vec::new(),
            grammars: Arc::default(),
        })
    }

    /// Loads `tokenizer.json`; BOS/EOS come from `tokenizer_config.json` when present.
    pub fn from_hf_dir(dir: &Path, eos_from_config: &[u32]) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| EngineError::Tokenizer(format!("tokenizer.json: {e}")))?;
        let cfg: serde_json::Value = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        let token_id = |key: &str| {
            let v = cfg.get(key)?;
            let content = v
                .as_str()
                .or_else(|| v.get("content").and_then(|c| c.as_str()))?;
            inner.token_to_id(content)
        };
        let bos_token_id = token_id("bos_token");
        let mut eos_token_ids: Vec<u32> = token_id("eos_token").into_iter().collect();
        for id in eos_from_config {
            if !eos_token_ids.contains(id) {
                eos_token_ids.push(*id);
            }
        }
        let add_bos = cfg
            .get("add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let special_ids = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        Ok(Self {
            inner,
            bos_token_id,
            eos_token_ids,
            add_bos,
            special_ids,
            grammars: Arc::default(),
        })
    }

    /// Token ids of `text`. Special tokens written in the text become one token each; BOS is
    /// prepended when the model asks for it and `add_special` is set.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_special && self.add_bos {
            ids.extend(self.bos_token_id);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// The text of `ids`, optionally without special tokens.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// The vocabulary string of one token (byte-level form), e.g. for logprob listings.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos_token_id
    }

    /// Ids that end generation (EOS, and EOT where the model has one).
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_token_ids
    }

    /// The `tokenizers` pipeline underneath (its vocabulary as `tokenizer.json` states it).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The grammar compiler over this vocabulary (structured outputs), built on first use
    /// and shared by every clone of this tokenizer.
    pub fn grammars(&self) -> Result<Arc<Grammars>> {
        if let Some(g) = self.grammars.get() {
            return Ok(g.clone());
        }
        let built = Arc::new(Grammars::new(self)?);
        Ok(self.grammars.get_or_init(|| built).clone())
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// The text a token id stands for, bytes and all, for `bytes` fields of logprobs.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.decode(&[id], false)
            .map(String::into_bytes)
            .unwrap_or_default()
    }
}

/// llama.cpp's pre-tokenizer for a `tokenizer.ggml.pre` name, as a `tokenizers` pipeline.
fn pre_tokenizer_for(pre: &str) -> Result<PreTokenizerWrapper> {
    let byte_level =
        |use_regex| PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, use_regex));
    let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(
            SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| EngineError::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
        Ok(PreTokenizerWrapper::Split(split))
    };
    let pipeline = match pre {
        // Every digit on its own, then GPT-2's rule (llama.cpp: `\p{N}` then the GPT-2 regex).
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            vec![PreTokenizerWrapper::Digits(Digits::new(true)), byte_level(true)]
        }
        "gpt-2" | "gpt2" | "default" | "phi-2" | "jina-es" | "jina-de" | "olmo" | "jais" | "mpt" => vec![byte_level(true)],
        "llama-bpe" | "llama3" | "falcon3" | "dbrx" | "smaug-bpe" => vec![split(LLAMA3_PATTERN)?, byte_level(false)],
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" => vec![split(QWEN2_PATTERN)?, byte_level(false)],
        other => {
            return Err(EngineError::Tokenizer(format!(
                "pre-tokenizer `{other}` is not supported (supported: smollm, starcoder, gpt-2, llama-bpe, qwen2 and aliases)"
            )))
        }
    };
    Ok(PreTokenizerWrapper::Sequence(Sequence::new(pipeline)))
}

/// Turns a growing list of token ids into text pieces, never emitting a broken UTF-8 sequence.
///
/// It re-decodes a short window twice, with and without the newest tokens, and emits the
/// difference once the result no longer ends in an incomplete character (U+FFFD), as vLLM and
/// TGI do. The decoding function is a parameter so any tokenizer (or a test double) can drive it.
#[derive(Clone, Debug, Default)]
pub struct IncrementalDecoder {
    /// `ids[prefix_offset..read_offset]` is context already emitted; `ids[read_offset..]` is not.
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
    skip_special_tokens: bool,
}

impl IncrementalDecoder {
    pub fn new(skip_special_tokens: bool) -> Self {
        Self {
            skip_special_tokens,
            ..Self::default()
        }
    }

    /// Starts after `context` (e.g. the prompt's last tokens): decoders that drop a leading
    /// space or merge bytes at the start of a sequence then decode the first piece right.
    pub fn with_context(context: &[u32], skip_special_tokens: bool) -> Self {
        Self {
            ids: context.to_vec(),
            prefix_offset: 0,
            read_offset: context.len(),
            skip_special_tokens,
        }
    }

    pub fn skip_special_tokens(&self) -> bool {
        self.skip_special_tokens
    }

    /// Adds one token and returns the text it completes (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        let skip = self.skip_special_tokens;
        Ok(self.push_with(|ids| tokenizer.decode(ids, skip).unwrap_or_default(), id))
    }

    /// [`push`](Self::push) with any whole-sequence decoder (lossy: invalid UTF-8 as U+FFFD).
    pub fn push_with(&mut self, decode: impl Fn(&[u32]) -> String, id: u32) -> String {
        self.ids.push(id);
        let prefix = decode(&self.ids[self.prefix_offset..self.read_offset]);
        let full = decode(&self.ids[self.prefix_offset..]);
        if full.len() <= prefix.len() || full.ends_with('\u{FFFD}') {
            // Nothing new, or a character still incomplete: wait for more tokens.
            return String::new();
        }
        let piece = match full.strip_prefix(prefix.as_str()) {
            Some(p) => p.to_string(),
            // The decoder rewrote the context (rare): emit what lies past its old length.
            None => full[floor_char_boundary(&full, prefix.len())..].to_string(),
        };
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        // Keep the window short: nothing before prefix_offset is decoded again.
        if self.prefix_offset > 64 {
            self.ids.drain(..self.prefix_offset);
            self.read_offset -= self.prefix_offset;
            self.prefix_offset = 0;
        }
        piece
    }

    /// Text held back because it was an incomplete character, decoded lossily at the end.
    pub fn flush(&mut self, tokenizer: &Tokenizer) -> Result<String> {
        let skip = self.skip_special_tokens;
        let prefix = tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], skip)?;
        let full = tokenizer.decode(&self.ids[self.prefix_offset..], skip)?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(full
            .get(floor_char_boundary(&full, prefix.len())..)
            .filter(|_| full.len() > prefix.len())
            .unwrap_or("")
            .to_string())
    }
}

/// The largest char boundary of `text` at or below `at`.
pub fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}
