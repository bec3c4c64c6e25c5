//! Graph v1.0 resources, with Graph's camelCase JSON names. Unknown properties are ignored on the way in.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::wellknown::{EXCHANGE_APP_ID, EXCHANGE_MANAGE_AS_APP_ROLE_ID, SINGLE_TENANT};

/// A certificate credential of an application (`resources/keycredential.md`).
///
/// The same JSON as `cba_cert::KeyCredential`, so the CLI can convert with `serde_json` without this crate
/// knowing any certificate crypto.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredential {
    /// `AsymmetricX509Cert` for certificates.
    #[serde(rename = "type")]
    pub type_: String,
    /// `Verify` for a certificate that signs client assertions.
    pub usage: String,
    /// Base64 (standard) of the certificate DER. Graph returns it only for `$select=keyCredentials`.
    #[serde(default)]
    pub key: Option<String>,
    /// Friendly name (the subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// notBefore, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<String>,
    /// notAfter, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<String>,
    /// Graph's id for the credential (a GUID); Graph makes one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Base64 of up to 32 bytes; when omitted on write, Graph stores the SHA-1 thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_identifier: Option<String>,
}

impl KeyCredential {
    /// The SHA-1 thumbprint (uppercase hex) Graph recorded in `customKeyIdentifier`, when it holds one:
    /// base64 of 20 bytes (what Graph stores when the identifier is omitted), or 40 hex digits.
    pub fn thumbprint_sha1(&self) -> Option<String> {
        let raw = self.custom_key_identifier.as_deref()?.trim();
        if raw.len() == 40 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(raw.to_ascii_uppercase());
        }
        let bytes = STANDARD.decode(raw).ok()?;
        (bytes.len() == 20).then(|| bytes.iter().map(|b| format!("{b:02X}")).collect())
    }

    /// Whether this credential is the certificate with this SHA-1 thumbprint (hex, any case, `:` allowed).
    pub fn matches_thumbprint(&self, thumbprint_sha1_hex: &str) -> bool {
        let wanted: String = thumbprint_sha1_hex.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
        self.thumbprint_sha1().is_some_and(|t| t.eq_ignore_ascii_case(&wanted))
    }

    /// Whether both hold the same certificate bytes (only when both carry `key`).
    pub fn same_key(&self, other: &KeyCredential) -> bool {
        match (&self.key, &other.key) {
            (Some(a), Some(b)) => a.trim() == b.trim(),
            _ => false,
        }
    }
}

/// One permission an application declares it needs (`requiredResourceAccess[].resourceAccess[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAccess {
    /// The app role or scope id.
    pub id: String,
    /// `Role` (application permission) or `Scope` (delegated).
    #[serde(rename = "type")]
    pub type_: String,
}

/// The permissions an application declares on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequiredResourceAccess {
    /// The resource's appId.
    pub resource_app_id: String,
    /// The permissions.
    pub resource_access: Vec<ResourceAccess>,
}

impl RequiredResourceAccess {
    /// Exchange.ManageAsApp only (not the portal's default Graph User.Read).
    pub fn exchange_manage_as_app() -> RequiredResourceAccess {
        RequiredResourceAccess {
            resource_app_id: EXCHANGE_APP_ID.into(),
            resource_access: vec![ResourceAccess { id: EXCHANGE_MANAGE_AS_APP_ROLE_ID.into(), type_: "Role".into() }],
        }
    }
}

/// An application registration (the parts this crate uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// The object id (for `/applications/{id}`).
    pub id: String,
    /// The client id.
    pub app_id: String,
    /// The display name.
    #[serde(default)]
    pub display_name: String,
    /// `AzureADMyOrg` for single tenant.
    #[serde(default)]
    pub sign_in_audience: Option<String>,
    /// Certificate credentials (`key` is null unless fetched with `$select=keyCredentials`).
    #[serde(default)]
    pub key_credentials: Vec<KeyCredential>,
    /// Declared permissions.
    #[serde(default)]
    pub required_resource_access: Vec<RequiredResourceAccess>,
    /// When it was created.
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// The client-chosen alternate key (`/applications(uniqueName='…')`), when one was set. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
}

impl Application {
    /// Whether the certificate with this SHA-1 thumbprint is registered.
    pub fn has_certificate(&self, thumbprint_sha1_hex: &str) -> bool {
        self.key_credentials.iter().any(|k| k.matches_thumbprint(thumbprint_sha1_hex))
    }
}

/// The body of `POST /applications`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewApplication {
    /// The display name.
    pub display_name: String,
    /// `AzureADMyOrg` (single tenant) by default.
    pub sign_in_audience: String,
    /// Declared permissions.
    pub required_resource_access: Vec<RequiredResourceAccess>,
    /// Certificates registered in the same request.
    pub key_credentials: Vec<KeyCredential>,
}

impl NewApplication {
    /// A single-tenant app that declares Exchange.ManageAsApp only and carries `key`.
    pub fn for_exchange(display_name: impl Into<String>, key: KeyCredential) -> NewApplication {
        NewApplication {
            display_name: display_name.into(),
            sign_in_audience: SINGLE_TENANT.into(),
            required_resource_access: vec![RequiredResourceAccess::exchange_manage_as_app()],
            key_credentials: vec![key],
        }
    }
}

/// An app role a resource offers (`servicePrincipal.appRoles[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    /// The role id.
    pub id: String,
    /// The value that appears in tokens' `roles` (e.g. `Exchange.ManageAsApp`).
    #[serde(default)]
    pub value: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A service principal (enterprise application).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// The object id.
    pub id: String,
    /// The application's client id.
    pub app_id: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// App roles it offers as a resource.
    #[serde(default)]
    pub app_roles: Vec<AppRole>,
}

/// An app role granted to a principal (`appRoleAssignment`): the admin consent to an application permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    /// Opaque id (not a GUID).
    pub id: String,
    /// The client service principal.
    pub principal_id: String,
    /// The resource service principal.
    pub resource_id: String,
    /// The app role.
    pub app_role_id: String,
    /// Display name of the resource.
    #[serde(default)]
    pub resource_display_name: Option<String>,
}

/// The body of `POST /servicePrincipals/{resourceId}/appRoleAssignedTo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAppRoleAssignment {
    /// The client service principal.
    pub principal_id: String,
    /// The resource service principal.
    pub resource_id: String,
    /// The app role.
    pub app_role_id: String,
}

/// An Entra (directory) role assigned to a principal (`unifiedRoleAssignment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Opaque id.
    pub id: String,
    /// Role template (or definition) id.
    pub role_definition_id: String,
    /// The principal (our service principal).
    pub principal_id: String,
    /// `/` for the whole directory.
    #[serde(default)]
    pub directory_scope_id: Option<String>,
}

/// What a create-or-adopt call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created<T> {
    /// Made now.
    Created(T),
    /// It was already there (upsert answered 204, or the create was refused as a duplicate).
    AlreadyExisted,
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deleted {
    /// Removed now.
    Deleted,
    /// 404: it was not there (an earlier run removed it): success for a rerunnable teardown.
    AlreadyGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(custom: Option<&str>) -> KeyCredential {
        KeyCredential {
            type_: "AsymmetricX509Cert".into(),
            usage: "Verify".into(),
            key: None,
            display_name: None,
            start_date_time: None,
            end_date_time: None,
            key_id: None,
            custom_key_identifier: custom.map(str::to_string),
        }
    }

    #[test]
    fn thumbprint_from_custom_key_identifier() {
        let hex = "52ED9B5038A47B9E2E2190715CC238359D4F8F73";
        let bytes: Vec<u8> = (0..20).map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap()).collect();
        let b64 = STANDARD.encode(&bytes);
        assert_eq!(key(Some(&b64)).thumbprint_sha1().as_deref(), Some(hex));
        assert_eq!(key(Some(&hex.to_lowercase())).thumbprint_sha1().as_deref(), Some(hex));
        assert!(key(Some(&b64)).matches_thumbprint("52:ed:9b:50:38:a4:7b:9e:2e:21:90:71:5c:c2:38:35:9d:4f:8f:73"));
        assert!(!key(Some(&b64)).matches_thumbprint("00ED9B5038A47B9E2E2190715CC238359D4F8F73"));
        assert_eq!(key(Some("c2hvcnQ=")).thumbprint_sha1(), None, "not 20 bytes");
        assert_eq!(key(None).thumbprint_sha1(), None);
    }

    #[test]
    fn key_credential_json_matches_graph_names() {
        let mut k = key(None);
        k.key = Some("AAAA".into());
        k.key_id = Some("k".into());
        let json = serde_json::to_value(&k).unwrap();
        assert_eq!(json, serde_json::json!({"type":"AsymmetricX509Cert","usage":"Verify","key":"AAAA","keyId":"k"}));
    }
}

/// `organization`: the tenant a token acts in (`GET /organization`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// The tenant id.
    pub id: String,
    /// The tenant's name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Its verified domains.
    #[serde(default)]
    pub verified_domains: Vec<VerifiedDomain>,
}

/// A verified domain of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDomain {
    /// The domain, e.g. `contoso.onmicrosoft.com`.
    pub name: String,
    /// The tenant's initial `*.onmicrosoft.com` domain (what `Connect-ExchangeOnline -Organization` takes).
    #[serde(default)]
    pub is_initial: bool,
    /// The default domain.
    #[serde(default)]
    pub is_default: bool,
}

impl Organization {
    /// Whether `tenant` (an id or a domain) names this organization.
    pub fn is(&self, tenant: &str) -> bool {
        self.id.eq_ignore_ascii_case(tenant)
            || self.verified_domains.iter().any(|d| d.name.eq_ignore_ascii_case(tenant))
    }

    /// The initial `*.onmicrosoft.com` domain.
    pub fn initial_domain(&self) -> Option<&str> {
        self.verified_domains.iter().find(|d| d.is_initial).map(|d| d.name.as_str())
    }
}
