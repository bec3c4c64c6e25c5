//! PowerShell lines for the connection `cba` makes: the one builder of `Connect-ExchangeOnline` (used by
//! `cba setup`'s next steps and `cba exo check`), and `$env:NAME='value'` assignments.

use std::path::{Path, PathBuf};

use cba_token::Cloud;

/// Where `-CertificatePassword` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfxPassword<'a> {
    /// Asked for when the line runs (`Read-Host -AsSecureString`).
    Prompt,
    /// An environment variable, for unattended scripts (`$env:CBA_PFX_PASSWORD`).
    Env(&'a str),
    /// A secret in a SecretManagement vault (`Get-Secret NAME`, a SecureString).
    Secret(&'a str),
}

impl PfxPassword<'_> {
    /// The PowerShell expression that yields the password as a SecureString.
    fn expression(self) -> String {
        match self {
            PfxPassword::Prompt => "(Read-Host -AsSecureString -Prompt 'PFX password')".to_string(),
            PfxPassword::Env(var) => format!("(ConvertTo-SecureString $env:{var} -AsPlainText -Force)"),
            PfxPassword::Secret(name) => format!("(Get-Secret -Name {})", word(name)),
        }
    }
}

/// What `Connect-ExchangeOnline` needs to sign in as the app. Missing parts print as `<placeholders>`.
#[derive(Debug, Clone)]
pub struct ConnectExchangeOnline {
    pub app_id: Option<String>,
    /// Made absolute (against the current folder) when the line is built, so it works from any folder.
    pub certificate: Option<PathBuf>,
    /// The tenant's `*.onmicrosoft.com` domain (see [`organization`]); `None` prints a placeholder.
    pub organization: Option<String>,
    pub cloud: Cloud,
}

impl ConnectExchangeOnline {
    /// The cross-platform line: certificate file and password (docs/wire-formats.md §2).
    pub fn with_file(&self, password: PfxPassword<'_>) -> String {
        let file = match &self.certificate {
            Some(path) => quote_path(path),
            None => "<certificate.pfx>".to_string(),
        };
        format!(
            "Connect-ExchangeOnline -AppId {} -CertificateFilePath {file} -CertificatePassword {}{}",
            self.app_id(),
            password.expression(),
            self.tail()
        )
    }

    /// The Windows line: the certificate imported into the user's store, named by its SHA-1 thumbprint.
    pub fn with_thumbprint(&self, thumbprint_sha1: &str) -> String {
        format!(
            "Connect-ExchangeOnline -AppId {} -CertificateThumbprint {}{}",
            self.app_id(),
            word(thumbprint_sha1),
            self.tail()
        )
    }

    /// `Import-PfxCertificate` into `Cert:\CurrentUser\My`, the step before [`Self::with_thumbprint`].
    pub fn import_pfx(&self, password: PfxPassword<'_>) -> String {
        let file = self.certificate.as_deref().map(quote_path).unwrap_or_else(|| "<certificate.pfx>".to_string());
        format!(
            "Import-PfxCertificate -FilePath {file} -CertStoreLocation Cert:\\CurrentUser\\My -Password {}",
            password.expression()
        )
    }

    fn app_id(&self) -> String {
        self.app_id.as_deref().map(word).unwrap_or_else(|| "<app-id>".to_string())
    }

    /// `-Organization …` and, outside the global cloud, `-ExchangeEnvironmentName …`.
    fn tail(&self) -> String {
        let organization = match &self.organization {
            Some(domain) => word(domain),
            None => placeholder_organization(self.cloud).to_string(),
        };
        match exchange_environment(self.cloud) {
            Some(env) => format!(" -Organization {organization} -ExchangeEnvironmentName {env}"),
            None => format!(" -Organization {organization}"),
        }
    }
}

/// `-ExchangeEnvironmentName` for clouds other than the global one (docs/wire-formats.md §2; global's
/// `O365Default` is the cmdlet's default, so it is left out).
pub fn exchange_environment(cloud: Cloud) -> Option<&'static str> {
    match cloud {
        Cloud::Global => None,
        Cloud::UsGovHigh => Some("O365USGovGCCHigh"),
        Cloud::UsGovDod => Some("O365USGovDoD"),
        Cloud::China => Some("O365China"),
    }
}

/// The value for `-Organization` from a domain `cba` knows (the profile's `tenant_domain`, the tenant as
/// given, what Exchange calls the organization): only the tenant's initial `*.onmicrosoft.com` domain
/// (`*.partner.onmschina.cn` in 21Vianet) is what Connect-ExchangeOnline takes. A GUID or a custom domain is
/// `None`, and the line shows a placeholder.
pub fn organization(domain: Option<&str>) -> Option<String> {
    let domain = domain?.trim().trim_end_matches('.');
    let lower = domain.to_ascii_lowercase();
    let initial = [".onmicrosoft.com", ".partner.onmschina.cn"]
        .iter()
        .any(|suffix| lower.len() > suffix.len() && lower.ends_with(suffix));
    initial.then(|| domain.to_string())
}

/// What to write in place of an unknown organization.
pub fn placeholder_organization(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::China => "<tenant>.partner.onmschina.cn",
        _ => "<tenant>.onmicrosoft.com",
    }
}

/// `$env:NAME='value'`.
pub fn env_assignment(name: &str, value: &str) -> String {
    format!("$env:{name}={}", quote(value))
}

/// A PowerShell single-quoted string: nothing inside is expanded; each quote character is doubled
/// (PowerShell also takes the typographic single quotes ‘ ’ ‚ ‛ as quotes).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// An argument: as is when PowerShell reads it as one plain word (ids, domains, thumbprints), else quoted.
pub fn word(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if plain && !text.starts_with('-') { text.to_string() } else { quote(text) }
}

/// An absolute path, always quoted.
fn quote_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    quote(&absolute.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cloud: Cloud, organization: Option<&str>) -> ConnectExchangeOnline {
        ConnectExchangeOnline {
            app_id: Some("631a96bc-1111-2222-3333-444455556666".into()),
            certificate: Some(PathBuf::from("/home/ann/my certs/o'brien.pfx")),
            organization: organization.map(str::to_string),
            cloud,
        }
    }

    #[test]
    fn quotes_are_doubled_and_nothing_expands() {
        assert_eq!(quote("/home/ann/my certs/o'brien.pfx"), "'/home/ann/my certs/o''brien.pfx'");
        assert_eq!(quote("$env:HOME `n"), "'$env:HOME `n'", "single quotes expand nothing");
        assert_eq!(quote("it\u{2019}s"), "'it\u{2019}\u{2019}s'", "a typographic quote also ends the string");
        assert_eq!(quote(""), "''");
        assert_eq!(word("631a-bc.d_e"), "631a-bc.d_e");
        for quoted in ["a b", "x;y", "-Force", "", "$x"] {
            assert_eq!(word(quoted), quote(quoted), "{quoted:?}");
        }
    }

    #[test]
    fn the_certificate_path_is_absolute_and_quoted() {
        let mut c = line(Cloud::Global, Some("contoso.onmicrosoft.com"));
        assert_eq!(
            c.with_file(PfxPassword::Prompt),
            "Connect-ExchangeOnline -AppId 631a96bc-1111-2222-3333-444455556666 \
             -CertificateFilePath '/home/ann/my certs/o''brien.pfx' \
             -CertificatePassword (Read-Host -AsSecureString -Prompt 'PFX password') \
             -Organization contoso.onmicrosoft.com"
        );
        c.certificate = Some(PathBuf::from("certs/a b.pfx"));
        let cwd = std::env::current_dir().unwrap();
        let expected = quote(&cwd.join("certs/a b.pfx").display().to_string());
        assert!(c.with_file(PfxPassword::Prompt).contains(&format!("-CertificateFilePath {expected} ")));
    }

    #[test]
    fn each_cloud_names_its_exchange_environment() {
        let check = |cloud: Cloud, tail: &str| {
            let c = line(cloud, Some("contoso.onmicrosoft.com"));
            for text in [c.with_file(PfxPassword::Prompt), c.with_thumbprint("81B3")] {
                assert!(text.ends_with(tail), "{cloud:?}: {text}");
            }
        };
        check(Cloud::Global, "-Organization contoso.onmicrosoft.com");
        check(Cloud::UsGovHigh, "-Organization contoso.onmicrosoft.com -ExchangeEnvironmentName O365USGovGCCHigh");
        check(Cloud::UsGovDod, "-Organization contoso.onmicrosoft.com -ExchangeEnvironmentName O365USGovDoD");
        check(Cloud::China, "-Organization contoso.onmicrosoft.com -ExchangeEnvironmentName O365China");
        assert!(!line(Cloud::Global, None).with_file(PfxPassword::Prompt).contains("-ExchangeEnvironmentName"));
    }

    #[test]
    fn unattended_password_forms() {
        let c = line(Cloud::Global, None);
        let env = c.with_file(PfxPassword::Env("CBA_PFX_PASSWORD"));
        assert!(
            env.contains(" -CertificatePassword (ConvertTo-SecureString $env:CBA_PFX_PASSWORD -AsPlainText -Force) "),
            "{env}"
        );
        let secret = c.with_file(PfxPassword::Secret("contoso-exo"));
        assert!(secret.contains(" -CertificatePassword (Get-Secret -Name contoso-exo) "), "{secret}");
        assert!(
            c.import_pfx(PfxPassword::Prompt).starts_with(
                "Import-PfxCertificate -FilePath '/home/ann/my certs/o''brien.pfx' -CertStoreLocation Cert:\\CurrentUser\\My -Password (Read-Host"
            )
        );
    }

    #[test]
    fn only_an_initial_domain_is_an_organization() {
        assert_eq!(organization(Some("contoso.onmicrosoft.com")).as_deref(), Some("contoso.onmicrosoft.com"));
        assert_eq!(organization(Some("Contoso.OnMicrosoft.com.")).as_deref(), Some("Contoso.OnMicrosoft.com"));
        assert_eq!(organization(Some("contoso.partner.onmschina.cn")).as_deref(), Some("contoso.partner.onmschina.cn"));
        for not_one in ["8f0c6e4a-55a2-4bd0-9a4e-2d6a2f6a1b11", "contoso.com", ".onmicrosoft.com", ""] {
            assert_eq!(organization(Some(not_one)), None, "{not_one}");
        }
        assert_eq!(organization(None), None);
        let c = line(Cloud::Global, None);
        assert!(c.with_file(PfxPassword::Prompt).ends_with(" -Organization <tenant>.onmicrosoft.com"));
        let c = ConnectExchangeOnline { app_id: None, certificate: None, ..line(Cloud::China, None) };
        assert_eq!(
            c.with_thumbprint("81B3"),
            "Connect-ExchangeOnline -AppId <app-id> -CertificateThumbprint 81B3 \
             -Organization <tenant>.partner.onmschina.cn -ExchangeEnvironmentName O365China"
        );
    }

    #[test]
    fn environment_assignments() {
        assert_eq!(env_assignment("AZURE_CLIENT_ID", "631a"), "$env:AZURE_CLIENT_ID='631a'");
        assert_eq!(env_assignment("CBA_ACCESS_TOKEN", "a'b$c"), "$env:CBA_ACCESS_TOKEN='a''b$c'");
    }
}
