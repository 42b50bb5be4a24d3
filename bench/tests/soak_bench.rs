//! `soak_bench --quick` end to end: one minute of mixed traffic through two `starfire serve`
//! replicas on PostgreSQL and Redis (the machine's, `STARFIRE_TEST_DATABASE_URL` and
//! `STARFIRE_TEST_REDIS_URL`) in front of one `starfire worker` with the default model (in the
//! model cache: `starfire model fetch`). Every operation of the mix ran and none failed
//! unexpectedly, the provoked refusals were refused, and the end state holds: KV cache free,
//! one usage row per accepted request, ledgers equal to balances, resident memory bounded.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_quick_soak_leaves_nothing_behind() {
    let out = Command::new(env!("CARGO_BIN_EXE_soak_bench"))
        .arg("--quick")
        .output()
        .expect("run soak_bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "soak_bench printed no JSON ({e}), {}:\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(r["pass"], true, "failures: {}\n{r:#}", r["failures"]);
    assert!(out.status.success(), "{}", out.status);
    assert_eq!(r["config"]["duration_s"], 60);
    assert_eq!(r["requests"]["unexpected"], 0, "{r:#}");

    // Every operation of the mix ran at least once, the refusals it provokes among them.
    let outcomes = &r["outcomes"];
    for kind in [
        "chat",
        "chat_stream",
        "completion",
        "completion_stream",
        "embeddings",
        "chat_stream_disconnect",
        "ws_chat",
        "ws_cancel",
        "ws_chat_after_cancel",
        "ws_disconnect",
        "admin",
        "key_create",
        "key_use",
        "key_revoke",
    ] {
        assert!(
            outcomes[kind]["ok"].as_u64().unwrap_or(0) > 0,
            "{kind}: {}",
            outcomes[kind]
        );
    }
    for kind in ["key_use_after_revoke", "bad_request"] {
        assert!(
            outcomes[kind]["expected_error"].as_u64().unwrap_or(0) > 0,
            "{kind}: {}",
            outcomes[kind]
        );
        assert_eq!(outcomes[kind]["ok"], 0, "{kind}: {}", outcomes[kind]);
    }
    let refusals = outcomes["key_use_after_revoke"]["refusals"]
        .as_object()
        .unwrap();
    assert!(
        refusals.keys().all(|k| k.starts_with("401")),
        "{refusals:?}"
    );

    // The end state.
    assert_eq!(r["kv_blocks_in_use_at_end"], 0, "{}", r["idle"]);
    assert!(r["config"]["kv_blocks_total"].as_u64().unwrap() > 0);
    let usage = &r["usage"];
    assert!(usage["accepted_total"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(usage["difference"], 0, "{usage}");
    assert_eq!(usage["in_progress_at_end"], 0, "{usage}");
    assert!(
        usage["cut_short_by_clients"].as_u64().unwrap() > 0,
        "{usage}"
    );
    for org in ["prepaid", "free"] {
        let ledger = &r["ledger"][org];
        assert_eq!(ledger["ok"], true, "{org}: {ledger}");
        assert_eq!(ledger["ledger_sum_micros"], ledger["balance_micros"]);
        assert!(
            ledger["usage_debits"].as_u64().unwrap() > 0,
            "{org}: {ledger}"
        );
    }
    assert_eq!(r["redis"]["concurrency_leases_left"], 0);
    for process in ["gateway-a", "gateway-b", "worker"] {
        let rss = &r["rss"][process];
        assert_eq!(rss["within_bound"], true, "{process}: {rss}");
        assert!(rss["samples"].as_array().unwrap().len() >= 10, "{rss}");
    }
}
