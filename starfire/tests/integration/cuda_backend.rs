//! `backend = "cuda"` on a machine without an NVIDIA driver: `starfire serve` (a `[[models]]`
//! entry) and `starfire worker --backend cuda` both stop at start with the engine's one-line
//! reason, never a panic and never serving a model they cannot run. (Where a driver is
//! present these tests say so and skip; `scripts/gpu-check` covers that side.)

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::rate_limits_e2e::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_starfire");
const REASON: &str = "no CUDA driver found; backend = \"cuda\" needs an NVIDIA GPU";

/// Runs `starfire` with `args` in a home of its own; it must exit (within a minute) by itself.
fn run_until_exit(home: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("STARFIRE_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .env("STARFIRE_HOME", home)
        .env("STARFIRE_WORKER_TOKEN", "worker-token-0123456789abcdefghij")
        .env("STARFIRE_KV_CACHE_MEMORY", (64u64 << 20).to_string())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("starfire {args:?} kept running with backend = \"cuda\" and no GPU");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn assert_stopped_with_the_reason(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(REASON),
        "stderr does not name the reason:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_and_worker_refuse_cuda_without_a_driver() {
    if engine::cuda::driver_present() {
        eprintln!("skipped: a CUDA driver is present here");
        return;
    }
    let model = engine::model_cache::find_default_model()
        .expect("the default model is in the cache (`starfire model fetch`)");
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("starfire.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nname = \"on-gpu\"\npath = {:?}\nbackend = \"cuda\"\ngpu_memory_utilization = 0.5\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let out = run_until_exit(
        home.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            &listen,
        ],
    );
    assert_stopped_with_the_reason(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("on-gpu"),
        "the error names the model"
    );

    let listen = format!("127.0.0.1:{}", free_port());
    let out = run_until_exit(
        home.path(),
        &[
            "worker",
            "--listen",
            &listen,
            "--backend",
            "cuda",
            "--model",
            model.to_str().unwrap(),
        ],
    );
    assert_stopped_with_the_reason(&out);

    // A share of the GPU, or a GPU, given on the command line: checked before the engine
    // starts, and only with the CUDA backend.
    let worker = |extra: &[&str]| {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec![
            "worker",
            "--listen",
            &listen,
            "--model",
            model.to_str().unwrap(),
        ];
        args.extend(extra);
        run_until_exit(home.path(), &args)
    };
    assert_stopped_with_the_reason(&worker(&[
        "--backend",
        "cuda",
        "--gpu-memory-utilization",
        "0.5",
    ]));
    assert_stopped_with_the_reason(&worker(&["--backend", "cuda", "--cuda-device", "1"]));
    for (extra, says) in [
        (
            &["--backend", "cuda", "--gpu-memory-utilization", "1.5"][..],
            "gpu_memory_utilization must be above 0 and at most 1, not 1.5",
        ),
        (
            &["--gpu-memory-utilization", "0.5"][..],
            "gpu_memory_utilization is for backend = \"cuda\"",
        ),
        (
            &["--cuda-device", "1"][..],
            "cuda_device is for backend = \"cuda\"",
        ),
    ] {
        let out = worker(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
