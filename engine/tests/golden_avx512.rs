//! The default model's AVX-512 kernel path against llama.cpp's AVX-512 build
//! (tests/golden/*.avx512.json, see its README). That build sums attention scores 16 lanes
//! wide and evaluates SiLU's expf with AVX-512's own polynomial; the AVX-512 path does the same,
//! so its greedy continuations follow that reference. Skipped, with a message, on a CPU without
//! AVX-512.

mod common;

use common::{cases, check_greedy, model};
use engine::kernels::cpu::{self, Isa};

#[test]
fn greedy_continuations_match_llama_cpp_avx512() {
    if cpu::best_supported() < Isa::Avx512 {
        eprintln!("skipped: this CPU has no AVX-512 (the AVX2 golden is checked in golden.rs)");
        return;
    }
    let all = cases(include_str!(
        "golden/smollm2-135m-instruct-q4_1.greedy.avx512.json"
    ));
    // At least 90% identical; the rest may part only at the reference's near-ties.
    check_greedy(model(Isa::Avx512), &all, (all.len() * 9).div_ceil(10));
}
