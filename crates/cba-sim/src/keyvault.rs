//! A strict Azure Key Vault (certificates and keys/sign) and the App Service managed-identity endpoint that
//! issues its tokens, under the sim's one root:
//!
//! - `{base}/keyvault/{vault}/certificates/{name}/create` (POST), `…/{name}/pending` (GET),
//!   `…/{name}[/{version}]` (GET; PATCH of a version's `attributes.enabled`),
//!   `{base}/keyvault/{vault}/keys/{name}/{version}/sign` (POST). The vault is `cba-sim`
//!   ([`SimTenant::keyvault_url`]); any other name is 404.
//! - `{base}/msi/token?resource=…&api-version=2019-08-01` with `X-IDENTITY-HEADER`
//!   ([`SimTenant::identity_endpoint`], [`SimTenant::identity_header`]).
//!
//! Every vault route wants a bearer token the sim issued for `https://vault.azure.net` (else 401 with the
//! `WWW-Authenticate` challenge). The private keys stay here: a create generates an RSA key and a
//! self-signed certificate with the policy's subject, EKU and validity; the answers hold the certificate
//! only. A sign is checked (alg, a 32-byte digest, an enabled version) and made with the stored key.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cba_cert::{Certificate, KeySize, NewCertificate, PrivateKey, Validity};
use serde_json::{Value, json};
use wiremock::Request;

use crate::http::{self, Reply};
use crate::ids;
use crate::jwt::{self, AccessClaims};
use crate::server::Shared;
use crate::sim::{SimTenant, SimTenantBuilder};

/// The one vault the sim serves.
pub(crate) const VAULT_NAME: &str = "cba-sim";
/// The vault audience (the public cloud's).
pub(crate) const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The client id of the sim's managed identity.
pub(crate) const IDENTITY_CLIENT_ID: &str = "7d0c9f3e-5b2a-4c1e-9f6d-2a8b4c6d8e0f";

/// The vault's knobs (see the builder methods).
#[derive(Debug, Clone, Default)]
pub(crate) struct VaultKnobs {
    pub(crate) forbidden: bool,
    /// Polls of a new certificate's operation answered `inProgress` before it completes (`None`: 1).
    pub(crate) pending_polls: Option<u32>,
    pub(crate) fail_pending: bool,
    pub(crate) throttle_burst: u64,
    pub(crate) fail_5xx_burst: u64,
    pub(crate) fail_after_create: u64,
    pub(crate) wrong_signatures: bool,
}

/// Everything the vault holds.
#[derive(Debug, Default)]
pub(crate) struct Vault {
    certificates: BTreeMap<String, Vec<Version>>,
    pending: BTreeMap<String, Pending>,
    requests: u64,
    creates_failed_after: u64,
    forbidden: Option<bool>,
    signs: u64,
    /// The `X-IDENTITY-HEADER` value the managed-identity endpoint wants.
    pub(crate) identity_header: String,
}

struct Version {
    version: String,
    key: PrivateKey,
    certificate: Certificate,
    enabled: bool,
    created: i64,
    policy: Value,
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version")
            .field("version", &self.version)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Pending {
    request_id: String,
    polls_left: u32,
    status: &'static str,
    /// The version being made (moved into `certificates` on completion).
    made: Option<Version>,
}

/// A vault certificate version as [`SimTenant::keyvault_certificates`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct VaultCertificateSnapshot {
    /// Certificate name.
    pub name: String,
    /// Version id.
    pub version: String,
    /// `attributes.enabled`.
    pub enabled: bool,
    /// SHA-1 thumbprint of the certificate (hex, upper case).
    pub thumbprint: String,
    /// The policy's `key_props.exportable` (the sim never hands out a private key either way).
    pub exportable: bool,
}

impl Vault {
    pub(crate) fn new() -> Vault {
        Vault { identity_header: ids::opaque(), ..Vault::default() }
    }
}

impl SimTenantBuilder {
    /// The vault answers every request 403 `ForbiddenByRbac`, as when the identity has no role on it (default
    /// false). See also [`SimTenant::set_keyvault_forbidden`].
    pub fn keyvault_forbidden(mut self, forbidden: bool) -> Self {
        self.knobs.keyvault.forbidden = forbidden;
        self
    }

    /// Polls of a new certificate's `/pending` answered `inProgress` before it is `completed` (default 1).
    pub fn keyvault_pending_polls(mut self, polls: u32) -> Self {
        self.knobs.keyvault.pending_polls = Some(polls);
        self
    }

    /// Certificate operations end `failed` (the issuer refused; default false).
    pub fn keyvault_fail_pending(mut self, fail: bool) -> Self {
        self.knobs.keyvault.fail_pending = fail;
        self
    }

    /// Answer the first `n` vault requests 429 + `Retry-After` (the sim's `retry_after`; default 0). The vault
    /// has its own counter: the throttling knobs of login, Graph and Exchange do not apply to it.
    pub fn keyvault_throttle_burst(mut self, n: u64) -> Self {
        self.knobs.keyvault.throttle_burst = n;
        self
    }

    /// Answer the first `n` vault requests 503 (default 0).
    pub fn keyvault_fail_5xx_burst(mut self, n: u64) -> Self {
        self.knobs.keyvault.fail_5xx_burst = n;
        self
    }

    /// Sign a digest other than the one sent (a vault answering with a signature that does not verify; default
    /// false): a client must check each signature before it uses it.
    pub fn keyvault_wrong_signatures(mut self, wrong: bool) -> Self {
        self.knobs.keyvault.wrong_signatures = wrong;
        self
    }

    /// The first `n` certificate creates are carried out, then answered 500 (the outcome a client cannot
    /// know; default 0).
    pub fn keyvault_fail_after_create(mut self, n: u64) -> Self {
        self.knobs.keyvault.fail_after_create = n;
        self
    }
}

impl SimTenant {
    /// The sim's vault root (`{base}/keyvault/cba-sim`): certificate URLs are `{this}/certificates/NAME`.
    pub fn keyvault_url(&self) -> String {
        format!("{}/keyvault/{VAULT_NAME}", self.shared.base_url)
    }

    /// The managed-identity endpoint, App Service form (what `IDENTITY_ENDPOINT` holds there).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.shared.base_url)
    }

    /// The secret the managed-identity endpoint wants in `X-IDENTITY-HEADER` (`IDENTITY_HEADER`).
    pub fn identity_header(&self) -> String {
        self.shared.vault().identity_header.clone()
    }

    /// A vault token of the sim's managed identity, as the identity endpoint issues it now.
    pub fn keyvault_token(&self) -> String {
        vault_token(&self.shared)
    }

    /// Every certificate version in the vault, by name then age.
    pub fn keyvault_certificates(&self) -> Vec<VaultCertificateSnapshot> {
        let vault = self.shared.vault();
        let mut out = Vec::new();
        for (name, versions) in &vault.certificates {
            for v in versions {
                out.push(VaultCertificateSnapshot {
                    name: name.clone(),
                    version: v.version.clone(),
                    enabled: v.enabled,
                    thumbprint: v.certificate.thumbprint_sha1_hex(),
                    exportable: v.policy.pointer("/key_props/exportable").and_then(Value::as_bool).unwrap_or(false),
                });
            }
        }
        out
    }

    /// Signatures the vault has made.
    pub fn keyvault_sign_count(&self) -> u64 {
        self.shared.vault().signs
    }

    /// Start or stop answering 403 `ForbiddenByRbac` (overrides the builder's knob).
    pub fn set_keyvault_forbidden(&self, forbidden: bool) {
        self.shared.vault().forbidden = Some(forbidden);
    }
}

fn vault_token(shared: &Shared) -> String {
    let tenant_id = shared.lock().tenants.first().map(|t| t.id.clone()).unwrap_or_default();
    let now = shared.clock.now_secs();
    let oid = ids::derived_guid(&tenant_id, 0x6b76);
    jwt::issue(&AccessClaims {
        aud: VAULT_RESOURCE.into(),
        iss: format!("https://sts.windows.net/{tenant_id}/"),
        iat: now,
        nbf: now,
        exp: now + shared.knobs.token_lifetime_secs,
        tid: tenant_id,
        appid: IDENTITY_CLIENT_ID.into(),
        app_displayname: Some("cba-sim managed identity".into()),
        appidacr: "2".into(),
        idtyp: "app".into(),
        oid: oid.clone(),
        sub: oid,
        uti: ids::opaque()[..22].to_string(),
        ver: "1.0".into(),
        ..AccessClaims::default()
    })
}

/// Whether a path is the vault's or the identity endpoint's.
pub(crate) fn owns(segments: &[String]) -> bool {
    matches!(segments.first().map(String::as_str), Some("keyvault" | "msi"))
}

pub(crate) fn handle(shared: &Shared, request: &Request, segments: &[String]) -> Reply {
    if segments.first().map(String::as_str) == Some("msi") {
        return identity(shared, request, segments);
    }
    let method = request.method.as_str();
    let rest: Vec<&str> = segments.iter().skip(2).map(String::as_str).collect();
    if segments.get(1).map(String::as_str) != Some(VAULT_NAME) {
        return error(404, "VaultNotFound", &format!("cba-sim serves one vault, {{base}}/keyvault/{VAULT_NAME}"));
    }
    let base = format!("{}/keyvault/{VAULT_NAME}", shared.base_url);
    if let Some(reply) = authorize(shared, request) {
        return reply;
    }
    let query = http::query(request);
    match http::param(&query, "api-version") {
        None => return error(400, "BadParameter", "The 'api-version' query parameter is missing"),
        Some(v) if !(v.starts_with("7.") || v.starts_with("20")) => {
            return error(400, "BadParameter", &format!("The specified version ({v}) is not recognized"));
        }
        Some(_) => {}
    }
    let knobs = &shared.knobs.keyvault;
    let mut vault = shared.vault();
    vault.requests += 1;
    let n = vault.requests;
    if n <= knobs.throttle_burst {
        return error(429, "Throttled", "Request was not processed because too many requests were received.")
            .header("Retry-After", shared.knobs.retry_after_secs.to_string());
    }
    if n <= knobs.throttle_burst.saturating_add(knobs.fail_5xx_burst) {
        return error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
            .header("Retry-After", shared.knobs.retry_after_secs.to_string());
    }
    if vault.forbidden.unwrap_or(knobs.forbidden) {
        let action = match (method, rest.first().copied(), rest.last().copied()) {
            (_, Some("keys"), _) => "Microsoft.KeyVault/vaults/keys/sign/action",
            ("POST", _, _) => "Microsoft.KeyVault/vaults/certificates/create/action",
            _ => "Microsoft.KeyVault/vaults/certificates/read",
        };
        return json_reply(
            403,
            &json!({"error": {
                "code": "Forbidden",
                "message": format!("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={IDENTITY_CLIENT_ID}\r\nAction: '{action}'\r\nResource: '/vaults/{VAULT_NAME}'\r\nAssignment: (not found)\r\nVault: {VAULT_NAME};location=westeurope\r\n"),
                "innererror": {"code": "ForbiddenByRbac"}
            }}),
        );
    }
    match (method, rest.as_slice()) {
        ("POST", ["certificates", name, "create"]) => create(shared, &mut vault, &base, name, request),
        ("GET", ["certificates", name, "pending"]) => pending(shared, &mut vault, &base, name),
        ("GET", ["certificates", name]) => get(&vault, &base, name, None),
        ("GET", ["certificates", name, version]) => get(&vault, &base, name, Some(version)),
        ("PATCH", ["certificates", name, version]) => update(&mut vault, &base, name, version, request),
        ("POST", ["keys", name, version, "sign"]) => sign(shared, &mut vault, &base, name, version, request),
        _ => error(
            if ["GET", "POST", "PATCH"].contains(&method) { 404 } else { 405 },
            "NotFound",
            &format!("cba-sim's vault does not serve {method} {}", request.url.path()),
        ),
    }
}

/// `None` when the bearer token is one the sim issued for the vault audience, else the 401.
fn authorize(shared: &Shared, request: &Request) -> Option<Reply> {
    let tenant = shared.lock().tenants.first().map(|t| t.id.clone()).unwrap_or_default();
    let challenge = format!("Bearer authorization=\"{}/{tenant}\", resource=\"{VAULT_RESOURCE}\"", shared.base_url);
    let refuse =
        |message: &str| Some(error(401, "Unauthorized", message).header("WWW-Authenticate", challenge.clone()));
    let Some(header) = http::header(request, "authorization") else {
        return refuse("AKV10000: Request is missing a Bearer or PoP token.");
    };
    let Some(token) = header.strip_prefix("Bearer ") else {
        return refuse("AKV10000: Request is missing a Bearer or PoP token.");
    };
    let claims = match jwt::verify_access(token.trim(), shared.clock.now_secs()) {
        Ok(c) => c,
        Err(jwt::AccessError::Expired) => return refuse("AKV10022: Invalid audience or token expired."),
        Err(_) => return refuse("AKV10032: Invalid issuer or signature."),
    };
    if claims.aud.trim_end_matches('/') != VAULT_RESOURCE {
        return refuse(&format!("AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {}.", claims.aud));
    }
    if claims.tid != tenant {
        return refuse("AKV10032: Invalid issuer. Expected the vault's tenant.");
    }
    None
}

fn create(shared: &Shared, vault: &mut Vault, base: &str, name: &str, request: &Request) -> Reply {
    if !valid_name(name) {
        return error(
            400,
            "BadParameter",
            &format!("Certificate name '{name}' is invalid: 1-127 letters, digits and '-'"),
        );
    }
    if vault.pending.get(name).is_some_and(|p| p.status == "inProgress") {
        return error(409, "Conflict", &format!("Certificate {name} is currently being created."));
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(v) => v,
        Err(_) => return error(400, "BadParameter", "The request body is not valid JSON"),
    };
    let Some(policy) = body.get("policy").filter(|p| p.is_object()) else {
        return error(400, "BadParameter", "Property 'policy' is required");
    };
    let request_params = match check_policy(policy) {
        Ok(r) => r,
        Err(message) => return error(400, "BadParameter", &message),
    };
    let (subject, months, bits) = request_params;
    let days = if months % 12 == 0 { Validity::Years(months / 12) } else { Validity::Days(months * 30 + months / 2) };
    let Some(key_size) = KeySize::from_bits(bits) else {
        return error(400, "BadParameter", &format!("Invalid key size {bits}"));
    };
    let made = match cba_cert::generate(
        &NewCertificate::new(name).subject(subject).validity(days).key_size(key_size).now(shared.clock.now()),
    ) {
        Ok(identity) => identity,
        Err(e) => return error(400, "BadParameter", &format!("The policy's x509_props cannot be used: {e}")),
    };
    let Some(key) = made.private_key else {
        return error(500, "InternalError", "key generation produced no key");
    };
    let version = ids::guid().replace('-', "");
    let polls = if shared.knobs.keyvault.fail_pending { 0 } else { shared.knobs.keyvault.pending_polls.unwrap_or(1) };
    let request_id = ids::guid();
    vault.pending.insert(
        name.to_string(),
        Pending {
            request_id: request_id.clone(),
            polls_left: polls,
            status: "inProgress",
            made: Some(Version {
                version,
                key,
                certificate: made.certificate,
                enabled: true,
                created: shared.clock.now_secs(),
                policy: policy.clone(),
            }),
        },
    );
    if vault.creates_failed_after < shared.knobs.keyvault.fail_after_create {
        vault.creates_failed_after += 1;
        return error(500, "InternalServerError", "An unexpected error occurred.");
    }
    let op = operation_json(base, name, "inProgress", &request_id, None);
    json_reply(202, &op).header("Location", format!("{base}/certificates/{name}/pending?api-version=7.4"))
}

/// (subject, validity months, key size) of a policy the vault accepts, or the vault's message.
fn check_policy(policy: &Value) -> Result<(String, u32, u32), String> {
    let key = policy.get("key_props").cloned().unwrap_or_else(|| json!({}));
    let kty = key.get("kty").and_then(Value::as_str).unwrap_or("RSA");
    if !["RSA", "RSA-HSM"].contains(&kty) {
        return Err(format!("Key type '{kty}' is not supported here: cba-sim makes RSA keys"));
    }
    let bits = match key.get("key_size") {
        None => 2048,
        Some(v) => v
            .as_u64()
            .filter(|b| [2048, 3072, 4096].contains(b))
            .ok_or("Invalid key size; RSA keys are 2048, 3072 or 4096 bits")? as u32,
    };
    if let Some(e) = key.get("exportable")
        && !e.is_boolean()
    {
        return Err("Property 'exportable' must be true or false".into());
    }
    let issuer = policy.pointer("/issuer/name").and_then(Value::as_str).unwrap_or("Unknown");
    if !issuer.eq_ignore_ascii_case("Self") {
        return Err(format!("Issuer '{issuer}' is not configured in cba-sim's vault: use Self"));
    }
    let x509 = policy.get("x509_props").ok_or("Property 'x509_props' is required")?;
    let subject = x509.get("subject").and_then(Value::as_str).ok_or("Property 'x509_props.subject' is required")?;
    if !subject.trim_start().to_ascii_uppercase().starts_with("CN=") {
        return Err(format!("Subject '{subject}' is invalid: it must hold CN="));
    }
    let months = match x509.get("validity_months") {
        None => 12,
        Some(v) => {
            v.as_u64().filter(|m| (1..=1200).contains(m)).ok_or("Property 'validity_months' must be 1 to 1200")? as u32
        }
    };
    if let Some(ekus) = x509.get("ekus") {
        let ok = ekus.as_array().is_some_and(|a| {
            a.iter().all(|e| e.as_str().is_some_and(|s| s.split('.').all(|p| p.parse::<u32>().is_ok())))
        });
        if !ok {
            return Err("Property 'ekus' must be a list of OIDs".into());
        }
    }
    const USAGES: &[&str] = &[
        "digitalSignature",
        "nonRepudiation",
        "keyEncipherment",
        "dataEncipherment",
        "keyAgreement",
        "keyCertSign",
        "cRLSign",
        "encipherOnly",
        "decipherOnly",
    ];
    if let Some(usages) = x509.get("key_usage") {
        let ok = usages.as_array().is_some_and(|a| a.iter().all(|u| u.as_str().is_some_and(|s| USAGES.contains(&s))));
        if !ok {
            return Err(format!("Property 'key_usage' must list values of {USAGES:?}"));
        }
    }
    Ok((subject.to_string(), months, bits))
}

fn pending(shared: &Shared, vault: &mut Vault, base: &str, name: &str) -> Reply {
    let Some(op) = vault.pending.get_mut(name) else {
        return error(404, "PendingCertificateNotFound", &format!("Pending certificate not found: {name}"));
    };
    let mut completed = None;
    if op.status == "inProgress" {
        if shared.knobs.keyvault.fail_pending {
            op.status = "failed";
            op.made = None;
        } else if op.polls_left == 0 {
            op.status = "completed";
            completed = op.made.take();
        } else {
            op.polls_left -= 1;
        }
    }
    let (status, request_id) = (op.status, op.request_id.clone());
    if let Some(made) = completed {
        vault.certificates.entry(name.to_string()).or_default().push(made);
    }
    let failure = (status == "failed")
        .then(|| json!({"code": "IssuerFailed", "message": "The issuer could not create the certificate."}));
    json_reply(200, &operation_json(base, name, status, &request_id, failure))
}

fn operation_json(base: &str, name: &str, status: &str, request_id: &str, error: Option<Value>) -> Value {
    let mut op = json!({
        "id": format!("{base}/certificates/{name}/pending"),
        "issuer": {"name": "Self"},
        "cancellation_requested": false,
        "status": status,
        "status_details": match status {
            "inProgress" => "Pending certificate created. Certificate request is in progress.",
            "completed" => "",
            _ => "The certificate operation failed.",
        },
        "request_id": request_id,
    });
    if status == "completed" {
        op["target"] = json!(format!("{base}/certificates/{name}"));
    }
    if let Some(e) = error {
        op["error"] = e;
    }
    op
}

fn find<'v>(vault: &'v Vault, name: &str, version: Option<&str>) -> Option<&'v Version> {
    let versions = vault.certificates.get(name)?;
    match version {
        None => versions.last(),
        Some(v) => versions.iter().find(|x| x.version == v),
    }
}

fn get(vault: &Vault, base: &str, name: &str, version: Option<&str>) -> Reply {
    match find(vault, name, version) {
        Some(v) => json_reply(200, &certificate_json(base, name, v)),
        None => not_found_certificate(name, version),
    }
}

fn not_found_certificate(name: &str, version: Option<&str>) -> Reply {
    let which = version.map(|v| format!("{name}/{v}")).unwrap_or_else(|| name.to_string());
    error(
        404,
        "CertificateNotFound",
        &format!(
            "A certificate with (name/id) {which} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command."
        ),
    )
}

fn certificate_json(base: &str, name: &str, v: &Version) -> Value {
    let c = &v.certificate;
    json!({
        "id": format!("{base}/certificates/{name}/{}", v.version),
        "kid": format!("{base}/keys/{name}/{}", v.version),
        "sid": format!("{base}/secrets/{name}/{}", v.version),
        "x5t": c.x5t(),
        "cer": STANDARD.encode(c.der()),
        "attributes": {
            "enabled": v.enabled,
            "nbf": c.not_before().unix_timestamp(),
            "exp": c.not_after().unix_timestamp(),
            "created": v.created,
            "updated": v.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        },
        "policy": v.policy,
    })
}

fn update(vault: &mut Vault, base: &str, name: &str, version: &str, request: &Request) -> Reply {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let Some(enabled) = body.pointer("/attributes/enabled") else {
        return error(400, "BadParameter", "cba-sim's vault updates attributes.enabled only");
    };
    let Some(enabled) = enabled.as_bool() else {
        return error(400, "BadParameter", "Property 'enabled' must be true or false");
    };
    let Some(v) = vault.certificates.get_mut(name).and_then(|vs| vs.iter_mut().find(|x| x.version == version)) else {
        return not_found_certificate(name, Some(version));
    };
    v.enabled = enabled;
    json_reply(200, &certificate_json(base, name, v))
}

fn sign(shared: &Shared, vault: &mut Vault, base: &str, name: &str, version: &str, request: &Request) -> Reply {
    let Some(v) = find(vault, name, Some(version)) else {
        return error(
            404,
            "KeyNotFound",
            &format!("A key with (name/id) {name}/{version} was not found in this key vault."),
        );
    };
    if !v.enabled {
        return error(403, "Forbidden", "Operation sign is not allowed on a disabled key.");
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(b) => b,
        Err(_) => return error(400, "BadParameter", "The request body is not valid JSON"),
    };
    let alg = body.get("alg").and_then(Value::as_str).unwrap_or("");
    let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match alg {
        "RS256" => &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        "PS256" => &aws_lc_rs::signature::RSA_PSS_SHA256,
        "" => return error(400, "BadParameter", "Property 'alg' is required"),
        other => {
            return error(
                400,
                "BadParameter",
                &format!("Invalid algorithm '{other}': cba-sim's vault signs RS256 and PS256"),
            );
        }
    };
    let Some(value) = body.get("value").and_then(Value::as_str) else {
        return error(400, "BadParameter", "Property 'value' is required");
    };
    let Ok(digest) = URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')) else {
        return error(400, "BadParameter", "Property 'value' is not base64url");
    };
    if digest.len() != 32 {
        return error(
            400,
            "BadParameter",
            &format!("Invalid length of 'value': {}. {alg} expects a SHA-256 digest of 32 bytes.", digest.len()),
        );
    }
    let mut digest = digest;
    if shared.knobs.keyvault.wrong_signatures {
        digest[0] ^= 0xff;
    }
    let signature = (|| {
        let pair = aws_lc_rs::rsa::KeyPair::from_der(v.key.rsa_pkcs1_der()).ok()?;
        let digest = aws_lc_rs::digest::Digest::import_less_safe(&digest, &aws_lc_rs::digest::SHA256).ok()?;
        let mut out = vec![0; pair.public_modulus_len()];
        pair.sign_digest(padding, &digest, &mut out).ok()?;
        Some(out)
    })();
    let Some(signature) = signature else {
        return error(500, "InternalError", "signing failed");
    };
    let kid = format!("{base}/keys/{name}/{version}");
    vault.signs += 1;
    json_reply(200, &json!({"kid": kid, "value": URL_SAFE_NO_PAD.encode(signature)}))
}

/// `GET {base}/msi/token` (App Service form).
fn identity(shared: &Shared, request: &Request, segments: &[String]) -> Reply {
    let identity_error =
        |status: u16, message: &str| json_reply(status, &json!({"statusCode": status, "message": message}));
    if request.method.as_str() != "GET" || segments.get(1).map(String::as_str) != Some("token") || segments.len() != 2 {
        return identity_error(404, "cba-sim's identity endpoint serves GET {base}/msi/token");
    }
    let expected = shared.vault().identity_header.clone();
    if http::header(request, "x-identity-header") != Some(expected.as_str()) {
        return identity_error(401, "The X-IDENTITY-HEADER header is missing or does not hold IDENTITY_HEADER's value");
    }
    let query = http::query(request);
    if http::param(&query, "api-version") != Some("2019-08-01") {
        return identity_error(400, "api-version must be 2019-08-01");
    }
    let resource = http::param(&query, "resource").unwrap_or("");
    if resource.trim_end_matches('/') != VAULT_RESOURCE {
        return identity_error(
            400,
            &format!("cba-sim's managed identity gets tokens for {VAULT_RESOURCE} only, not {resource:?}"),
        );
    }
    let expires_on = shared.clock.now_secs() + shared.knobs.token_lifetime_secs;
    json_reply(
        200,
        &json!({
            "access_token": vault_token(shared),
            "expires_on": expires_on.to_string(),
            "resource": VAULT_RESOURCE,
            "token_type": "Bearer",
            "client_id": IDENTITY_CLIENT_ID,
        }),
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 127 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    json_reply(status, &json!({"error": {"code": code, "message": message}}))
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Reply::json(status, body)
}
