//! libFuzzer entry point of the `chat_request` target: see `starfire_fuzz::chat_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starfire_fuzz::chat_request(data));
