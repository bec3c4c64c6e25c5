//! Recognising a refused server certificate in a transport error: retrying cannot fix one.

use std::error::Error as StdError;
use std::fmt;

use rustls::CertificateError;

/// Why the server's certificate was refused, for branching (a CLI's hint) without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailureKind {
    /// Not issued by a trusted root: typically a TLS-inspecting proxy whose CA this machine does not trust.
    UnknownIssuer,
    /// Valid, but not for the host name asked for.
    WrongName,
    /// Expired, or not valid yet (check this machine's clock too).
    Expired,
    /// Revoked by its issuer.
    Revoked,
    /// Anything else rustls refused (bad signature, encoding, purpose, ...).
    Other,
}

/// A server certificate rustls refused. `Display` says what was refused ("invalid peer certificate:
/// UnknownIssuer"); what to do about it is the caller's to say (the CLI names `SSL_CERT_FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFailure {
    /// The broad reason.
    pub kind: TlsFailureKind,
    /// rustls' description.
    pub detail: String,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// The refused server certificate behind `error`, if that is why the request failed. Such a failure is not
/// transient ([`is_transient_error`](crate::is_transient_error) says no): fail at once and say how to trust it.
pub fn tls_failure(error: &reqwest::Error) -> Option<TlsFailure> {
    find_tls_failure(error)
}

/// [`tls_failure`] for any error whose source chain holds the transport error (a client crate's error, an
/// `anyhow` chain's links): walks `error` and its sources.
pub fn find_tls_failure(error: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = as_rustls(e).and_then(classify) {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// rustls' error, itself or inside `io::Error`s (hyper nests two; `io::Error::source` skips the error it wraps).
fn as_rustls<'a>(mut e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

fn classify(e: &rustls::Error) -> Option<TlsFailure> {
    let kind = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsFailureKind::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailureKind::WrongName
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailureKind::Expired,
            CertificateError::Revoked => TlsFailureKind::Revoked,
            _ => TlsFailureKind::Other,
        },
        rustls::Error::NoCertificatesPresented | rustls::Error::UnsupportedNameType => TlsFailureKind::Other,
        _ => return None,
    };
    Some(TlsFailure { kind, detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain shaped like hyper's: an outer error whose source is an `io::Error` wrapping an `io::Error` wrapping
    /// rustls' error.
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    fn wrapped(e: rustls::Error) -> Outer {
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        Outer(std::io::Error::other(inner))
    }

    #[test]
    fn finds_rustls_certificate_errors_through_io_errors() {
        let check = |e: rustls::Error, expected: Option<TlsFailureKind>| {
            let found = find_tls_failure(&wrapped(e.clone()));
            assert_eq!(found.as_ref().map(|f| f.kind), expected, "{e:?}");
            if let Some(f) = found {
                assert_eq!(f.to_string(), e.to_string());
            }
        };
        check(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer), Some(TlsFailureKind::UnknownIssuer));
        check(rustls::Error::InvalidCertificate(CertificateError::NotValidForName), Some(TlsFailureKind::WrongName));
        check(rustls::Error::InvalidCertificate(CertificateError::Expired), Some(TlsFailureKind::Expired));
        check(rustls::Error::InvalidCertificate(CertificateError::Revoked), Some(TlsFailureKind::Revoked));
        check(rustls::Error::InvalidCertificate(CertificateError::BadSignature), Some(TlsFailureKind::Other));
        check(rustls::Error::DecryptError, None);
        check(rustls::Error::General("handshake failed".into()), None);
        assert_eq!(find_tls_failure(&std::io::Error::other("connection reset")), None);
        let direct = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(find_tls_failure(&direct).map(|f| f.kind), Some(TlsFailureKind::UnknownIssuer));
        assert_eq!(
            find_tls_failure(&wrapped(direct)).unwrap().to_string(),
            "invalid peer certificate: UnknownIssuer",
            "what the user sees"
        );
    }
}
