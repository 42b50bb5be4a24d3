//! Shared pieces of the benchmarks: distinct prompts, percentile helpers, and the `starfire`
//! binary the process benchmarks start.

pub mod http_load;
pub mod llama_cpp;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// The `starfire` binary next to the running benchmark (`cargo build --release --bin starfire`).
pub fn starfire_binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe()?
        .parent()
        .map(|d| d.join("starfire"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no starfire binary next to this one: cargo build --release --bin starfire"
            )
        })
}

/// A free loopback port (bound, then released for a server or child process to take).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The CPU's model name as the kernel reports it (empty where it does not).
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Waits until `GET path` on the loopback `port` answers 200, for at most `limit`.
pub fn wait_for_ok(port: u16, path: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut head = String::new();
            let _ = BufReader::new(s).read_line(&mut head);
            if head.contains(" 200 ") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("nothing answered 200 on 127.0.0.1:{port}{path}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
