//! libFuzzer entry point of the `chat_template` target: see `starfire_fuzz::chat_template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starfire_fuzz::chat_template(data));
