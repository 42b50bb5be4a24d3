//! `structured_bench --quick` end to end: mixed constrained and unconstrained streams against
//! unconstrained ones, and the mask timing replay. Checks that the report is complete, nothing
//! failed and the constrained outputs follow the grammar; it asserts no timings (those vary by
//! machine and load), only that they were measured.

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_run_measures_both_halves_and_the_masks() {
    let out = Command::new(env!("CARGO_BIN_EXE_structured_bench"))
        .arg("--quick")
        .output()
        .expect("run structured_bench");
    assert!(
        out.status.success(),
        "structured_bench --quick failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["failed_requests"], 0, "{report}");
    assert_eq!(
        report["constrained_outputs_follow_the_grammar"], true,
        "{report}"
    );
    assert_eq!(report["constrained_streams"], 2);
    let round = &report["rounds"][0];
    for key in [
        "baseline_tokens_per_second_per_stream",
        "mixed_unconstrained_tokens_per_second_per_stream",
        "mixed_constrained_tokens_per_second_per_stream",
    ] {
        assert!(
            round[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {round}"
        );
    }
    for key in ["unconstrained_ratio", "constrained_ratio"] {
        assert!(
            report["median"][key].as_f64().is_some_and(|v| v > 0.0),
            "{report}"
        );
    }
    let masks = &report["mask_us_per_token"];
    // Two constrained streams of 12 tokens: 13 mask computations each (the last one after
    // the twelfth token).
    assert_eq!(masks["samples"], 26, "{masks}");
    assert!(masks["p50"].as_f64().is_some_and(|v| v > 0.0), "{masks}");
    assert!(masks["p99"].as_f64() >= masks["p50"].as_f64(), "{masks}");
}
