#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ospdeck_fuzz::bundle_manifest(data));
