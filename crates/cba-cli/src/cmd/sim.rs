//! `cba sim serve`: run the simulated tenant (cba-sim) as a process, for scripts and other languages' tests.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;

const EXAMPLES: &str = "\
Examples:
  cba sim serve                                   # prints one JSON line, serves until Ctrl-C
  cba sim serve --port 8080 --replication-delay-ms 2000 --throttle-every 10
  cba sim serve --tenant contoso --add-tenant fabrikam --mailboxes 10000
  cba sim serve --dehydrated --exchange-rbac-delay 5m # Exchange RBAC knobs
  cba sim serve --tenants 1000 --latency-ms 50        # a provider and 1,000 customer tenants

The JSON line holds login_url, graph_url, exchange_url (one loopback root standing for
login.microsoftonline.com, graph.microsoft.com and outlook.office365.com), tenant_id, tenant_domain and
admin_token (a delegated Graph token of the tenant's Global Administrator), exchange_admin_token (the same
admin's delegated Exchange token: InvokeCommand with X-AnchorMailbox UPN:admin@<tenant_domain>, e.g. as
CBA_EXO_ADMIN_TOKEN), keyvault_url (the simulated Key Vault: --key <keyvault_url>/certificates/NAME), and
identity_endpoint and identity_header (its managed identity: set them as IDENTITY_ENDPOINT and IDENTITY_HEADER
for a vault token). Inspect the sim with
GET <graph_url>/_sim/state and GET <graph_url>/_sim/requests; GET <graph_url>/_sim/tenants lists every
tenant with its admin token, the provider first (with ?exchange=true also its exchange_admin_token).";

/// Exchange Administrator's role template id (docs/wire-formats.md §1).
const EXCHANGE_ADMINISTRATOR: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";

/// `cba sim` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve a simulated tenant (login, Graph, Exchange) on 127.0.0.1 until SIGINT/SIGTERM.
    Serve(ServeArgs),
}

/// `cba sim serve` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (default: a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Delay every answer by this many milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
    /// New objects stay invisible to reads, dependent writes and token requests this long.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub replication_delay_ms: u64,
    /// Answer every K-th request with 429 and Retry-After (0: never).
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub throttle_every: u64,
    /// Answer the first N requests with 429.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub throttle_burst: u64,
    /// Answer every K-th request with 503 (0: never).
    #[arg(long = "fail-5xx-every", value_name = "K", default_value_t = 0)]
    pub fail_5xx_every: u64,
    /// Answer the first N requests with 503.
    #[arg(long = "fail-5xx-burst", value_name = "N", default_value_t = 0)]
    pub fail_5xx_burst: u64,
    /// Retry-After of throttled and 503 answers, in seconds.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub retry_after_secs: u64,
    /// The admin approves a device-code sign-in this many milliseconds after it starts.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub device_code_delay_ms: u64,
    /// Polling interval the device-code answer announces (faster polls get slow_down).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub device_code_interval_secs: u64,
    /// Shift the sim's clock by this many seconds (negative: behind).
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true)]
    pub clock_offset_secs: i64,
    /// Mailboxes per tenant for Get-Mailbox.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub mailboxes: usize,
    /// Name of the primary tenant (domain <NAME>.onmicrosoft.com).
    #[arg(long, value_name = "NAME", default_value = "contoso")]
    pub tenant: String,
    /// Another tenant in the same sim (repeatable), e.g. a customer tenant for a multi-tenant app.
    #[arg(long, value_name = "NAME")]
    pub add_tenant: Vec<String>,
    /// A service provider's fleet: N customer tenants (customer0001 … customerNNNN.onmicrosoft.com) beside the
    /// primary (provider) tenant; GET <graph_url>/_sim/tenants lists them with their admin tokens.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub tenants: usize,
    /// Opening the admin-consent page consents at once (default: it waits for POST <graph_url>/_sim/consent).
    #[arg(long)]
    pub auto_consent: bool,
    /// An Exchange role-group membership change reaches the app's cmdlets this long after it was made
    /// (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = crate::settings::parse_duration)]
    pub exchange_rbac_delay: Duration,
    /// Exchange organizations start dehydrated: New-RoleGroup needs Enable-OrganizationCustomization first.
    #[arg(long)]
    pub dehydrated: bool,
    /// How long Enable-OrganizationCustomization takes to complete.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = crate::settings::parse_duration)]
    pub enable_customization_delay: Duration,
    /// Pre-register an app "seeded-app" with this certificate (.cer/.pem), Exchange.ManageAsApp granted and
    /// Exchange Administrator assigned, as if `cba setup` had run; its client id is added to the JSON line as
    /// `seeded_app_id`. For pipelines that only need `cba token`/`cba exo` to work. With --tenants the app is
    /// multi-tenant and consented, granted and assigned the role in every customer tenant too.
    #[arg(long, value_name = "FILE")]
    pub seed_app_cert: Option<std::path::PathBuf>,
}

/// Run a `cba sim` command.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Serve(args) => serve(args),
    }
}

fn builder(args: &ServeArgs) -> cba_sim::SimTenantBuilder {
    let mut builder = cba_sim::SimTenant::builder()
        .tenant_name(&args.tenant)
        .latency(Duration::from_millis(args.latency_ms))
        .replication_delay(Duration::from_millis(args.replication_delay_ms))
        .throttle_every(args.throttle_every)
        .throttle_burst(args.throttle_burst)
        .fail_5xx_every(args.fail_5xx_every)
        .fail_5xx_burst(args.fail_5xx_burst)
        .retry_after(Duration::from_secs(args.retry_after_secs))
        .device_code_delay(Duration::from_millis(args.device_code_delay_ms))
        .device_code_interval(Duration::from_secs(args.device_code_interval_secs))
        .clock_offset(time::Duration::seconds(args.clock_offset_secs))
        .mailboxes(args.mailboxes)
        .customer_tenants(args.tenants)
        .admin_consent_auto_approve(args.auto_consent)
        .exchange_rbac_delay(args.exchange_rbac_delay)
        .dehydrated(args.dehydrated)
        .enable_customization_delay(args.enable_customization_delay);
    if let Some(port) = args.port {
        builder = builder.port(port);
    }
    for name in &args.add_tenant {
        builder = builder.tenant(name);
    }
    builder
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let seed_cert = match &args.seed_app_cert {
            Some(path) => {
                let bytes = crate::fsutil::read(path)?;
                let identity = cba_cert::load(&bytes, None)
                    .map_err(|e| crate::exit::fail(crate::exit::Exit::BadInput, format!("{}: {e}", path.display())))?;
                Some(identity.certificate)
            }
            None => None,
        };
        let sim = builder(&args).try_start().await?;
        let mut info = serde_json::to_value(sim.connection_info())?;
        // The Key Vault fake and its managed-identity endpoint (App Service form), for `--key {keyvault_url}/…`.
        info["keyvault_url"] = sim.keyvault_url().into();
        info["identity_endpoint"] = sim.identity_endpoint().into();
        info["identity_header"] = sim.identity_header().into();
        if let Some(cert) = seed_cert {
            let provider = sim.tenant_id().to_string();
            let app = sim.seed_app_in(&provider, "seeded-app", &[cert.der()], args.tenants > 0).await;
            sim.seed_grant_manage_as_app(&app).await;
            sim.seed_role_assignment(&app, EXCHANGE_ADMINISTRATOR).await;
            // The builder adds the customer tenants right after the primary one.
            let customers: Vec<String> =
                sim.tenants().iter().skip(1).take(args.tenants).map(|t| t.id.clone()).collect();
            for customer in &customers {
                let consented = sim.seed_consent(&app, customer).await;
                sim.seed_grant_manage_as_app(&consented).await;
                sim.seed_role_assignment(&consented, EXCHANGE_ADMINISTRATOR).await;
            }
            info["seeded_app_id"] = serde_json::Value::String(app.app_id.clone());
        }
        let line = serde_json::to_string(&info)?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        crate::output::info(format!("cba-sim: serving on {} (Ctrl-C to stop)", sim.login_url()));
        shutdown_signal().await?;
        drop(sim);
        Ok(())
    })
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("listening for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("listening for Ctrl-C")?;
    Ok(())
}
