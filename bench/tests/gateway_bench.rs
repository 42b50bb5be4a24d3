//! `gateway_bench --quick` end to end: the fake upstream, `starfire serve` in front of it
//! through the `openai` backend (the binary the workspace builds beside the bench), every
//! request answered, and no ratio claimed without LiteLLM.

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_run_answers_every_request_through_the_gateway() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway_bench"))
        .args(["--quick", "--seconds", "1"])
        .env_remove("LITELLM_BIN")
        .output()
        .expect("gateway_bench runs");
    assert!(
        out.status.success(),
        "gateway_bench --quick failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for target in ["direct", "starfire"] {
        for run in ["c1", "c64", "stream_c16"] {
            let r = &report["targets"][target][run];
            assert_eq!(r["errors"], 0, "{target} {run}: {r}");
            assert!(r["requests"].as_u64().unwrap() > 0, "{target} {run}: {r}");
        }
    }
    let summary = &report["summary"];
    assert!(summary["starfire_added_p50_ms_c1"].is_number(), "{summary}");
    assert!(summary.get("rps_ratio_c64").is_none(), "{summary}");
    assert!(summary["litellm"].as_str().unwrap().contains("not run"));
}
