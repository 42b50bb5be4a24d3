//! The fuzz targets without libFuzzer, on stable and uninstrumented, as CI runs them with the
//! rest of the workspace: every seed of `fuzz/corpus/TARGET/`, then a fixed number of seeded
//! mutations of them (bit flips, byte inserts and deletes, splices between seeds, interesting
//! integers, tokens of the formats). Bounded by iterations, never by time; a failure prints
//! the input that failed, to add to the seeds once the bug is fixed.
//!
//! `chat_template` and `chat_request` need the default model in the cache (CI fetches it
//! first): without it they fail and say to run `target/release/starfire model fetch`.

use std::path::PathBuf;

use starfire_fuzz::{run, TARGETS};

/// A tiny deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    16,
    32,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 60,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX,
];

const TOKENS: &[&[u8]] = &[
    b"\n\n",
    b"\r\n\r\n",
    b"data: ",
    b"data: [DONE]\n\n",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"\\u0000",
    b"\\ud800",
    b"<|im_start|>",
    b"<|im_end|>",
    b"<tool_call>",
    b"{{",
    b"{%",
    b"t=",
    b",v1=",
    b"\"type\":\"chat.request\"",
    b"\"id\":\"",
    b"\"stream\":true",
    b"\"tools\":[",
    b"\"response_format\":",
    b"\"json_schema\"",
    b"\"max_tokens\":",
    b"\"n\":",
    b"\"logprobs\":true",
    b"general.alignment",
    b"tokenizer.ggml.tokens",
    b"\xff\xfe",
    "é中😀".as_bytes(),
];

fn mutate(rng: &mut Rng, seed: &[u8], seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] = rng.next_u64() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(16));
                out.drain(at..at + n);
            }
            4 if len > 0 => {
                // Duplicate a range in place.
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                let copy = out[at..at + n].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, copy);
            }
            5 => {
                // Splice: a head of this input and a tail of another seed.
                let other = &seeds[rng.below(seeds.len())];
                let head = rng.below(out.len() + 1);
                let tail = rng.below(other.len() + 1);
                out.truncate(head);
                out.extend_from_slice(&other[tail..]);
            }
            6 if len > 0 => {
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.below(4)];
                let at = rng.below(len);
                let bytes = value.to_le_bytes();
                for (i, b) in bytes[..width].iter().enumerate() {
                    if let Some(slot) = out.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            7 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                out.splice(at..at, token.iter().copied());
            }
            _ => {
                // A number written as text, where JSON or a header has one.
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let text = if rng.below(2) == 0 {
                    value.to_string()
                } else {
                    (value as i64).to_string()
                };
                let at = rng.below(len + 1);
                out.splice(at..at, text.into_bytes());
            }
        }
    }
    out.truncate(64 * 1024);
    out
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// Runs `target` on an input; a panic names the target and shows the input.
fn check(target: &str, input: &[u8], what: &str) {
    let result = std::panic::catch_unwind(|| run(target, input));
    if let Err(panic) = result {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        panic!(
            "fuzz target `{target}` failed on {what}: {message}\ninput ({} bytes): {:?}",
            input.len(),
            String::from_utf8_lossy(input)
        );
    }
}

fn smoke(target: &str, iterations: usize) {
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "fuzz/corpus/{target}/ has no seeds");
    for (i, seed) in seeds.iter().enumerate() {
        check(target, seed, &format!("seed #{i}"));
    }
    let mut rng = Rng(0x5eed_0000 ^ (target.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for i in 0..iterations {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, &seeds);
        check(target, &input, &format!("mutation #{i}"));
    }
}

#[test]
fn every_target_has_small_seeds() {
    for target in TARGETS {
        let seeds = seeds(target);
        assert!(seeds.len() >= 3, "fuzz/corpus/{target}/ needs seeds");
        for seed in seeds {
            assert!(seed.len() < 64 * 1024, "a seed of {target} is over 64 KiB");
        }
    }
}

#[test]
fn gguf() {
    smoke("gguf", 30_000);
}

#[test]
fn chat_template() {
    smoke("chat_template", 12_000);
}

#[test]
fn chat_request() {
    smoke("chat_request", 120_000);
}

#[test]
fn ws_frame() {
    smoke("ws_frame", 1_500_000);
}

#[test]
fn stripe_webhook() {
    smoke("stripe_webhook", 300_000);
}

#[test]
fn sse() {
    smoke("sse", 40_000);
}
