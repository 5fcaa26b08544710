//! libFuzzer over the inputs the core accepts from hosts: see
//! wasmloop_core::fuzzing for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wasmloop_core::fuzzing::run(data);
});
