//! Benchmark (not a test): 1,000 app-only tokens for 1,000 different tenants, from the library, with bounded
//! concurrency, against cba-sim with 50 ms latency per request. Run: `cargo bench -p cba-token --bench throughput`.
//! Prints tokens/s; docs/benchmarks.md records the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cba_token::{Authority, ClientCertificate, Resource, TokenClient};

const TENANTS: usize = 1000;
const CONCURRENCY: usize = 64;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let mut builder = cba_sim::SimTenant::builder().tenant_name("provider").latency(Duration::from_millis(50));
    let names: Vec<String> = (0..TENANTS).map(|i| format!("customer{i:04}")).collect();
    for name in &names {
        builder = builder.tenant(name);
    }
    let sim = builder.start().await;
    let identity = cba_cert::generate(&cba_cert::NewCertificate::new("provider-app")).unwrap();
    // One multi-tenant app of the service provider, consented in every customer tenant.
    let app = sim.seed_app_in("provider", "provider-app", &[identity.certificate.der()], true).await;
    let mut certs = Vec::with_capacity(TENANTS);
    for name in &names {
        let consented = sim.seed_consent(&app, name).await;
        sim.seed_grant_manage_as_app(&consented).await;
        let tenant = sim.tenant(name).unwrap().id.clone();
        certs.push(ClientCertificate::new(identity.clone(), &tenant, &app.app_id).unwrap());
    }
    let client = Arc::new(TokenClient::builder().authority(Authority::new(sim.login_url()).unwrap()).build().unwrap());
    let semaphore = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(TENANTS);
    for cert in certs {
        let (client, semaphore) = (client.clone(), semaphore.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.unwrap();
            client.get_token(&cert, &Resource::Exchange).await.map(|t| t.decode().is_ok())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().expect("token") {
            ok += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(ok, TENANTS);
    println!(
        "tokens: {TENANTS} tenants, concurrency {CONCURRENCY}, sim latency 50 ms: {:.2} s, {:.0} tokens/s",
        elapsed.as_secs_f64(),
        TENANTS as f64 / elapsed.as_secs_f64()
    );
}
