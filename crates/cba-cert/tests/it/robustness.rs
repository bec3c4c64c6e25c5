//! Truncated, bit-flipped and random inputs never panic.

use cba_cert::{Password, PfxFormat};
use proptest::prelude::*;

use super::shared_identity;

fn corpus() -> Vec<Vec<u8>> {
    let id = shared_identity();
    let pw = Password::new("pw");
    vec![
        id.to_pfx(Some(&pw), PfxFormat::Modern).unwrap(),
        id.to_pfx(Some(&pw), PfxFormat::Legacy).unwrap(),
        id.certificate.der().to_vec(),
        id.to_pem().unwrap().as_bytes().to_vec(),
    ]
}

#[test]
fn every_truncation_fails_cleanly() {
    let pw = Password::new("pw");
    for (i, input) in corpus().iter().enumerate() {
        // Every length for the first and last 64 bytes, then a stride through the middle.
        let lengths = (0..input.len()).filter(|n| *n < 64 || *n > input.len() - 64 || n % 7 == 0);
        for n in lengths {
            let result = cba_cert::load(&input[..n], Some(&pw));
            // A PEM cut after the END line of the certificate can still be a valid certificate; nothing else may load.
            if i != 3 {
                assert!(result.is_err(), "input {i} truncated to {n} bytes loaded");
            }
        }
    }
}

#[test]
fn bit_flips_never_panic_and_pfx_flips_are_caught() {
    let pw = Password::new("pw");
    for (i, input) in corpus().iter().enumerate() {
        for pos in (0..input.len()).step_by(3) {
            let mut bytes = input.clone();
            bytes[pos] ^= 1 << (pos % 8);
            let result = cba_cert::load(&bytes, Some(&pw));
            if i < 2
                && let Ok(id) = &result
            {
                // The MAC covers the bags; a flip that still loads must be outside them (framing bytes).
                assert_eq!(id.certificate, shared_identity().certificate, "flip at {pos} changed the certificate");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = cba_cert::load(&bytes, Some(&Password::new("pw")));
    }

    #[test]
    fn random_der_like_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300), first in 0u8..4) {
        let mut bytes = vec![0x30, 0x82, 0x01, first];
        bytes.extend(tail);
        let _ = cba_cert::load(&bytes, None);
    }
}
