//! llama.cpp beside Starfire in the same run: finds a build of `llama-bench` and
//! `llama-server`, runs them on the same GGUF with the same thread count, and reports what
//! they measured. No reference figure is kept anywhere: without a build, the benchmarks say so
//! and print no ratio.
//!
//! Where the build is looked for: `--llama-cpp DIR` or `LLAMA_CPP_DIR` (a folder holding the
//! binaries, or a `scripts/build-llama-cpp` folder), else `target/llama.cpp` of this
//! workspace, where `scripts/build-llama-cpp` puts it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// A llama.cpp build with both binaries.
#[derive(Clone, Debug)]
pub struct LlamaCpp {
    pub bin: PathBuf,
}

impl LlamaCpp {
    /// The build named by `flag` (the value of `--llama-cpp`), `LLAMA_CPP_DIR`, or the
    /// workspace's `target/llama.cpp`; `Err` says where it looked.
    pub fn find(flag: Option<&str>) -> Result<Self, String> {
        let mut tried = Vec::new();
        let named = flag
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("LLAMA_CPP_DIR").map(PathBuf::from));
        let roots: Vec<PathBuf> = match named {
            Some(dir) => vec![dir],
            None => workspace_target()
                .map(|t| t.join("llama.cpp"))
                .into_iter()
                .collect(),
        };
        for root in roots {
            for bin in [
                root.clone(),
                root.join("src/build/bin"),
                root.join("build/bin"),
            ] {
                if bin.join("llama-bench").is_file() && bin.join("llama-server").is_file() {
                    return Ok(Self { bin });
                }
                tried.push(bin.display().to_string());
            }
        }
        Err(format!(
            "no llama.cpp build (llama-bench and llama-server) in {}: run scripts/build-llama-cpp \
             or set LLAMA_CPP_DIR",
            tried.join(", ")
        ))
    }

    /// `llama-bench` for one repetition of prompt processing over `prompt` tokens and of
    /// generation of `gen` tokens: (pp tokens/s, tg tokens/s).
    pub fn bench(
        &self,
        model: &Path,
        threads: usize,
        prompt: usize,
        gen: usize,
    ) -> anyhow::Result<(f64, f64)> {
        let out = Command::new(self.bin.join("llama-bench"))
            .arg("-m")
            .arg(model)
            .args(["-t", &threads.to_string()])
            .args(["-p", &prompt.to_string(), "-n", &gen.to_string()])
            .args(["-r", "1", "-o", "json"])
            .stderr(Stdio::null())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "llama-bench failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let runs: Vec<Value> = serde_json::from_slice(&out.stdout)?;
        let rate = |want_prompt: bool| {
            runs.iter()
                .find(|r| {
                    let np = r["n_prompt"].as_u64().unwrap_or(0);
                    let ng = r["n_gen"].as_u64().unwrap_or(0);
                    if want_prompt {
                        np > 0 && ng == 0
                    } else {
                        ng > 0 && np == 0
                    }
                })
                .and_then(|r| r["avg_ts"].as_f64())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "llama-bench printed no {} result",
                        if want_prompt { "pp" } else { "tg" }
                    )
                })
        };
        Ok((rate(true)?, rate(false)?))
    }

    /// Starts `llama-server` on the loopback `port` with `slots` parallel slots of `ctx_per_slot`
    /// tokens each and waits until it answers `/health`.
    pub fn server(
        &self,
        model: &Path,
        threads: usize,
        slots: usize,
        ctx_per_slot: usize,
        port: u16,
    ) -> anyhow::Result<LlamaServer> {
        let mut child = Command::new(self.bin.join("llama-server"))
            .arg("-m")
            .arg(model)
            .args(["-t", &threads.to_string(), "-tb", &threads.to_string()])
            .args(["-np", &slots.to_string()])
            .args(["-c", &(slots * ctx_per_slot).to_string()])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // Prompt cache off, as the benchmarks' prompts are all distinct anyway.
            .args([
                "--jinja",
                "--no-webui",
                "--no-cache-prompt",
                "--cache-ram",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // Drain its log so it never blocks on a full pipe; keep the tail for errors.
        let stderr = child.stderr.take().expect("piped");
        let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut t = sink.lock().unwrap();
                t.push(line);
                if t.len() > 20 {
                    t.remove(0);
                }
            }
        });
        let server = LlamaServer { child, port };
        if let Err(e) = crate::wait_for_ok(port, "/health", Duration::from_secs(120)) {
            anyhow::bail!(
                "llama-server did not start: {e}: {:?}",
                tail.lock().unwrap()
            );
        }
        Ok(server)
    }
}

/// A running `llama-server`, stopped when dropped.
pub struct LlamaServer {
    child: Child,
    pub port: u16,
}

impl LlamaServer {
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/` of this workspace: the folder above the running benchmark's profile folder.
fn workspace_target() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.parent()?.parent().map(Path::to_path_buf)
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// What the benchmarks print about the machine: CPU model, SIMD flags, the kernel path.
pub fn machine() -> Value {
    json!({
        "cpu": crate::cpu_name(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_flags": engine::kernels::cpu::cpu_flags(),
        "kernel_path": engine::kernels::cpu::isa().name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn find_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = LlamaCpp::find(Some(dir.path().to_str().unwrap())).unwrap_err();
        assert!(err.contains("scripts/build-llama-cpp"), "{err}");
        for b in ["llama-bench", "llama-server"] {
            std::fs::write(dir.path().join(b), "").unwrap();
        }
        assert_eq!(
            LlamaCpp::find(Some(dir.path().to_str().unwrap()))
                .unwrap()
                .bin,
            dir.path()
        );
    }
}
