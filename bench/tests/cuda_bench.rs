//! `cuda_bench --quick`: on a GPU machine, a complete report (copy baseline, both kinds of
//! matrix-vector kernels at 1, 8 and 64 tokens in every shape, each as a fraction of the copy's
//! rate); elsewhere, the engine's
//! clear no-driver error and exit status 2, never a panic. No timing is asserted.

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_run_reports_kernels_against_the_copy_or_names_the_missing_driver() {
    let out = Command::new(env!("CARGO_BIN_EXE_cuda_bench"))
        .arg("--quick")
        .output()
        .expect("run cuda_bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !engine::cuda::driver_present() {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("no CUDA driver found; backend = \"cuda\" needs an NVIDIA GPU"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        return;
    }
    assert!(out.status.success(), "cuda_bench --quick failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(
        report["copy"]["gb_per_s_read_plus_written"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{report}"
    );
    // The launch floor, each way.
    let floor = report["launch_floor"]["runs"]
        .as_array()
        .expect("launch floor runs");
    assert_eq!(floor.len(), 4, "{report}");
    for run in floor {
        for k in ["eager_us", "graph_us"] {
            assert!(
                run[k].as_f64().unwrap_or(0.0) > 0.0,
                "launch floor {k}: {report}"
            );
        }
    }
    let runs = report["matvec"].as_array().expect("matvec runs");
    assert_eq!(runs.len(), 3, "{report}");
    for run in runs {
        for k in ["q4_1", "q8_0"] {
            assert!(
                run[k]["fraction_of_copy"].as_f64().unwrap() > 0.0,
                "{report}"
            );
            // Every shape the engine chooses from for that many tokens, the fastest reported.
            let shapes = run[k]["shapes"].as_array().expect("the shapes timed");
            let candidates =
                engine::cuda::matvec_candidates(run["tokens"].as_u64().unwrap() as usize);
            assert_eq!(shapes.len(), candidates.count(), "{report}");
            let best = shapes
                .iter()
                .map(|s| s["ms"].as_f64().unwrap())
                .fold(f64::INFINITY, f64::min);
            assert_eq!(run[k]["ms"].as_f64().unwrap(), best, "{report}");
        }
    }
}
