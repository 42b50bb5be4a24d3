//! `http_bench --quick` end to end: the gateway's HTTP server in process, streamed chats at 1
//! and 4 clients, and the in-process scheduler baseline, on the default model. Checks that the
//! report is complete and every request succeeded; it asserts no timings (those vary by
//! machine and load), only that they were measured.

use std::process::Command;

use serde_json::Value;

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn quick_run_serves_every_request_and_compares_with_the_scheduler() {
    let out = Command::new(env!("CARGO_BIN_EXE_http_bench"))
        .arg("--quick")
        .output()
        .expect("run http_bench");
    assert!(
        out.status.success(),
        "http_bench --quick failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let per_request = report["output_tokens_per_request"].as_u64().unwrap();
    let runs = report["runs"].as_array().unwrap();
    let levels: Vec<u64> = runs
        .iter()
        .map(|r| r["concurrency"].as_u64().unwrap())
        .collect();
    assert_eq!(levels, [1, 4]);
    for run in runs {
        let clients = run["concurrency"].as_u64().unwrap();
        assert_eq!(run["errors"], 0, "{run}");
        assert_eq!(run["requests"].as_u64(), Some(clients), "{run}");
        assert_eq!(
            run["output_tokens"].as_u64(),
            Some(clients * per_request),
            "{run}"
        );
        for key in [
            "output_tokens_per_second",
            "requests_per_second",
            "ttft_p50_ms",
            "itl_p50_ms",
        ] {
            assert!(number(run, key) > 0.0, "{key} in {run}");
        }
        assert!(
            number(run, "ttft_p99_ms") >= number(run, "ttft_p50_ms"),
            "{run}"
        );
        assert!(
            number(run, "itl_p99_ms") >= number(run, "itl_p50_ms"),
            "{run}"
        );
    }
    let baseline = &report["in_process_scheduler"];
    for key in ["before_http", "after_http"] {
        assert_eq!(baseline[key]["errors"], 0, "{baseline}");
        assert_eq!(
            baseline[key]["output_tokens"].as_u64(),
            Some(4 * per_request),
            "{baseline}"
        );
    }
    let compared = &report["gateway_vs_in_process"];
    assert_eq!(compared["concurrency"], 4, "{compared}");
    assert_eq!(compared["same_prompt_tokens"], true, "{compared}");
    assert!(number(compared, "throughput_ratio") > 0.0, "{compared}");
}

#[test]
fn quick_run_through_a_worker_process() {
    let out = Command::new(env!("CARGO_BIN_EXE_http_bench"))
        .args(["--quick", "--worker-process", "--levels", "4"])
        .output()
        .expect("run http_bench");
    assert!(
        out.status.success(),
        "http_bench --quick --worker-process failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        report["backend"], "one starfire worker process over loopback HTTP",
        "{report}"
    );
    let run = &report["runs"][0];
    assert_eq!(run["errors"], 0, "{run}");
    assert_eq!(run["requests"], 4, "{run}");
    assert!(number(run, "output_tokens_per_second") > 0.0, "{run}");
}
