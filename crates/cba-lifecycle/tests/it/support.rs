//! A simulated tenant and the services, stores and keys the operations take.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cba_cert::{Identity, NewCertificate};
use cba_http::{BoxError, Clock, RetryPolicy, Sleep};
use cba_lifecycle::profile::Endpoints;
use cba_lifecycle::rotate::Promoted;
use cba_lifecycle::{
    AdminCredential, CertificateRef, Credential, Event, KeyStore, MemoryStore, Progress, Services, SetupReport,
    SetupRequest,
};
use cba_sim::SimTenant;
use cba_token::{Cloud, TokenClient};

pub const NAME: &str = "contoso-exo";

/// Waits move the simulator's clock (its replication, token lifetimes and device codes follow it).
#[derive(Debug, Clone)]
pub struct SimClock(pub Arc<SimTenant>);

impl Clock for SimClock {
    fn now(&self) -> time::OffsetDateTime {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.0.advance_clock(duration);
        Box::pin(std::future::ready(()))
    }
}

/// Progress recorded, and a kill switch: panics at the `kill_at`-th stage or detail (waits vary with timing
/// and are not counted), as a process killed at that point would stop: the task dies, what was written
/// stays written.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
    pub kill_at: Option<usize>,
}

impl Progress for Recorder {
    fn event(&self, event: &Event) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push(event.clone());
        let steps = events.iter().filter(|e| !matches!(e, Event::Wait { .. })).count();
        if !matches!(event, Event::Wait { .. }) && self.kill_at == Some(steps) {
            drop(events);
            panic!("killed at event {event:?}");
        }
    }
}

impl Recorder {
    pub fn killer(at: usize) -> Recorder {
        Recorder { kill_at: Some(at), ..Recorder::default() }
    }

    /// Stages and details seen (the kill points).
    pub fn steps(&self) -> usize {
        self.events.lock().unwrap().iter().filter(|e| !matches!(e, Event::Wait { .. })).count()
    }
}

pub struct Tenant {
    pub sim: Arc<SimTenant>,
}

impl Tenant {
    pub async fn start(replication: Duration) -> Tenant {
        let sim = SimTenant::builder().tenant_name("contoso").replication_delay(replication).start().await;
        Tenant { sim: Arc::new(sim) }
    }

    pub fn services(&self, progress: Arc<dyn Progress>) -> Services {
        let clock: Arc<dyn Clock> = Arc::new(SimClock(self.sim.clone()));
        let tokens = TokenClient::builder()
            .cloud(Cloud::Global)
            .authority(cba_token::Authority::new(self.sim.login_url()).unwrap())
            .retry_policy(RetryPolicy::fast())
            .clock(clock.clone())
            .build()
            .unwrap();
        Services {
            cloud: Cloud::Global,
            endpoints: Endpoints {
                login: self.sim.login_url().into(),
                graph: self.sim.graph_url().into(),
                exchange: self.sim.exchange_url().into(),
            },
            tokens,
            http: cba_http::HttpConfig::new(),
            retry: RetryPolicy { deadline: Duration::from_secs(20), ..RetryPolicy::fast() },
            clock,
            progress,
            all_waits: true,
        }
    }

    pub fn admin(&self) -> AdminCredential {
        AdminCredential::Token(zeroize::Zeroizing::new(self.sim.admin_token()))
    }

    pub async fn state(&self) -> cba_sim::StateSnapshot {
        self.sim.state().await
    }

    /// The admin's Graph client, to break links behind the operations' back.
    pub fn graph(&self) -> cba_graph::GraphClient {
        cba_graph::GraphClient::builder()
            .base_url(self.sim.graph_url())
            .token_source(Arc::new(cba_graph::StaticToken::new(self.sim.admin_token())))
            .retry_policy(RetryPolicy::fast())
            .build()
            .unwrap()
    }
}

/// Certificates in memory, "paths" as keys. A rotation's successor waits at `<stem>.next.<ext>`; promotion
/// keeps the replaced one at `<stem>-old-<n>.<ext>` and moves the successor to the stable path.
#[derive(Default)]
pub struct MemKeys {
    pub keys: Mutex<HashMap<PathBuf, Identity>>,
    pub made: Mutex<u32>,
    pub discarded: Mutex<Vec<PathBuf>>,
}

impl MemKeys {
    pub fn add(&self, path: &str, identity: Identity) -> CertificateRef {
        let reference = CertificateRef::new(&identity.certificate, PathBuf::from(path), None).created_by_cba();
        self.keys.lock().unwrap().insert(reference.path.clone(), identity);
        reference
    }

    /// The thumbprint of the certificate at `path`, if any.
    pub fn at(&self, path: &Path) -> Option<String> {
        self.keys.lock().unwrap().get(path).map(|i| i.certificate.thumbprint_sha1_hex())
    }

    /// Every path holding a certificate, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.keys.lock().unwrap().keys().cloned().collect();
        paths.sort();
        paths
    }
}

/// `contoso-exo.pfx` → `contoso-exo<suffix>.pfx`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("certificate");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("pfx");
    path.with_file_name(format!("{stem}{suffix}.{ext}"))
}

impl KeyStore for MemKeys {
    fn open(&self, certificate: &CertificateRef) -> Result<Credential, BoxError> {
        self.keys.lock().unwrap().get(&certificate.path).cloned().map(Into::into).ok_or_else(|| "no such key".into())
    }

    fn exists(&self, certificate: &CertificateRef) -> bool {
        self.keys.lock().unwrap().contains_key(&certificate.path)
    }

    fn create_next(
        &self,
        current: &CertificateRef,
        _: &Credential,
        next: &NewCertificate,
    ) -> Result<(Credential, CertificateRef), BoxError> {
        *self.made.lock().unwrap() += 1;
        let identity = cba_cert::generate(next)?;
        let path = beside(&current.path, ".next");
        self.keys.lock().unwrap().insert(path.clone(), identity.clone());
        Ok((identity.clone().into(), CertificateRef::new(&identity.certificate, path, None).created_by_cba()))
    }

    fn promote(&self, pending: &CertificateRef, current: &CertificateRef) -> Result<Promoted, BoxError> {
        let mut keys = self.keys.lock().unwrap();
        let holds = |keys: &HashMap<PathBuf, Identity>, path: &Path, thumbprint: &str| {
            keys.get(path).is_some_and(|i| i.certificate.thumbprint_sha1_hex() == thumbprint)
        };
        let kept = (1..)
            .map(|n| beside(&current.path, &format!("-old-{n}")))
            .take_while(|p| keys.contains_key(p))
            .find(|p| holds(&keys, p, &current.thumbprint_sha1));
        let kept = match kept {
            Some(path) => path,
            None => {
                if !holds(&keys, &current.path, &current.thumbprint_sha1) {
                    return Err(format!("{} holds neither certificate", current.path.display()).into());
                }
                let old = keys[&current.path].clone();
                let free = (1..).map(|n| beside(&current.path, &format!("-old-{n}"))).find(|p| !keys.contains_key(p));
                let free = free.expect("a free name");
                keys.insert(free.clone(), old);
                free
            }
        };
        if let Some(new) = keys.remove(&pending.path) {
            keys.insert(current.path.clone(), new);
        }
        if !holds(&keys, &current.path, &pending.thumbprint_sha1) {
            return Err(format!("{} does not hold the new certificate", current.path.display()).into());
        }
        Ok(Promoted {
            current: CertificateRef { path: current.path.clone(), cer_path: None, ..pending.clone() },
            retired: CertificateRef { path: kept, cer_path: None, ..current.clone() },
        })
    }

    fn discard(&self, certificate: &CertificateRef) -> Result<(), BoxError> {
        self.keys.lock().unwrap().remove(&certificate.path);
        self.discarded.lock().unwrap().push(certificate.path.clone());
        Ok(())
    }
}

pub fn identity() -> Identity {
    cba_cert::generate(&NewCertificate::new(NAME)).expect("a certificate")
}

/// One certificate for every test that does not care which (RSA key generation is the slow part).
pub fn shared_identity() -> Identity {
    static SHARED: std::sync::LazyLock<Identity> = std::sync::LazyLock::new(identity);
    SHARED.clone()
}

pub fn request(tenant: &Tenant, identity: &Identity) -> SetupRequest {
    SetupRequest {
        tenant: tenant.sim.tenant_domain().to_string(),
        name: NAME.into(),
        roles: vec![cba_graph::wellknown::EXCHANGE_ADMINISTRATOR],
        credential: identity.clone().into(),
        certificate: CertificateRef::new(&identity.certificate, PathBuf::from("contoso-exo.pfx"), None)
            .created_by_cba(),
        new_certificate: true,
        dry_run: false,
        multi_tenant: false,
        wait: Duration::from_secs(120),
        exchange: None,
    }
}

/// A finished setup: the tenant, the store holding its profile, the keys holding its certificate.
pub async fn set_up(tenant: &Tenant) -> (MemoryStore, MemKeys, SetupReport) {
    let keys = MemKeys::default();
    let identity = shared_identity();
    keys.add("contoso-exo.pfx", identity.clone());
    let store = MemoryStore::new();
    let services = tenant.services(Arc::new(Recorder::default()));
    let report =
        cba_lifecycle::setup(&services, &store, &tenant.admin(), &request(tenant, &identity)).await.expect("setup");
    (store, keys, report)
}

/// Exactly one of each object, tied together, holding exactly `thumbprints`.
pub fn assert_one_of_each(state: &cba_sim::StateSnapshot, thumbprints: &[&str]) {
    let t = state.primary();
    assert_eq!(t.applications.len(), 1, "apps: {:#?}", t.applications);
    let app = &t.applications[0];
    let mut keys: Vec<&str> = app.key_credentials.iter().map(|k| k.thumbprint_sha1.as_str()).collect();
    keys.sort();
    let mut want = thumbprints.to_vec();
    want.sort();
    assert_eq!(keys, want, "the app's certificates");
    let sps: Vec<_> = t.custom_service_principals().collect();
    assert_eq!(sps.len(), 1, "service principals: {sps:#?}");
    assert_eq!(sps[0].app_id, app.app_id);
    assert_eq!(t.app_role_assignments.len(), 1, "grants");
    assert_eq!(t.app_role_assignments[0].principal_id, sps[0].id);
    assert_eq!(t.role_assignments.len(), 1, "role assignments");
    assert_eq!(t.role_assignments[0].principal_id, sps[0].id);
}
