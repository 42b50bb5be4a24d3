//! `engine_bench --quick` end to end, with and without a llama.cpp build beside it. The build
//! here is a stand-in `llama-bench` (a shell script printing llama-bench's JSON with fixed
//! rates), so the test checks the side-by-side plumbing — the command line it is given, rounds,
//! medians, ratios — without the 20-minute llama.cpp build; real runs use
//! `scripts/build-llama-cpp`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

fn run(args: &[&str], llama_dir: Option<&std::path::Path>) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_engine_bench"));
    cmd.args(["--quick", "--no-baseline"]).args(args);
    match llama_dir {
        Some(d) => cmd.env("LLAMA_CPP_DIR", d),
        None => cmd.env("LLAMA_CPP_DIR", "/nonexistent/llama.cpp"),
    };
    let out = cmd.output().expect("run engine_bench");
    assert!(
        out.status.success(),
        "engine_bench failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("engine_bench prints JSON")
}

#[test]
fn without_llama_cpp_it_says_so_and_prints_no_ratio() {
    let r = run(&[], None);
    assert!(r["starfire"]["prefill_512_tok_s"].as_f64().unwrap() > 0.0);
    assert!(r["starfire"]["decode_1_tok_s"].as_f64().unwrap() > 0.0);
    let why = r["llama_cpp"]["unavailable"].as_str().unwrap();
    assert!(why.contains("scripts/build-llama-cpp"), "{why}");
    assert!(r["ratio_vs_llama_cpp"].is_null());
    assert!(r["machine"]["cpu_flags"].is_array());
    assert!(r["machine"]["kernel_path"].is_string());
}

#[test]
fn beside_llama_bench_it_alternates_rounds_and_divides_medians() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    // Rates 100, 200, 300 tok/s prompt and 10, 20, 30 generation over the three calls: the
    // medians are 200 and 20.
    let script = format!(
        r#"#!/bin/sh
echo "$@" >> {log}
n=$(wc -l < {log})
cat <<EOF
[{{"n_prompt": 512, "n_gen": 0, "avg_ts": $((n * 100))}},
 {{"n_prompt": 0, "n_gen": 16, "avg_ts": $((n * 10))}}]
EOF
"#,
        log = log.display()
    );
    for (name, body) in [
        ("llama-bench", script.as_str()),
        ("llama-server", "#!/bin/sh\n"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let r = run(&["--rounds", "3"], Some(dir.path()));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 3, "{calls}");
    let threads = r["machine"]["threads"].as_u64().unwrap();
    let first = calls.lines().next().unwrap();
    assert!(
        first.contains(&format!("-t {threads}")) && first.contains("-p 512 -n 16"),
        "{first}"
    );
    assert!(first.contains("SmolLM2-135M-Instruct"), "{first}");
    assert_eq!(r["llama_cpp"]["pp512_tok_s"], 200.0);
    assert_eq!(r["llama_cpp"]["tg_tok_s"], 20.0);
    assert_eq!(r["starfire_rounds"].as_array().unwrap().len(), 3);
    let ours = r["starfire"]["prefill_512_tok_s"].as_f64().unwrap();
    let ratio = r["ratio_vs_llama_cpp"]["prefill_512"].as_f64().unwrap();
    assert!((ratio - ours / 200.0).abs() < 0.01, "{ratio} vs {ours}/200");
    let decode = r["starfire"]["decode_1_tok_s"].as_f64().unwrap();
    let ratio = r["ratio_vs_llama_cpp"]["decode_1"].as_f64().unwrap();
    assert!(
        (ratio - decode / 20.0).abs() < 0.01,
        "{ratio} vs {decode}/20"
    );
}
