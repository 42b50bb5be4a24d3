//! libFuzzer entry point of the `sse` target: see `starfire_fuzz::sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starfire_fuzz::sse(data));
