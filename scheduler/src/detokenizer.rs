//! Incremental detokenization and stop strings.
//!
//! Stop strings are checked on text, not tokens: "\n\n" may arrive as one token or two. The
//! real detokenizer wraps the engine's tokenizer; any implementation must return only text
//! that is final (never half a UTF-8 character; a piece may be empty while bytes pile up).
//!
//! `OffsetDetokenizer` builds such streams from any whole-sequence decoder (`TokenDecoder`,
//! e.g. a tokenizer's `decode(ids, skip_special_tokens)`), with the prefix/read-offset method
//! of vLLM and TGI: decode a short window twice, with and without the new token, and emit the
//! difference once it no longer ends in a replacement character.

use std::sync::Arc;

use engine::IncrementalDecoder;

/// Makes one decoding stream per sequence.
pub trait Detokenizer: Send + Sync {
    /// A stream for text that follows `prompt_token_ids` (context for tokenizers whose
    /// pieces depend on the previous token, e.g. a leading-space marker).
    fn stream(&self, prompt_token_ids: &[u32], skip_special_tokens: bool) -> Box<dyn DecodeStream>;
}

/// Turns one sequence's tokens into text, one token at a time.
pub trait DecodeStream: Send {
    /// Feeds the next token; returns the text that became final with it.
    fn step(&mut self, token_id: u32) -> String;
}

/// Decodes a whole token sequence to text (invalid or partial UTF-8 as U+FFFD).
pub trait TokenDecoder: Send + Sync + 'static {
    fn decode(&self, token_ids: &[u32], skip_special_tokens: bool) -> String;
}

/// Incremental detokenization over a whole-sequence decoder.
pub struct OffsetDetokenizer<D> {
    decoder: Arc<D>,
}

impl<D: TokenDecoder> OffsetDetokenizer<D> {
    pub fn new(decoder: Arc<D>) -> Self {
        Self { decoder }
    }
}

/// Prompt tokens kept as context: enough for decoders that drop a leading space or merge
/// bytes at the start of a sequence (vLLM uses 5).
const CONTEXT_TOKENS: usize = 5;

impl<D: TokenDecoder> Detokenizer for OffsetDetokenizer<D> {
    fn stream(&self, prompt_token_ids: &[u32], skip_special_tokens: bool) -> Box<dyn DecodeStream> {
        let context = &prompt_token_ids[prompt_token_ids.len().saturating_sub(CONTEXT_TOKENS)..];
        Box::new(OffsetDecodeStream {
            decoder: self.decoder.clone(),
            inner: IncrementalDecoder::with_context(context, skip_special_tokens),
        })
    }
}

/// The engine's incremental decoder driven by a [`TokenDecoder`].
struct OffsetDecodeStream<D> {
    decoder: Arc<D>,
    inner: IncrementalDecoder,
}

impl<D: TokenDecoder> DecodeStream for OffsetDecodeStream<D> {
    fn step(&mut self, token_id: u32) -> String {
        let skip = self.inner.skip_special_tokens();
        let decoder = &self.decoder;
        self.inner
            .push_with(|ids| decoder.decode(ids, skip), token_id)
    }
}

/// A detokenizer that produces no text (token-only clients; stop strings never match).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoText;

impl Detokenizer for NoText {
    fn stream(&self, _: &[u32], _: bool) -> Box<dyn DecodeStream> {
        Box::new(NoText)
    }
}

impl DecodeStream for NoText {
    fn step(&mut self, _: u32) -> String {
        String::new()
    }
}

/// Looks for a stop string that ends inside text appended after byte `prev_len`. Returns the
/// length to cut the text to and the stop string that matched (the earliest match wins).
pub fn find_stop_string(
    text: &str,
    prev_len: usize,
    stops: &[String],
    include_stop_str: bool,
) -> Option<(usize, String)> {
    let mut best: Option<(usize, &String)> = None;
    for stop in stops {
        if stop.is_empty() {
            continue;
        }
        // A match must end in the new text, or it would have been found a step earlier.
        let mut from = prev_len.saturating_sub(stop.len() - 1);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        if let Some(off) = text[from..].find(stop.as_str()) {
            let at = from + off;
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, stop));
            }
        }
    }
    best.map(|(at, stop)| {
        let cut = if include_stop_str {
            at + stop.len()
        } else {
            at
        };
        (cut, stop.clone())
    })
}

/// How many bytes at the end of unfinished text to hold back: they might be the start of a
/// stop string, which must never reach the client.
pub fn stop_holdback(stops: &[String]) -> usize {
    stops
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1)
}

pub use engine::tokenizer::floor_char_boundary;

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes with the fake vocabulary's byte pieces, lossily, like a byte-level BPE.
    struct Bytes;
    impl TokenDecoder for Bytes {
        fn decode(&self, ids: &[u32], _: bool) -> String {
            let bytes: Vec<u8> = ids
                .iter()
                .flat_map(|&t| crate::testing::FakeDetokenizer::piece(t))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    #[test]
    fn offset_stream_adds_up_to_the_whole_decode() {
        let d = OffsetDetokenizer::new(Arc::new(Bytes));
        let prompt = [29u32, 1, 2];
        let out: Vec<u32> = (0..300)
            .map(|i| [0, 29, 30, 28, 26, 35, 27, 31][i % 8])
            .collect();
        let mut s = d.stream(&prompt, true);
        let pieces: Vec<String> = out.iter().map(|&t| s.step(t)).collect();
        assert_eq!(pieces.concat(), Bytes.decode(&out, true));
        assert_eq!(pieces[1], "", "half of '€' waits for its last byte");
        assert_eq!(pieces[2], "€");
    }

    #[test]
    fn stop_string_cut_is_exact() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(find_stop_string("abcEN", 3, &stops, false), None);
        assert_eq!(
            find_stop_string("abcEND", 5, &stops, false),
            Some((3, "END".into()))
        );
        assert_eq!(
            find_stop_string("abcEND", 5, &stops, true),
            Some((6, "END".into()))
        );
        // Earliest match wins even when listed later.
        assert_eq!(
            find_stop_string("a\n\nEND", 1, &stops, false),
            Some((1, "\n\n".into()))
        );
        // Multibyte text before the window does not panic.
        assert_eq!(
            find_stop_string("ééEND", 5, &stops, false),
            Some((4, "END".into()))
        );
        assert_eq!(stop_holdback(&stops), 2);
        assert_eq!(stop_holdback(&[]), 0);
        assert_eq!(floor_char_boundary("é", 1), 0);
    }
}
