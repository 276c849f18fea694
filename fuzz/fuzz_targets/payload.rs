#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ospdeck_fuzz::payload(data));
