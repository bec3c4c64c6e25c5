use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cba_cert::{KeySigner, SignAlg};
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::cloud::check_identifier;
use crate::error::{Error, Result};

/// The longest client assertion lifetime Entra accepts (10 minutes).
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// How the client assertion is signed and which thumbprint header names the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AssertionAlg {
    /// RSASSA-PSS with SHA-256 and header `x5t#S256` (what Microsoft recommends and MSAL sends).
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and header `x5t` (SHA-1 thumbprint; still accepted).
    Rs256,
}

impl AssertionAlg {
    /// `PS256` or `RS256`.
    pub fn name(self) -> &'static str {
        match self {
            AssertionAlg::Ps256 => "PS256",
            AssertionAlg::Rs256 => "RS256",
        }
    }
}

impl AssertionAlg {
    fn sign_alg(self) -> SignAlg {
        match self {
            AssertionAlg::Ps256 => SignAlg::Ps256,
            AssertionAlg::Rs256 => SignAlg::Rs256,
        }
    }
}

impl fmt::Display for AssertionAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AssertionAlg {
    type Err = Error;

    fn from_str(s: &str) -> Result<AssertionAlg> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ps256" => Ok(AssertionAlg::Ps256),
            "rs256" => Ok(AssertionAlg::Rs256),
            _ => Err(Error::Invalid { what: "algorithm", reason: format!("{s:?}: expected ps256 or rs256") }),
        }
    }
}

/// Options for client assertions.
///
/// `alg` is a preference for PS256: a key that cannot sign PSS (a YubiKey's PIV applet) signs RS256 instead,
/// and [`ClientAssertion::alg`] says which was used. RS256 asked of a key that cannot sign it is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionOptions {
    /// Signature algorithm (default PS256).
    pub alg: AssertionAlg,
    /// Send the certificate chain in `x5c` (for subject name + issuer registrations).
    pub send_x5c: bool,
    /// `exp - iat`: at most [`MAX_ASSERTION_LIFETIME`] (the default).
    pub lifetime: Duration,
}

impl Default for AssertionOptions {
    fn default() -> Self {
        AssertionOptions { alg: AssertionAlg::Ps256, send_x5c: false, lifetime: MAX_ASSERTION_LIFETIME }
    }
}

/// A signed client assertion (a JWT). `Debug` and `Display` print `[redacted]`; read it with [`expose`](Self::expose).
#[derive(Clone)]
pub struct ClientAssertion {
    jwt: Zeroizing<String>,
    alg: AssertionAlg,
}

impl ClientAssertion {
    /// The compact JWT.
    pub fn expose(&self) -> &str {
        &self.jwt
    }

    /// How it was signed (PS256 unless RS256 was asked for or the key cannot sign PSS).
    pub fn alg(&self) -> AssertionAlg {
        self.alg
    }
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientAssertion([redacted])")
    }
}

impl fmt::Display for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// An app's certificate credential: the certificate with its private key, the app's client id and its tenant.
///
/// The key signs through [`cba_cert::KeySigner`]: a file's key in memory ([`new`](Self::new)) or one that stays
/// in a token or vault ([`with_signer`](Self::with_signer)). `Debug` shows the tenant, client id and
/// thumbprint, never the key.
#[derive(Clone)]
pub struct ClientCertificate {
    tenant: String,
    client_id: String,
    certificate: cba_cert::Certificate,
    chain: Vec<cba_cert::Certificate>,
    signer: Arc<dyn KeySigner>,
}

impl ClientCertificate {
    /// Check that `identity` can sign (RSA, private key present and matching) and keep what signing needs.
    pub fn new(
        identity: cba_cert::Identity,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Result<ClientCertificate> {
        let tenant = tenant.into();
        let client_id = client_id.into();
        check_identifier("tenant", &tenant)?;
        check_identifier("client id", &client_id)?;
        let signer = Arc::new(identity.signing_key().map_err(Error::Certificate)?.clone());
        Ok(ClientCertificate { tenant, client_id, certificate: identity.certificate, chain: identity.chain, signer })
    }

    /// A credential whose key signs elsewhere (a PKCS#11 token, a vault). `certificate` must be RSA and hold
    /// `signer`'s public key ([`cba_cert::Error::KeyMismatch`] otherwise).
    pub fn with_signer(
        certificate: cba_cert::Certificate,
        signer: Arc<dyn KeySigner>,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Result<ClientCertificate> {
        let tenant = tenant.into();
        let client_id = client_id.into();
        check_identifier("tenant", &tenant)?;
        check_identifier("client id", &client_id)?;
        if certificate.require_rsa().map_err(Error::Certificate)? != signer.public_key() {
            return Err(Error::Certificate(cba_cert::Error::KeyMismatch));
        }
        Ok(ClientCertificate { tenant, client_id, certificate, chain: Vec::new(), signer })
    }

    /// The algorithm an assertion asked to be `requested` is signed with: `requested`, or RS256 when PS256 is
    /// asked of a key that cannot sign PSS. What [`ClientAssertion::alg`] will report.
    pub fn assertion_alg(&self, requested: AssertionAlg) -> AssertionAlg {
        let offered = self.signer.algorithms();
        match requested {
            AssertionAlg::Ps256 if !offered.contains(&SignAlg::Ps256) && offered.contains(&SignAlg::Rs256) => {
                AssertionAlg::Rs256
            }
            other => other,
        }
    }

    /// The tenant (GUID or domain).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The app's client id (`appId`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The certificate registered on the app.
    pub fn certificate(&self) -> &cba_cert::Certificate {
        &self.certificate
    }

    /// Sign a client assertion for `audience` (the exact token endpoint URL) at `now`.
    pub fn sign_assertion(
        &self,
        audience: &str,
        options: &AssertionOptions,
        now: OffsetDateTime,
    ) -> Result<ClientAssertion> {
        if options.lifetime.is_zero() || options.lifetime > MAX_ASSERTION_LIFETIME {
            return Err(Error::Invalid {
                what: "assertion lifetime",
                reason: format!("{:?}: must be between 1 s and 600 s", options.lifetime),
            });
        }
        let alg = self.assertion_alg(options.alg);
        if !self.signer.algorithms().contains(&alg.sign_alg()) {
            return Err(Error::Sign(cba_cert::Error::UnsupportedAlgorithm { alg: alg.sign_alg() }));
        }
        let mut header = match alg {
            AssertionAlg::Ps256 => {
                let mut h = Header::new(Algorithm::PS256);
                h.x5t_s256 = Some(self.certificate.x5t_s256());
                h
            }
            AssertionAlg::Rs256 => {
                let mut h = Header::new(Algorithm::RS256);
                h.x5t = Some(self.certificate.x5t());
                h
            }
        };
        if options.send_x5c {
            let b64 = base64::engine::general_purpose::STANDARD;
            let chain = std::iter::once(&self.certificate).chain(&self.chain);
            header.x5c = Some(chain.map(|c| b64.encode(c.der())).collect());
        }
        let iat = now.unix_timestamp();
        let claims = Claims {
            aud: audience,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: iat,
            iat,
            exp: iat + options.lifetime.as_secs() as i64,
        };
        let jwt = self.sign_jwt(alg, &header, &claims)?;
        Ok(ClientAssertion { jwt, alg })
    }

    /// JWS compact serialization: base64url(header) . base64url(claims) . base64url(signature over the first two).
    fn sign_jwt(&self, alg: AssertionAlg, header: &Header, claims: &Claims<'_>) -> Result<Zeroizing<String>> {
        let mut jwt = Zeroizing::new(base64url_json(header)?);
        jwt.push('.');
        jwt.push_str(&base64url_json(claims)?);
        let signature = self.signer.sign(alg.sign_alg(), jwt.as_bytes()).map_err(Error::Sign)?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(jwt)
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("thumbprint_sha1", &self.certificate.thumbprint_sha1_hex())
            .field("key", &"[redacted]")
            .finish()
    }
}

fn base64url_json(value: &impl Serialize) -> Result<String> {
    let json = serde_json::to_vec(value)
        .map_err(|e| Error::Sign(cba_cert::Error::Crypto(format!("cannot encode the JWT as JSON: {e}"))))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}
