//! What to do next, in `cba`'s own words. The libraries say what happened (AADSTS codes and their meaning,
//! `cba_cert::Problem` variants, error kinds) without naming commands; the hints here name the `cba` commands
//! and flags that fix it. Callers append them to the error message as `hint: …`; docs/troubleshooting-aadsts.md
//! is the long form of the AADSTS ones.

/// What to do about a token endpoint refusal: keyed on the first AADSTS code with a hint, else the OAuth
/// `error` (device-code terminal states). Looks through [`cba_token::Error::GaveUp`] to the last failure.
pub fn token_hint(e: &cba_token::Error) -> Option<String> {
    e.aadsts()
        .iter()
        .find_map(|&code| aadsts_hint(code))
        .or_else(|| e.oauth_error().and_then(oauth_error_hint))
        .map(str::to_owned)
}

/// The hint for one AADSTS code; `Some` for every code in [`cba_token::AADSTS_CODES`].
pub fn aadsts_hint(code: u32) -> Option<&'static str> {
    Some(match code {
        700027 => {
            "Compare the thumbprint in the message with the app's certificates (`cba status`) and check that the \
             private key belongs to the registered certificate (`cba cert show FILE`); right after setup or a \
             rotation, retry with `cba token --wait 5m`."
        }
        700024 => "Synchronise this machine's clock (NTP) and try again.",
        700016 => {
            "Check --client-id and --tenant (and --cloud). If the app was created moments ago it has not replicated \
             yet: retry with `cba token --wait 5m`."
        }
        90002 => "Check --tenant (a tenant id GUID or a verified domain such as contoso.onmicrosoft.com) and --cloud.",
        7000215 => {
            "cba signs in with certificates, not secrets: something else supplied a secret; use the certificate."
        }
        7000222 => {
            "cba signs in with certificates, not secrets: use the certificate (and remove the expired secret from \
             the app)."
        }
        500011 => {
            "Check that the tenant has Exchange Online, and that --resource and --cloud are this tenant's cloud's \
             URLs."
        }
        70011 => "Check --resource and --cloud.",
        700022 => "Request one resource per token (one --resource).",
        700023 => "Use a resource URL with `/.default` (check --resource).",
        50012 => {
            "Check that the private key belongs to the registered certificate and that the authority matches the \
             tenant's cloud (--cloud, --authority-host)."
        }
        50013 => {
            "Check this machine's clock and that the authority matches the tenant's cloud (--cloud, \
             --authority-host)."
        }
        50027 => "Check the certificate's private key (`cba cert show FILE`).",
        50048 => "Both must be the app's client id: check --client-id.",
        50032 => "Make a new 2048-bit (or larger) certificate with `cba cert new` and register it.",
        7000112 => "An administrator must enable it (Enterprise applications).",
        7000229 => {
            "Run `cba setup`, or create the service principal (Enterprise applications) and grant admin consent."
        }
        700021 => "Its iss/sub must be the --client-id sent with it.",
        1002012 => "Check --resource.",
        700025 => "Turn off \"Allow public client flows\" for app-only sign-in, or use another app.",
        7000218 => {
            "With your own --admin-client-id, turn on \"Allow public client flows\" on that app, or use the default \
             Microsoft Graph Command Line Tools client id."
        }
        65001 => {
            "An administrator must consent to the sign-in client's Graph permissions in this tenant (sign in as a \
             Global or Privileged Role Administrator), or use your own --admin-client-id."
        }
        65002 => "Use the default Microsoft Graph Command Line Tools client id or your own app.",
        53003 => {
            "Ask the tenant's administrators to allow this sign-in, or sign in from a compliant device or location."
        }
        70016 => "Enter the code on the sign-in page (cba keeps polling).",
        70018 => "Run the command again and type the code exactly as shown.",
        70019 => "Run the command again and sign in while the code is valid.",
        _ => return None,
    })
}

/// The hint for an OAuth `error` value without an AADSTS code that has one.
pub fn oauth_error_hint(error: &str) -> Option<&'static str> {
    Some(match error {
        "authorization_declined" => {
            "Run the command again and approve it, as an administrator who may grant the requested permissions."
        }
        "expired_token" => aadsts_hint(70019)?,
        "bad_verification_code" => aadsts_hint(70018)?,
        "invalid_tenant" => aadsts_hint(90002)?,
        "temporarily_unavailable" => "Try again in a minute.",
        _ => return None,
    })
}

/// What to do about a certificate that cannot be used (`None` when its message already says it).
pub fn cert_problem_hint(p: &cba_cert::Problem) -> Option<&'static str> {
    use cba_cert::Problem;
    match p {
        Problem::NotRsa { .. } => Some("make an RSA one with `cba cert new`"),
        Problem::KeyTooSmall { .. } => Some("make a 2048-bit (or larger) one with `cba cert new` and register it"),
        Problem::NoPrivateKey => Some("or use the PFX made by `cba cert new`"),
        Problem::Expired { .. } => Some("make a new one with `cba cert rotate` (or `cba cert new`)"),
        Problem::KeyMismatch | Problem::NotYetValid { .. } => None,
        _ => None,
    }
}

/// What to do about a certificate error, where `cba` has a command for it.
pub fn cert_error_hint(e: &cba_cert::Error) -> Option<&'static str> {
    match e {
        cba_cert::Error::ValidityTooLong { .. } => Some("rotate with `cba cert rotate` instead"),
        cba_cert::Error::KeyTooSmall { .. } => Some("make a new certificate with `cba cert new`"),
        _ => None,
    }
}

/// What to do about a PKCS#11 module, token or key that cannot be used (`--key pkcs11:…`, docs/keys.md).
pub fn pkcs11_hint(e: &cba_pkcs11::Error) -> Option<&'static str> {
    use cba_pkcs11::Error as E;
    Some(match e {
        E::ModuleLoad { .. } => {
            "check the path (--pkcs11-module, the URI's module-path, CBA_PKCS11_MODULE) and that the module's \
             package is installed (SoftHSM2: softhsm2, /usr/lib/softhsm/libsofthsm2.so)"
        }
        E::TokenNotFound { .. } => {
            "fix token= in --key (the error lists the tokens present; for SoftHSM2 `softhsm2-util --show-slots` shows them too)"
        }
        E::TokenNotPresent { .. } => "insert the token and try again",
        E::PinIncorrect { .. } => {
            "check the PIN (the URI's pin-source file, CBA_PKCS11_PIN); a token locks after a few wrong PINs"
        }
        E::PinLocked { .. } => {
            "the token's security officer must reset the user PIN (SoftHSM2: softhsm2-util --init-pin)"
        }
        E::LabelExists { .. } => "pass --force to replace it (the old key is deleted), or choose another object= label",
        E::NotRsa { .. } | E::CertificateMismatch { .. } | E::Certificate { .. } => {
            "make a new key and certificate with `cba cert new --name NAME --key URI --force`"
        }
        _ => return None,
    })
}

/// `message; hint` when there is a hint (the one-line form `cba cert` uses).
pub fn with_hint(message: impl std::fmt::Display, hint: Option<&str>) -> String {
    match hint {
        Some(hint) => format!("{message}; {hint}"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_aadsts_code_cba_token_knows_has_a_hint() {
        for &code in cba_token::AADSTS_CODES {
            assert!(aadsts_hint(code).is_some(), "AADSTS{code} has a meaning in cba-token but no hint here");
            assert!(cba_token::aadsts_meaning(code).is_some(), "AADSTS{code}");
        }
        for error in ["authorization_declined", "expired_token", "bad_verification_code", "invalid_tenant"] {
            assert!(oauth_error_hint(error).is_some(), "{error}");
        }
        assert_eq!(aadsts_hint(12345), None);
    }

    #[test]
    fn hints_keep_what_users_rely_on() {
        let check = |code: u32, needles: &[&str]| {
            let hint = aadsts_hint(code).unwrap();
            for needle in needles {
                assert!(hint.contains(needle), "AADSTS{code}: {needle:?} missing from {hint:?}");
            }
        };
        check(700027, &["`cba status`", "`cba token --wait 5m`"]);
        check(700016, &["--client-id", "--tenant", "--cloud", "`cba token --wait 5m`"]);
        check(90002, &["--tenant", "--cloud"]);
        check(700024, &["NTP"]);
        check(50032, &["`cba cert new`"]);
        check(7000229, &["`cba setup`"]);
        check(7000218, &["--admin-client-id"]);
    }

    fn token_error(error: &str, aadsts: Vec<u32>) -> cba_token::Error {
        cba_token::Error::Token {
            status: 400,
            error: error.to_owned(),
            aadsts,
            description: "".into(),
            trace_id: None,
            correlation_id: None,
            meaning: None,
        }
    }

    #[test]
    fn token_hint_uses_the_first_code_with_a_hint_then_the_oauth_error() {
        let e = token_error("invalid_client", vec![99999, 700027]);
        assert_eq!(token_hint(&e).as_deref(), aadsts_hint(700027));
        let declined = token_error("authorization_declined", vec![70000]);
        assert_eq!(token_hint(&declined).as_deref(), oauth_error_hint("authorization_declined"));
        let gave_up = cba_token::Error::GaveUp {
            attempts: 3,
            elapsed: std::time::Duration::from_secs(9),
            last: Box::new(token_error("unauthorized_client", vec![700016])),
        };
        assert_eq!(token_hint(&gave_up).as_deref(), aadsts_hint(700016));
        assert_eq!(token_hint(&token_error("invalid_request", vec![12345])), None);
    }

    #[test]
    fn certificate_hints_name_the_commands_the_library_does_not() {
        let expired = cba_cert::Problem::Expired { not_after: time::OffsetDateTime::UNIX_EPOCH };
        assert!(!expired.to_string().contains("cba "), "{expired}");
        assert!(cert_problem_hint(&expired).unwrap().contains("`cba cert rotate`"));
        assert!(cert_problem_hint(&cba_cert::Problem::NoPrivateKey).unwrap().contains("`cba cert new`"));
        assert_eq!(cert_problem_hint(&cba_cert::Problem::KeyMismatch), None);
        let long = cba_cert::Error::ValidityTooLong { requested: cba_cert::Validity::Years(11) };
        assert!(!long.to_string().contains("cba "), "{long}");
        assert_eq!(with_hint("a", cert_error_hint(&long)), "a; rotate with `cba cert rotate` instead");
    }
}
