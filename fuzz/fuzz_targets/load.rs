//! Fuzz the certificate loader: any bytes, with and without a password, must give Ok or Err, never a panic.
//! Run: `cargo +nightly fuzz run load` (from the repository root; needs `cargo install cargo-fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cba_cert::load(data, None);
    let _ = cba_cert::load(data, Some(&cba_cert::Password::new("pw")));
});
