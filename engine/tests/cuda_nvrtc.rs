//! Every CUDA kernel compiled by NVRTC for the H100/H200 generation (`sm_90`), as a cubin with
//! ptxas's report and as PTX, on a machine without a GPU. `scripts/test` installs NVRTC and the
//! CUDA headers from PyPI's wheels under `target/` and sets `STARFIRE_REQUIRE_NVRTC=1`, so there
//! a missing NVRTC fails the test; elsewhere it is skipped with one line.

use engine::cuda;

fn include_dirs() -> Vec<String> {
    std::env::var("STARFIRE_CUDA_INCLUDE")
        .map(|d| vec![d])
        .unwrap_or_default()
}

fn nvrtc_or_skip() -> bool {
    if cuda::nvrtc_present() {
        return true;
    }
    assert!(
        std::env::var_os("STARFIRE_REQUIRE_NVRTC").is_none(),
        "STARFIRE_REQUIRE_NVRTC is set but NVRTC (libnvrtc.so.13) cannot be loaded"
    );
    eprintln!("skipped: NVRTC not found (scripts/test installs it under target/)");
    false
}

#[test]
fn every_kernel_compiles_for_sm_90_without_spills() {
    if !nvrtc_or_skip() {
        return;
    }
    let out =
        cuda::compile(&cuda::source(), "sm_90", &include_dirs()).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.image.starts_with(b"\x7fELF"), "a cubin is an ELF image");
    for k in cuda::KERNELS {
        assert!(
            out.log
                .contains(&format!("Compiling entry function '{k}' for 'sm_90'")),
            "ptxas did not report kernel {k}:\n{}",
            out.log
        );
    }
    assert!(
        out.spills().is_empty(),
        "kernels spill registers:\n{}\n{}",
        out.spills().join("\n"),
        out.log
    );
    // Each kernel's registers fit its largest block into one SM's register file (65,536,
    // given out per warp in steps of 256): else that launch fails on the GPU.
    for k in cuda::KERNELS {
        let threads = max_threads(k);
        let regs = registers(&out.log, k);
        let per_warp = (regs * 32).div_ceil(256) * 256;
        assert!(
            threads / 32 * per_warp <= 65_536,
            "{k}: {regs} registers a thread leave no room for blocks of {threads} threads"
        );
    }
    // The kernels that take dynamic shared memory declare no `__shared__` variables, so the
    // dynamic bytes are all a launch has: what `HostDevice` holds their launches to.
    for k in cuda::KERNELS
        .iter()
        .filter(|k| **k == "attention_partial" || k.starts_with("matvec_q"))
    {
        assert_eq!(
            static_smem(&out.log, k),
            0,
            "{k} declares __shared__ variables:\n{}",
            out.log
        );
    }
    let ptx = cuda::compile(&cuda::source(), "compute_90", &include_dirs())
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8(ptx.image).unwrap();
    assert!(text.contains(".target sm_90"));
    // Every kernel waits for the one before it (programmatic dependent launch).
    assert!(
        text.matches("griddepcontrol.wait").count() >= cuda::KERNELS.len(),
        "a kernel lacks griddepcontrol.wait"
    );
    // And, having waited, lets the kernel after it be scheduled.
    assert!(
        text.matches("griddepcontrol.launch_dependents").count() >= cuda::KERNELS.len(),
        "a kernel lacks griddepcontrol.launch_dependents"
    );
    for k in cuda::KERNELS {
        assert!(text.contains(&format!(".entry {k}(")), "PTX lacks {k}");
    }
}

#[test]
fn a_broken_kernel_fails_with_nvrtcs_message() {
    if !nvrtc_or_skip() {
        return;
    }
    let src = format!(
        "{}\nSF_KERNEL void broken(float* x) {{ x[0] = undefined_name; }}\n",
        cuda::source()
    );
    let err = cuda::compile(&src, "sm_90", &include_dirs())
        .unwrap_err()
        .to_string();
    assert!(err.contains("undefined_name"), "{err}");
}

#[test]
fn the_cubin_is_compiled_once_and_then_read_from_the_cache() {
    if !nvrtc_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = cuda::cached_cubin("sm_90", dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), first);
    // A second start reads the file: the same bytes, even where it was changed to prove it.
    let mut marked = first.clone();
    let at = marked.len() - 1;
    marked[at] ^= 0xff;
    std::fs::write(&files[0], &marked).unwrap();
    assert_eq!(cuda::cached_cubin("sm_90", dir.path()).unwrap(), marked);
    // A file that is not a cubin is compiled again and replaced.
    std::fs::write(&files[0], b"partial").unwrap();
    assert_eq!(cuda::cached_cubin("sm_90", dir.path()).unwrap(), first);
    assert_eq!(std::fs::read(&files[0]).unwrap(), first);
    // Another architecture is another file.
    cuda::cached_cubin("sm_89", dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// The most threads a block of `kernel` has, as the engine launches it.
fn max_threads(kernel: &str) -> usize {
    match kernel {
        "attention_partial" => cuda::ATTENTION_MAX_THREADS,
        "sample_rows" | "argmax_logprob" => 1024,
        k if k.starts_with("matvec_") => 128,
        "rope_write_kv" => 128,
        // `attention_reduce` has a thread per dimension of a head (at most 256); the rest 256.
        _ => 256,
    }
}

/// ptxas's report on `kernel` in `log`: from its "Compiling entry function" line to the next.
fn report<'a>(log: &'a str, kernel: &str) -> &'a str {
    let head = format!("Compiling entry function '{kernel}' for 'sm_90'");
    let at = log
        .find(&head)
        .unwrap_or_else(|| panic!("no report for {kernel}"));
    let rest = &log[at + head.len()..];
    &rest[..rest.find("Compiling entry function").unwrap_or(rest.len())]
}

/// The registers ptxas gave `kernel` (its report in `log`).
fn registers(log: &str, kernel: &str) -> usize {
    let r = report(log, kernel);
    let used = &r[r.find("Used ").expect("a register count") + 5..];
    used.split_whitespace().next().unwrap().parse().unwrap()
}

/// The bytes of `__shared__` variables `kernel` declares (ptxas's "N bytes smem"; none where
/// it says nothing of shared memory).
fn static_smem(log: &str, kernel: &str) -> usize {
    let r = report(log, kernel);
    r.find(" bytes smem").map_or(0, |end| {
        r[..end]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    })
}
