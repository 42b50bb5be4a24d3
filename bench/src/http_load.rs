//! Closed-loop HTTP load on an OpenAI-compatible chat endpoint (Starfire's gateway or
//! llama.cpp's server): client threads that each send streamed chats in turn, and what they saw
//! (time to the first content chunk, the gaps between chunks, token counts, errors).

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::percentile;

/// What one closed loop of clients did.
#[derive(Debug, Clone)]
pub struct HttpReport {
    pub concurrency: usize,
    pub requests: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub output_tokens: usize,
    pub prompt_tokens: usize,
    pub wall_seconds: f64,
    pub output_tokens_per_second: f64,
    pub ttft: Vec<f64>,
    pub itl: Vec<f64>,
}

impl HttpReport {
    pub fn to_json(&self) -> Value {
        let (mut ttft, mut itl) = (self.ttft.clone(), self.itl.clone());
        json!({
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "first_error": self.first_error,
            "output_tokens": self.output_tokens,
            "wall_seconds": self.wall_seconds,
            "output_tokens_per_second": self.output_tokens_per_second,
            "requests_per_second": (self.requests - self.errors) as f64 / self.wall_seconds.max(1e-9),
            "ttft_p50_ms": percentile(&mut ttft, 50.0) * 1e3,
            "ttft_p99_ms": percentile(&mut ttft, 99.0) * 1e3,
            "itl_p50_ms": percentile(&mut itl, 50.0) * 1e3,
            "itl_p99_ms": percentile(&mut itl, 99.0) * 1e3,
        })
    }
}

#[derive(Default)]
struct ClientStats {
    requests: usize,
    errors: usize,
    first_error: Option<String>,
    output_tokens: usize,
    prompt_tokens: usize,
    ttft: Vec<f64>,
    itl: Vec<f64>,
}

/// Where the closed-loop clients send their chats.
pub struct Target {
    /// Up to `/v1`.
    pub base_url: String,
    /// The `authorization` header, if the server wants one.
    pub auth: Option<String>,
    /// llama.cpp's server: its prompt cache is turned off per request too.
    pub llama_server: bool,
}

/// What each client sends.
#[derive(Debug, Clone)]
pub struct Load {
    /// The `model` of every request.
    pub model: String,
    pub requests_per_client: usize,
    /// `max_tokens` (with `ignore_eos`: every request generates this many).
    pub output_tokens: usize,
    /// When set, a client sends no further request once it is raised (background load).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// `concurrency` client threads, each sending `requests_per_client` streamed chats in turn;
/// client `c`'s `i`-th request asks about `texts[c * requests_per_client + i]`.
pub fn http_closed_loop(
    target: &Target,
    concurrency: usize,
    texts: &[String],
    load: &Load,
) -> HttpReport {
    let url = format!("{}/chat/completions", target.base_url);
    let auth = target.auth.clone().unwrap_or_default();
    let started = Instant::now();
    let clients: Vec<ClientStats> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..concurrency)
            .map(|c| {
                let (url, auth) = (&url, &auth);
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(600)))
                        .build()
                        .into();
                    let mut st = ClientStats::default();
                    for i in 0..load.requests_per_client {
                        if load
                            .stop
                            .as_ref()
                            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
                        {
                            break;
                        }
                        let text = &texts[c * load.requests_per_client + i];
                        let mut body = json!({
                            "model": load.model,
                            "messages": [{"role": "user", "content": text}],
                            "max_tokens": load.output_tokens,
                            "temperature": 0,
                            "ignore_eos": true,
                            "stream": true,
                            "stream_options": {"include_usage": true},
                        });
                        if target.llama_server {
                            body["cache_prompt"] = json!(false);
                        }
                        st.requests += 1;
                        if let Err(e) = stream_one(&agent, url, auth, &body, &mut st) {
                            st.errors += 1;
                            st.first_error.get_or_insert(e);
                        }
                    }
                    st
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut report = HttpReport {
        concurrency,
        requests: 0,
        errors: 0,
        first_error: None,
        output_tokens: 0,
        prompt_tokens: 0,
        wall_seconds: wall,
        output_tokens_per_second: 0.0,
        ttft: Vec::new(),
        itl: Vec::new(),
    };
    for c in clients {
        report.requests += c.requests;
        report.errors += c.errors;
        report.first_error = report.first_error.or(c.first_error);
        report.output_tokens += c.output_tokens;
        report.prompt_tokens += c.prompt_tokens;
        report.ttft.extend(c.ttft);
        report.itl.extend(c.itl);
    }
    report.output_tokens_per_second = report.output_tokens as f64 / wall.max(1e-9);
    report
}

/// Sends one streamed chat and reads it to `[DONE]`, recording the time to the first content
/// chunk, the gaps between content chunks, and the usage chunk's token counts.
fn stream_one(
    agent: &ureq::Agent,
    url: &str,
    auth: &str,
    body: &Value,
    st: &mut ClientStats,
) -> Result<(), String> {
    let sent = Instant::now();
    let mut req = agent.post(url).content_type("application/json");
    if !auth.is_empty() {
        req = req.header("authorization", auth);
    }
    let resp = req
        .send(body.to_string().as_bytes())
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let mut reader = BufReader::new(resp.into_body().into_reader());
    if status != 200 {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut text);
        return Err(format!("HTTP {status}: {text}"));
    }
    let mut last: Option<Instant> = None;
    let mut usage = None;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("reading the stream: {e}"))?;
        if n == 0 {
            return Err("the stream ended without [DONE]".to_owned());
        }
        let Some(data) = line.trim_end().strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| format!("bad chunk {data}: {e}"))?;
        if chunk.get("error").is_some() {
            return Err(format!("error event: {data}"));
        }
        let content = chunk["choices"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
        });
        if content {
            let now = Instant::now();
            match last {
                None => st.ttft.push((now - sent).as_secs_f64()),
                Some(t) => st.itl.push((now - t).as_secs_f64()),
            }
            last = Some(now);
        }
        if chunk["usage"].is_object() {
            usage = Some(chunk["usage"].clone());
        }
    }
    let usage = usage.ok_or("no usage chunk before [DONE]")?;
    let count = |k: &str| usage[k].as_u64().unwrap_or(0) as usize;
    st.output_tokens += count("completion_tokens");
    st.prompt_tokens += count("prompt_tokens");
    Ok(())
}
