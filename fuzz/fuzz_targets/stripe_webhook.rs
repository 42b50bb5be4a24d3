//! libFuzzer entry point of the `stripe_webhook` target: see `starfire_fuzz::stripe_webhook`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starfire_fuzz::stripe_webhook(data));
