//! Incremental detokenization and stop strings.
//!
//! Stop strings are checked on text, not tokens: "\n\n" may arrive as one token or two. The
//! real detokenizer wraps the engine's tokenizer; any implementation must return only text
//! that is final (never half a UTF-8 character; a piece may be empty while bytes pile up).

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

/// The largest char boundary of `text` at or below `at`.
pub fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

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
