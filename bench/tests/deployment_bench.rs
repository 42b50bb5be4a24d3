//! `deployment_bench --quick` end to end on a small load: the shared worker, the gateway, the
//! deployment's pinned replica and both phases run, every request succeeds, and the JSON has
//! the figures the note quotes. (The isolation ratio itself is the benchmark's to report, not
//! a test's to assert: the machine is shared.)

use std::process::Command;

use serde_json::Value;

#[test]
fn the_isolation_benchmark_runs_both_phases_without_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_deployment_bench"))
        .args(["--quick", "--requests-per-client", "2", "--noisy", "8"])
        .output()
        .expect("run deployment_bench");
    assert!(
        out.status.success(),
        "deployment_bench failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("deployment_bench prints JSON");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["noise"]["errors"], 0, "{r}");
    for phase in ["deployment_idle_shared_pool", "deployment_under_noise"] {
        assert_eq!(r[phase]["requests"], 8, "{r}");
        assert!(r[phase]["ttft_p99_ms"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(r["noise"]["requests"].as_u64().unwrap() >= 8, "{r}");
    assert_ne!(r["shared_pool_cpus"], r["deployment_cpus"]);
    assert!(r["ttft_p99_ratio"].as_f64().unwrap() > 0.0);
    assert_eq!(r["target_ttft_p99_ratio"], 1.5);
}
