//! The one HTTP configuration every client `cba` makes (token, Graph, Exchange): extra roots from
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`, `User-Agent: cba/<version>`; and the hint for a refused certificate.

use std::path::{Path, PathBuf};

use cba_http::{HttpConfig, TlsFailureKind};

use crate::exit::{Exit, fail};

/// The configuration for clients whose endpoints are all plain http on loopback (`loopback_http`: `cba sim`, so
/// the platform trust store is not loaded), or not. Extra roots: the PEM bundle `SSL_CERT_FILE` names, and
/// every `*.pem`/`*.crt` file in the folders `SSL_CERT_DIR` lists (`:`-separated, `;` on Windows).
pub fn http_config(loopback_http: bool) -> anyhow::Result<HttpConfig> {
    let file = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()).map(PathBuf::from);
    let dirs: Vec<PathBuf> =
        std::env::var_os("SSL_CERT_DIR").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    config_with_roots(file.as_deref(), &dirs, loopback_http)
}

fn config_with_roots(file: Option<&Path>, dirs: &[PathBuf], loopback_http: bool) -> anyhow::Result<HttpConfig> {
    let mut config =
        HttpConfig::new().user_agent(format!("cba/{}", env!("CARGO_PKG_VERSION"))).platform_roots(!loopback_http);
    if let Some(file) = file {
        config = add_roots(config, "SSL_CERT_FILE", file)?;
    }
    for dir in dirs.iter().filter(|d| !d.as_os_str().is_empty()) {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| fail(Exit::BadInput, format!("cannot read SSL_CERT_DIR folder {}: {e}", dir.display())))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| x.eq_ignore_ascii_case("pem") || x.eq_ignore_ascii_case("crt"))
            })
            .collect();
        files.sort();
        for file in files {
            config = add_roots(config, "SSL_CERT_DIR", &file)?;
        }
    }
    Ok(config)
}

fn add_roots(config: HttpConfig, var: &str, file: &Path) -> anyhow::Result<HttpConfig> {
    let bytes = std::fs::read(file)
        .map_err(|e| fail(Exit::BadInput, format!("cannot read {var} file {}: {e}", file.display())))?;
    config.add_root_certificates(format!("{var} file {}", file.display()), &bytes).map_err(|e| {
        fail(
            Exit::BadInput,
            format!("{e}; {var} must name PEM (or DER) CA certificates to trust, such as a proxy's root CA"),
        )
    })
}

/// What to do about a refused server certificate somewhere in `err`'s chain, for the line after the error.
pub fn tls_hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(cba_http::find_tls_failure).map(|f| tls_failure_hint(&f))
}

/// What to do about a refused server certificate.
pub fn tls_failure_hint(failure: &cba_http::TlsFailure) -> &'static str {
    match failure.kind {
        TlsFailureKind::UnknownIssuer => {
            "the server's certificate is not issued by a CA this machine trusts. Behind a TLS-inspecting proxy, set \
             SSL_CERT_FILE to a PEM bundle with the proxy's root CA (or SSL_CERT_DIR to a folder of .pem/.crt files)"
        }
        TlsFailureKind::WrongName => {
            "the certificate is for another host name: check the URL (--cloud, --authority-host, the profile's \
             endpoints), or whether a proxy answers in the service's place"
        }
        TlsFailureKind::Expired => {
            "the certificate is outside its validity dates: check this machine's clock; otherwise the server (or a \
             proxy in between) presents an expired certificate"
        }
        _ => {
            "the server's certificate cannot be used; behind a TLS-inspecting proxy, set SSL_CERT_FILE to a PEM \
             bundle with the proxy's root CA"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem() -> String {
        cba_cert::generate(&cba_cert::NewCertificate::new("cba test proxy CA")).unwrap().certificate.to_pem()
    }

    #[test]
    fn roots_come_from_the_file_and_the_folders_pem_and_crt_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bundle.pem");
        let pem = pem();
        std::fs::write(&file, format!("{pem}{pem}")).unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        std::fs::write(certs.join("a.pem"), &pem).unwrap();
        std::fs::write(certs.join("b.CRT"), &pem).unwrap();
        std::fs::write(certs.join("README"), "not a certificate").unwrap();

        let config = config_with_roots(Some(&file), std::slice::from_ref(&certs), false).unwrap();
        assert_eq!(config.extra_root_count(), 4, "two in the bundle, a.pem and b.CRT; README skipped");
        assert!(config.uses_platform_roots());
        assert!(!config_with_roots(None, &[], true).unwrap().uses_platform_roots(), "loopback http: no store");
        assert_eq!(config_with_roots(None, &[], false).unwrap().extra_root_count(), 0);
    }

    #[test]
    fn errors_name_the_variable_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("proxy.pem");
        std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let check = |err: anyhow::Error, expected: &[&str]| {
            let text = format!("{err:#}");
            assert_eq!(crate::exit::code_for(&err), Exit::BadInput, "{text}");
            for e in expected {
                assert!(text.contains(e), "{text:?} lacks {e:?}");
            }
        };
        check(
            config_with_roots(Some(&bad), &[], false).unwrap_err(),
            &["SSL_CERT_FILE file", "proxy.pem", "no CERTIFICATE"],
        );
        let missing = dir.path().join("missing.pem");
        check(
            config_with_roots(Some(&missing), &[], false).unwrap_err(),
            &["cannot read SSL_CERT_FILE", "missing.pem"],
        );
        check(
            config_with_roots(None, &[dir.path().to_path_buf()], false).unwrap_err(),
            &["SSL_CERT_DIR file", "proxy.pem"],
        );
        check(config_with_roots(None, &[missing], false).unwrap_err(), &["cannot read SSL_CERT_DIR folder"]);
    }
}
