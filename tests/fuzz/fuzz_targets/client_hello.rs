//! The ClientHello reader on arbitrary input, driven as the listener drives it: peek up to
//! `need` (from 5) and re-parse. Checks that `parse` never panics, that `need` always moves
//! forward and stays under the cap (so the loop ends), and that the listener's loop makes
//! few calls, whatever the record sizes.
//!
//! An hour: `cargo +nightly fuzz run --fuzz-dir tests/fuzz client_hello -- -max_total_time=3600 -max_len=70000`
//! (from the repository root; `cargo install cargo-fuzz` once).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshgate::tls::client_hello::{parse, Parse, MAX_CLIENT_HELLO};

fuzz_target!(|data: &[u8]| {
    if let Parse::Incomplete { need } = parse(data) {
        assert!(
            need > data.len() && need <= MAX_CLIENT_HELLO,
            "need {need} for {}",
            data.len()
        );
    }
    let mut need = 5;
    let mut calls = 0;
    while need <= data.len() {
        calls += 1;
        assert!(calls <= 200, "{calls} calls for {} bytes", data.len());
        match parse(&data[..need]) {
            Parse::Incomplete { need: n } => {
                assert!(n > need && n <= MAX_CLIENT_HELLO, "need {n} after {need}");
                need = n;
            }
            _ => break,
        }
    }
});
