//! Shared pieces of the benchmarks: distinct prompts and percentile helpers.

/// `n` distinct prompts of about `len` tokens each (every prompt starts differently, so no
/// prefix is shared).
pub fn distinct_prompts(tokenizer: &engine::Tokenizer, n: usize, len: usize) -> Vec<Vec<u32>> {
    const WORDS: &[&str] = &[
        "river", "stone", "light", "garden", "engine", "market", "winter", "signal", "forest",
        "harbor", "copper", "violet",
    ];
    (0..n)
        .map(|i| {
            let mut text = format!("Story {i}:");
            let mut k = i;
            while tokenizer
                .encode(&text, false)
                .map(|t| t.len())
                .unwrap_or(len)
                < len
            {
                k = k.wrapping_mul(2654435761).wrapping_add(12345);
                text.push(' ');
                text.push_str(WORDS[(k >> 7) % WORDS.len()]);
            }
            let mut ids = tokenizer.encode(&text, false).expect("tokenize");
            ids.truncate(len);
            ids
        })
        .collect()
}

/// The `q`-th percentile (0..=100) of `values` (nearest rank), or 0 when empty.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
    values[rank.min(values.len()) - 1]
}
