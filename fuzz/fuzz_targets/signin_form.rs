#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkeyd::fuzzing::signin_form(data));
