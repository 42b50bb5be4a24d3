//! libFuzzer entry point of the `ws_frame` target: see `starfire_fuzz::ws_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starfire_fuzz::ws_frame(data));
