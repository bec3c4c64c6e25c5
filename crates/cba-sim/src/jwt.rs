//! JWTs: the sim's own access tokens (issue and verify) and client-supplied assertions (parse, look up the
//! registered certificate, verify the signature). Claims are checked by the callers, which know which
//! AADSTS or Graph code each failure gets.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cba_cert::Certificate;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::state::KeyCred;

/// The key every sim instance signs its access tokens with (RSA key generation is slow: made once). The key
/// pair is parsed once: `jsonwebtoken::encode` parses and checks the DER key on every call, which doubled the
/// cost of each token (the sim's main cost with a thousand tenants).
pub(crate) struct SigningKey {
    signer: aws_lc_rs::signature::RsaKeyPair,
    decoding: DecodingKey,
    certificate: Certificate,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("certificate", &self.certificate).finish_non_exhaustive()
    }
}

pub(crate) fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        // The sim cannot work without it, and nothing a client sends can make this fail.
        let identity = cba_cert::generate(&cba_cert::NewCertificate::new("cba-sim token signing"))
            .expect("generating the sim's token signing key");
        let key = identity.private_key.as_ref().expect("a generated identity has a private key");
        let public = identity.certificate.rsa_public_key().expect("the generated key is RSA");
        SigningKey {
            signer: aws_lc_rs::signature::RsaKeyPair::from_der(key.rsa_pkcs1_der())
                .expect("the generated key is a valid RSA key"),
            decoding: DecodingKey::from_rsa_raw_components(&public.modulus, &public.exponent),
            certificate: identity.certificate.clone(),
        }
    })
}

impl SigningKey {
    pub(crate) fn kid(&self) -> String {
        self.certificate.x5t()
    }

    /// The JWKS document (`/discovery/v2.0/keys`).
    pub(crate) fn jwks(&self, issuer: &str) -> Value {
        let public = self.certificate.rsa_public_key();
        let (n, e) = public
            .map(|k| (URL_SAFE_NO_PAD.encode(&k.modulus), URL_SAFE_NO_PAD.encode(&k.exponent)))
            .unwrap_or_default();
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid(),
            "x5t": self.kid(),
            "n": n,
            "e": e,
            "x5c": [STANDARD.encode(self.certificate.der())],
            "issuer": issuer,
        }]})
    }
}

/// Claims of an access token issued by the sim (a v1.0 Entra token, trimmed to what clients read).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct AccessClaims {
    pub(crate) aud: String,
    pub(crate) iss: String,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
    pub(crate) tid: String,
    pub(crate) appid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) app_displayname: Option<String>,
    pub(crate) appidacr: String,
    pub(crate) idtyp: String,
    pub(crate) oid: String,
    pub(crate) sub: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) wids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upn: Option<String>,
    pub(crate) uti: String,
    pub(crate) ver: String,
}

impl AccessClaims {
    pub(crate) fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scp.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token carries `permission`, as a delegated scope or an app role.
    pub(crate) fn has(&self, permission: &str) -> bool {
        self.scopes().any(|s| s == permission) || self.roles.iter().any(|r| r == permission)
    }

    pub(crate) fn is_app_only(&self) -> bool {
        self.idtyp == "app"
    }
}

pub(crate) fn issue(claims: &AccessClaims) -> String {
    let key = signing_key();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid());
    header.x5t = Some(key.kid());
    sign(&header, claims)
}

/// Sign arbitrary claims (id tokens) with the sim key.
pub(crate) fn issue_value(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(signing_key().kid());
    sign(&header, claims)
}

/// A compact RS256 JWS, as `jsonwebtoken::encode` makes it, with the key pair parsed once.
fn sign(header: &Header, claims: &impl Serialize) -> String {
    let key = signing_key();
    // Serializing a header and claims of plain fields does not fail, nor does signing with our own key.
    let part = |v: Vec<u8>| URL_SAFE_NO_PAD.encode(v);
    let input = format!(
        "{}.{}",
        part(serde_json::to_vec(header).expect("a JWT header serializes")),
        part(serde_json::to_vec(claims).expect("JWT claims serialize"))
    );
    let mut signature = vec![0; key.signer.public_modulus_len()];
    key.signer
        .sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .expect("signing a sim token");
    format!("{input}.{}", part(signature))
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessError {
    Malformed,
    BadSignature,
    Expired,
    NotYetValid,
}

/// Verify a bearer token issued by this sim (signature and lifetime; audience is the caller's business).
pub(crate) fn verify_access(token: &str, now_secs: i64) -> Result<AccessClaims, AccessError> {
    let parsed = ParsedJwt::parse(token).map_err(|_| AccessError::Malformed)?;
    if parsed.alg != "RS256" {
        return Err(AccessError::BadSignature);
    }
    let key = signing_key();
    let ok = jsonwebtoken::crypto::verify(
        &parsed.signature,
        parsed.signing_input.as_bytes(),
        &key.decoding,
        Algorithm::RS256,
    )
    .unwrap_or(false);
    if !ok {
        return Err(AccessError::BadSignature);
    }
    let claims: AccessClaims =
        serde_json::from_value(Value::Object(parsed.claims)).map_err(|_| AccessError::Malformed)?;
    if now_secs >= claims.exp {
        return Err(AccessError::Expired);
    }
    if now_secs < claims.nbf {
        return Err(AccessError::NotYetValid);
    }
    Ok(claims)
}

/// A compact JWS split into its parts, header and claims decoded as JSON objects, nothing verified.
#[derive(Debug, Clone)]
pub(crate) struct ParsedJwt {
    pub(crate) alg: String,
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    pub(crate) signing_input: String,
    pub(crate) signature: String,
}

impl ParsedJwt {
    pub(crate) fn parse(token: &str) -> Result<ParsedJwt, &'static str> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("the token does not have three parts");
        };
        let decode = |part: &str| -> Result<Map<String, Value>, &'static str> {
            let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| "a part is not base64url")?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err("a part is not a JSON object"),
            }
        };
        let header = decode(h)?;
        let claims = decode(c)?;
        if s.is_empty() {
            return Err("the token is not signed");
        }
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("").to_string();
        Ok(ParsedJwt { alg, header, claims, signing_input: format!("{h}.{c}"), signature: s.to_string() })
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A numeric date claim (integer or float seconds).
    pub(crate) fn claim_time(&self, name: &str) -> Option<i64> {
        let value = self.claims.get(name)?;
        value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
    }

    /// The thumbprint the signer names in `x5t` / `x5t#S256`, as shown in AADSTS messages (upper-case hex
    /// SHA-1 when known; empty when the header names none: a bare `kid` is not a thumbprint to Entra).
    pub(crate) fn thumbprint_label(&self) -> String {
        if let Some(x5t) = self.header_str("x5t") {
            if let Ok(bytes) = URL_SAFE_NO_PAD.decode(x5t.trim_end_matches('=')) {
                return hex_upper(&bytes);
            }
            return x5t.to_string();
        }
        self.header_str("x5t#S256").unwrap_or("").to_string()
    }

    /// Whether the header names a certificate by thumbprint (`x5t` or `x5t#S256`).
    pub(crate) fn names_a_thumbprint(&self) -> bool {
        ["x5t", "x5t#S256"].iter().any(|h| self.header_str(h).is_some_and(|v| !v.is_empty()))
    }

    /// The registered credential this token names by `x5t#S256` or `x5t`, among `keys` (client assertions).
    pub(crate) fn find_key_by_thumbprint<'k>(&self, keys: &'k [KeyCred]) -> Option<&'k KeyCred> {
        let strip = |s: &str| s.trim_end_matches('=').to_string();
        if let Some(x5t) = self.header_str("x5t#S256") {
            let want = strip(x5t);
            if let Some(k) = keys.iter().find(|k| k.certificate.x5t_s256() == want) {
                return Some(k);
            }
        }
        let want = strip(self.header_str("x5t")?);
        keys.iter().find(|k| k.certificate.x5t() == want)
    }

    /// As [`ParsedJwt::find_key_by_thumbprint`], also by a `kid` holding the hex SHA-1 thumbprint (what
    /// .NET's X509SigningCredentials sends): accepted for addKey/removeKey proofs only.
    pub(crate) fn find_key<'k>(&self, keys: &'k [KeyCred]) -> Option<&'k KeyCred> {
        if let Some(k) = self.find_key_by_thumbprint(keys) {
            return Some(k);
        }
        let kid = self.header_str("kid")?;
        keys.iter().find(|k| {
            k.certificate.thumbprint_sha1_hex().eq_ignore_ascii_case(kid)
                || k.certificate.x5t() == kid.trim_end_matches('=')
        })
    }

    /// Verify the signature with a certificate's RSA public key (RS256 or PS256 only).
    pub(crate) fn verify_with(&self, certificate: &Certificate) -> bool {
        let algorithm = match self.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "PS256" => Algorithm::PS256,
            _ => return false,
        };
        let Some(public) = certificate.rsa_public_key() else {
            return false;
        };
        let key = DecodingKey::from_rsa_raw_components(&public.modulus, &public.exponent);
        jsonwebtoken::crypto::verify(&self.signature, self.signing_input.as_bytes(), &key, algorithm).unwrap_or(false)
    }
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
