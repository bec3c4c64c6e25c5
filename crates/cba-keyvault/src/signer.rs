//! [`VaultSigner`]: a `cba_cert::KeySigner` whose key stays in the vault.
//!
//! `KeySigner::sign` is synchronous (rcgen and the client-assertion code call it in the middle of their own
//! work), while the vault is an HTTP call. The signer owns one thread with its own single-threaded tokio
//! runtime and its own HTTP client; `sign` hands the digest to it and waits for the answer. That works the
//! same from plain code, from inside a multi-threaded runtime (the CLI) and from inside a current-thread
//! runtime (`#[tokio::test]`), where `block_in_place` would panic and `block_on` cannot nest. The thread ends
//! when the signer is dropped.

use std::fmt;
use std::sync::Mutex;
use std::sync::mpsc;

use cba_cert::{Certificate, KeySigner, RsaPublicKey, SignAlg};
use sha2::Digest as _;

use crate::client::{VaultCertificate, VaultClient};
use crate::error::Error;

const ALGORITHMS: &[SignAlg] = &[SignAlg::Ps256, SignAlg::Rs256];

type Reply = mpsc::SyncSender<Result<Vec<u8>, Error>>;

struct Job {
    alg: SignAlg,
    digest: [u8; 32],
    reply: Reply,
}

/// Signs with a vault key: SHA-256 here, `keys/sign` there, and the signature checked against the
/// certificate's public key before it is returned (a vault answering with another key's signature is
/// caught here, not by the identity platform).
pub struct VaultSigner {
    certificate: VaultCertificate,
    public: RsaPublicKey,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl fmt::Debug for VaultSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSigner").field("kid", &self.certificate.kid).finish_non_exhaustive()
    }
}

impl VaultSigner {
    /// A signer for `certificate`'s key, sending through a fresh copy of `client` on its own thread.
    pub fn new(client: &VaultClient, certificate: VaultCertificate) -> Result<VaultSigner, Error> {
        let public = certificate.certificate.require_rsa().cloned().map_err(|e| Error::Response {
            url: certificate.url.to_string(),
            reason: format!("the certificate's key cannot sign client assertions: {e}"),
        })?;
        let worker = client.fresh()?;
        let kid = certificate.kid.clone();
        let (jobs, inbox) = mpsc::channel::<Job>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Token(format!("cannot start the signer's runtime: {e}")))?;
        std::thread::Builder::new()
            .name("cba-keyvault-signer".into())
            .spawn(move || {
                for job in inbox {
                    let result = runtime.block_on(worker.sign(&kid, job.alg, &job.digest));
                    let _ = job.reply.send(result);
                }
            })
            .map_err(|e| Error::Token(format!("cannot start the signer's thread: {e}")))?;
        Ok(VaultSigner { certificate, public, jobs: Mutex::new(jobs) })
    }

    /// The vault certificate (its versioned URL, `kid`, X.509 certificate).
    pub fn vault_certificate(&self) -> &VaultCertificate {
        &self.certificate
    }

    /// The X.509 certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate.certificate
    }

    fn sign_digest(&self, alg: SignAlg, digest: [u8; 32]) -> Result<Vec<u8>, Error> {
        let (reply, answer) = mpsc::sync_channel(1);
        let gone = || Error::Token("the signer's thread stopped".into());
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).send(Job { alg, digest, reply }).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl KeySigner for VaultSigner {
    fn public_key(&self) -> &RsaPublicKey {
        &self.public
    }

    fn algorithms(&self) -> &[SignAlg] {
        ALGORITHMS
    }

    fn sign(&self, alg: SignAlg, message: &[u8]) -> Result<Vec<u8>, cba_cert::Error> {
        let digest: [u8; 32] = sha2::Sha256::digest(message).into();
        let signature = self.sign_digest(alg, digest).map_err(|e| cba_cert::Error::Signer(Box::new(e)))?;
        self.public.verify(alg, message, &signature).map_err(|_| {
            cba_cert::Error::Signer(Box::new(Error::Response {
                url: format!("{}/sign", self.certificate.kid),
                reason: format!("the vault's {alg} signature does not verify with the certificate's public key"),
            }))
        })?;
        Ok(signature)
    }
}
