//! libFuzzer entry point of the `gguf` target: see `starfire_fuzz::gguf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starfire_fuzz::gguf(data));
