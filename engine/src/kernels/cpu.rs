//! Which instruction set the kernels use, chosen once per process at run time.
//!
//! llama.cpp is built for one CPU and its numbers depend on that build: its AVX-512 build sums
//! attention scores 16 lanes wide and evaluates SiLU's `expf` with AVX-512's own polynomial,
//! where its AVX2 build uses 8 lanes and another formula. Starfire follows whichever it runs
//! on, so each path matches the llama.cpp build of the same instruction set (the golden files
//! of both are tested), and every path can be forced:
//!
//! `STARFIRE_CPU=avx512 | avx2 | scalar` (unset or `native`: the best the CPU has). A path the
//! CPU lacks falls back to the best it has, with a warning. `scalar` computes the AVX2 numbers
//! lane by lane (it is the reference the SIMD kernels are tested against).

use std::sync::atomic::{AtomicU8, Ordering};

/// A kernel path, from the plainest to the widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust with AVX2's lane order (no SIMD instructions).
    Scalar,
    /// AVX2 + FMA + F16C: ggml's AVX2 build.
    Avx2,
    /// AVX-512 F/BW/VL/DQ (+ VNNI where present): ggml's AVX-512 build.
    Avx512,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    fn parse(s: &str) -> Option<Option<Isa>> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "" | "native" | "auto" => None,
            "scalar" | "generic" | "none" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx-512" => Some(Isa::Avx512),
            _ => return None,
        })
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(c: u8) -> Option<Isa> {
        match c {
            1 => Some(Isa::Scalar),
            2 => Some(Isa::Avx2),
            3 => Some(Isa::Avx512),
            _ => None,
        }
    }
}

/// The widest path this CPU supports.
pub fn best_supported() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f")
            && has!("avx512bw")
            && has!("avx512vl")
            && has!("avx512dq")
            && has!("fma")
            && has!("f16c")
        {
            return Isa::Avx512;
        }
        if has!("avx2") && has!("fma") && has!("f16c") {
            return Isa::Avx2;
        }
    }
    Isa::Scalar
}

/// Whether the AVX-512 path can use VNNI's `vpdpbusd` (integer dot products in one instruction).
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static VNNI: OnceLock<bool> = OnceLock::new();
        *VNNI.get_or_init(|| std::arch::is_x86_feature_detected!("avx512vnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the AVX2 path can use AVX-VNNI's 256-bit `vpdpbusd` (the same integer dot products
/// as AVX-512 VNNI, on CPUs without AVX-512 or beside it).
pub fn has_avx_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static VNNI: OnceLock<bool> = OnceLock::new();
        *VNNI.get_or_init(|| std::arch::is_x86_feature_detected!("avxvnni"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The CPU's SIMD features, as benchmarks print them.
pub fn cpu_flags() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut flags = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        macro_rules! probe {
            ($($f:tt),*) => { $( if has!($f) { flags.push($f); } )* };
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512dq",
            "avx512vnni",
            "avx512bf16",
            "avxvnni"
        );
    }
    flags
}

static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The path in use: `STARFIRE_CPU` (or [`force`]) capped at what the CPU supports.
#[inline]
pub fn isa() -> Isa {
    match Isa::from_code(ACTIVE.load(Ordering::Relaxed)) {
        Some(isa) => isa,
        None => init(),
    }
}

#[cold]
fn init() -> Isa {
    let best = best_supported();
    let requested = match std::env::var("STARFIRE_CPU") {
        Ok(v) => match Isa::parse(&v) {
            Some(r) => r,
            None => {
                tracing::warn!(value = %v, "STARFIRE_CPU is not one of avx512, avx2, scalar, native; using the CPU's best");
                None
            }
        },
        Err(_) => None,
    };
    let chosen = choose(requested, best);
    // A concurrent first call computes the same value; whichever store wins is the same.
    ACTIVE.store(chosen.code(), Ordering::Relaxed);
    chosen
}

fn choose(requested: Option<Isa>, best: Isa) -> Isa {
    match requested {
        None => best,
        Some(r) if r <= best => r,
        Some(r) => {
            tracing::warn!(
                requested = r.name(),
                using = best.name(),
                "this CPU lacks the requested kernel path"
            );
            best
        }
    }
}

/// Forces a path for this process (tests that check one path's numbers); capped at what the
/// CPU supports. Returns the path now in use. Call it before the model computes anything: a
/// forward pass must not change path midway.
pub fn force(isa: Isa) -> Isa {
    let chosen = choose(Some(isa), best_supported());
    ACTIVE.store(chosen.code(), Ordering::Relaxed);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_cap() {
        assert_eq!(Isa::parse("AVX2"), Some(Some(Isa::Avx2)));
        assert_eq!(Isa::parse("avx512"), Some(Some(Isa::Avx512)));
        assert_eq!(Isa::parse("scalar"), Some(Some(Isa::Scalar)));
        assert_eq!(Isa::parse("native"), Some(None));
        assert_eq!(Isa::parse("sse9"), None);
        assert_eq!(choose(Some(Isa::Avx512), Isa::Avx2), Isa::Avx2);
        assert_eq!(choose(Some(Isa::Scalar), Isa::Avx512), Isa::Scalar);
        assert_eq!(choose(None, Isa::Avx2), Isa::Avx2);
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
            assert_eq!(Isa::from_code(isa.code()), Some(isa));
        }
    }
}
