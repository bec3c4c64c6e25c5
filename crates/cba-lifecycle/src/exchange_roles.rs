//! Least privilege in Exchange: the app as an Exchange service principal in a role group (an existing one, or a
//! custom `cba-<app name>` group with chosen roles and an optional recipient write scope), instead of a
//! tenant-wide Entra directory role (docs/wire-formats.md §10, docs/least-privilege.md).
//!
//! Every step is a cmdlet over InvokeCommand (cba-exo), run with the administrator's Exchange sign-in, and each
//! is idempotent: look up first; "already exists" and "already a member" count as success (and are read back).
//! A write whose outcome is unknown ([`cba_exo::Error::OutcomeUnknown`]) is never resent blindly: the object is
//! looked up, and the write sent again only when the look-up shows it did not happen. What setup creates is
//! recorded in the profile before the create (its intent), so a crash mid-request converges on the rerun and
//! teardown removes only what `cba` made.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cba_exo::{ExoClient, Parameters};
use cba_http::{RetryPolicy, StaticToken, TokenSource, Verdict};
use cba_token::admin::DeviceCodeOptions;
use cba_token::{AccessToken, CertificateTokenSource, ClientCertificate, Resource};
use serde::Serialize;
use serde_json::Value;

use crate::profile::{ExchangeProfile, Profile};
use crate::progress::{Event, ProgressExt as _};
use crate::status::{Check, Remedy};
use crate::{Error, Services};

/// The public client of the ExchangeOnlineManagement module ("Microsoft Exchange REST API Based Powershell"),
/// present in every tenant: the administrator's device-code sign-in for Exchange.
pub const EXCHANGE_POWERSHELL_CLIENT_ID: &str = "fb78d390-0c51-40cd-8e17-fdbfab77341b";

/// Exchange Online's first-party app id (an accepted `aud` of Exchange tokens).
pub const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// The longest role group name Exchange accepts.
pub const MAX_ROLE_GROUP_NAME: usize = 64;

/// The Exchange roles the app should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeRoles {
    /// Add the app to this existing role group (built-in, such as "View-Only Organization Management", or a
    /// custom one made by hand).
    Group(String),
    /// A custom role group `cba-<app name>` with exactly these roles, limited to the recipients matching
    /// `write_scope` (an OPATH filter, made into a management scope) when given.
    Custom {
        /// Role names ("Mail Recipients", "View-Only Recipients").
        roles: Vec<String>,
        /// `-RecipientRestrictionFilter` of the scope.
        write_scope: Option<String>,
    },
}

/// How the administrator signs in to Exchange. Reading a token or a PFX is the caller's job.
#[derive(Clone)]
pub enum ExchangeAdminCredential {
    /// Device code with [`EXCHANGE_POWERSHELL_CLIENT_ID`]: the prompt goes to the progress sink, saying it is
    /// for Exchange.
    DeviceCode,
    /// A delegated Exchange token the admin already has (`CBA_EXO_ADMIN_TOKEN`); requests are anchored at its
    /// `upn`.
    Token(zeroize::Zeroizing<String>),
    /// A provisioning app's own app-only Exchange token (it needs the Role Management role in Exchange).
    Certificate {
        /// Its certificate and key.
        identity: Box<cba_cert::Identity>,
        /// Its client id.
        client_id: String,
    },
}

impl std::fmt::Debug for ExchangeAdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeAdminCredential::DeviceCode => f.write_str("DeviceCode"),
            ExchangeAdminCredential::Token(_) => f.write_str("Token([redacted])"),
            ExchangeAdminCredential::Certificate { client_id, .. } => write!(f, "Certificate({client_id})"),
        }
    }
}

/// The Exchange part of a setup.
#[derive(Debug, Clone)]
pub struct ExchangeSetup {
    /// The roles.
    pub roles: ExchangeRoles,
    /// Assign the setup's Entra directory roles as well (permissions add up; refused otherwise).
    pub keep_entra_role: bool,
    /// Run `Enable-OrganizationCustomization` when the tenant needs it (the CLI's `--yes`).
    pub enable_customization: bool,
    /// Who runs the cmdlets.
    pub admin: ExchangeAdminCredential,
}

/// What the Exchange steps found, made and proved (`exchange` in `cba setup --output json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExchangeReport {
    /// The Exchange service principal's identity (the Entra service principal's object id).
    pub service_principal: String,
    /// The role group the app is a member of.
    pub role_group: String,
    /// `cba` made the group.
    pub role_group_created: bool,
    /// The group's roles, as Exchange reports them.
    pub roles: Vec<String>,
    /// The write scope's name, when there is one.
    pub scope: Option<String>,
    /// Its recipient filter, as Exchange reports it.
    pub write_scope: Option<String>,
    /// Objects made by this run (`service_principal`, `management_scope`, `role_group`, `membership`).
    pub created: Vec<String>,
    /// Objects already in place.
    pub unchanged: Vec<String>,
    /// What was left of the previously recorded group, when the request names another (`membership`,
    /// `role_group` and `management_scope` when `cba` made them).
    pub removed: Vec<String>,
    /// `Enable-OrganizationCustomization` was run.
    pub customization_enabled: bool,
    /// The read cmdlet the app ran with its own token as proof (null when the roles allow none cba knows).
    pub proof_cmdlet: Option<String>,
    /// How long until Exchange applied the membership to the app's own calls (RBAC propagation).
    pub rbac_wait_ms: u64,
    /// Exchange requests sent (the app's proof included).
    pub requests: u32,
}

/// The role group name for an app: `cba-<app name>`, cut to [`MAX_ROLE_GROUP_NAME`] characters.
pub fn role_group_name(app_name: &str) -> String {
    format!("cba-{}", app_name.trim()).chars().take(MAX_ROLE_GROUP_NAME).collect()
}

/// Check the request before anything is sent: roles named, no empty filter, a group name.
pub fn check(roles: &ExchangeRoles) -> Result<(), Error> {
    let invalid = |what, value: &str, reason: &str| Error::Invalid { what, value: value.into(), reason: reason.into() };
    match roles {
        ExchangeRoles::Group(name) if name.trim().is_empty() => {
            Err(invalid("Exchange role group", name, "give the role group's name"))
        }
        ExchangeRoles::Group(name) if name.chars().count() > MAX_ROLE_GROUP_NAME => {
            Err(invalid("Exchange role group", name, "at most 64 characters"))
        }
        ExchangeRoles::Custom { roles, .. } if roles.is_empty() || roles.iter().any(|r| r.trim().is_empty()) => {
            Err(invalid(
                "Exchange roles",
                &roles.join(","),
                "name one or more roles, e.g. \"Mail Recipients,View-Only Recipients\"",
            ))
        }
        ExchangeRoles::Custom { write_scope: Some(f), .. } if f.trim().is_empty() => {
            Err(invalid("write scope", f, "give an OPATH filter such as \"Department -eq 'Sales'\""))
        }
        _ => Ok(()),
    }
}

/// An Exchange client with a request counter, and what to name it in messages.
#[derive(Clone)]
pub struct Exo {
    client: ExoClient,
    calls: Arc<AtomicU32>,
    /// Who the client acts as ("the administrator", "app 631a…").
    who: String,
}

impl std::fmt::Debug for Exo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exo").field("client", &self.client).field("who", &self.who).finish()
    }
}

impl Exo {
    /// Wrap a client the caller built (its token source, anchor and retries), acting as `who` in messages.
    pub fn new(client: ExoClient, who: impl Into<String>) -> Exo {
        Exo { client, calls: Arc::default(), who: who.into() }
    }

    /// Cmdlets sent so far.
    pub fn requests(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn run(&self, cmdlet: &str, params: Parameters) -> Result<Vec<Value>, cba_exo::Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.client.collect_all(cmdlet, &params).await
    }

    /// A read; a 404 (the object does not exist) is `None`.
    async fn find(&self, cmdlet: &str, params: Parameters) -> Result<Option<Value>, Error> {
        match self.run(cmdlet, params).await {
            Ok(items) => Ok(items.into_iter().next()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.failed(cmdlet, e)),
        }
    }

    fn failed(&self, cmdlet: &str, source: cba_exo::Error) -> Error {
        Error::Exchange { doing: format!("{cmdlet} as {}", self.who), source }
    }
}

/// The exception name of a cmdlet error (`ManagementObjectNotFoundException`), if the service gave one.
fn exception(e: &cba_exo::Error) -> Option<&str> {
    match e {
        cba_exo::Error::Cmdlet { details, .. } => details.iter().map(|d| d.exception_name()).find(|n| !n.is_empty()),
        _ => None,
    }
}

fn is_not_found(e: &cba_exo::Error) -> bool {
    match e {
        cba_exo::Error::Cmdlet { status, .. } => {
            *status == 404 || exception(e) == Some("ManagementObjectNotFoundException")
        }
        _ => false,
    }
}

fn is_exception(e: &cba_exo::Error, name: &str) -> bool {
    exception(e).is_some_and(|n| n.eq_ignore_ascii_case(name))
}

fn is_dehydrated(e: &cba_exo::Error) -> bool {
    is_exception(e, "InvalidOperationInDehydratedContextException")
        || matches!(e, cba_exo::Error::Cmdlet { .. } if e.to_string().contains("Enable-OrganizationCustomization"))
}

fn params(pairs: &[(&str, Value)]) -> Parameters {
    let mut p = Parameters::new();
    for (k, v) in pairs {
        p.insert(*k, v.clone());
    }
    p
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => s.split(',').map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect(),
        _ => Vec::new(),
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let norm = |v: &[String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.trim().to_ascii_lowercase()).collect();
        v.sort();
        v.dedup();
        v
    };
    norm(a) == norm(b)
}

/// Filters compared as Exchange may echo them: whitespace and case do not count.
pub(crate) fn same_filter(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_lowercase();
    norm(a) == norm(b)
}

fn exo_client(
    services: &Services,
    tenant: &str,
    tokens: Arc<dyn TokenSource>,
    anchor: Option<String>,
    deadline: Duration,
) -> Result<ExoClient, Error> {
    let progress = services.progress.clone();
    let mut builder = ExoClient::builder()
        .base_url(services.endpoints.exchange.trim_end_matches('/'))
        .tenant_id(tenant)
        .token_source(tokens)
        .retry_policy(services.retry.clone().with_deadline(deadline))
        .http_config(&services.http)
        .on_event(move |event| {
            if let cba_exo::Event::Retry { cmdlet, attempt, wait, reason } = event {
                progress.event(&Event::Wait {
                    reason: format!("{cmdlet}: {reason} (attempt {attempt})"),
                    next_try_in: *wait,
                    elapsed: Duration::ZERO,
                    remaining: deadline,
                });
            }
        });
    if let Some(anchor) = anchor {
        builder = builder.anchor_mailbox(anchor);
    }
    builder.build().map_err(|source| Error::Exchange { doing: "configuring the Exchange client".into(), source })
}

/// The administrator's Exchange sign-in for `tenant`: a client that runs the RBAC cmdlets.
pub async fn admin_client(
    services: &Services,
    credential: &ExchangeAdminCredential,
    tenant: &str,
    deadline: Duration,
) -> Result<Exo, Error> {
    let exchange_root = services.tokens.endpoints().exchange_root.trim_end_matches('/').to_string();
    let (tokens, anchor, who): (Arc<dyn TokenSource>, Option<String>, String) = match credential {
        ExchangeAdminCredential::Certificate { identity, client_id } => {
            let cert = ClientCertificate::new((**identity).clone(), tenant, client_id)
                .map_err(Error::token_in("the provisioning app's certificate"))?;
            let source = CertificateTokenSource::new(services.tokens.clone(), cert, &Resource::Exchange);
            (Arc::new(source), None, format!("provisioning app {client_id}"))
        }
        ExchangeAdminCredential::Token(t) => {
            let token = delegated_token(t, &exchange_root, services.now())?;
            let upn = upn_of(&token);
            let anchor = upn.as_ref().map(|u| format!("UPN:{u}"));
            let who = upn.map_or("the administrator".to_string(), |u| format!("administrator {u}"));
            (Arc::new(StaticToken::new(token.secret())), anchor, who)
        }
        ExchangeAdminCredential::DeviceCode => {
            let options = DeviceCodeOptions {
                client_id: EXCHANGE_POWERSHELL_CLIENT_ID.to_string(),
                tenant: tenant.to_string(),
                scopes: vec![services.tokens.scope_for(&Resource::Exchange)],
                ..DeviceCodeOptions::for_setup(services.cloud.graph_root())
            };
            let progress = services.progress.clone();
            let token = cba_token::admin::device_code(&services.tokens, &options, |prompt| {
                progress.event(&Event::Prompt(format!(
                    "Exchange Online sign-in (the Exchange role group): {}",
                    prompt.message
                )));
            })
            .await
            .map_err(Error::token_in("the administrator's Exchange device-code sign-in"))?;
            let upn = upn_of(&token);
            let anchor = upn.as_ref().map(|u| format!("UPN:{u}"));
            let who = upn.map_or("the administrator".to_string(), |u| format!("administrator {u}"));
            (Arc::new(StaticToken::new(token.secret())), anchor, who)
        }
    };
    let client = exo_client(services, tenant, tokens, anchor, deadline)?;
    Ok(Exo { client, calls: Arc::default(), who })
}

/// The app's own Exchange client (app-only, anchored at the system mailbox).
pub fn app_client(services: &Services, cert: ClientCertificate, deadline: Duration) -> Result<Exo, Error> {
    let who = format!("app {}", cert.client_id());
    let tenant = cert.tenant().to_string();
    let source = CertificateTokenSource::new(services.tokens.clone(), cert, &Resource::Exchange);
    let client = exo_client(services, &tenant, Arc::new(source), None, deadline)?;
    Ok(Exo { client, calls: Arc::default(), who })
}

/// Accept the administrator's delegated Exchange token: a JWT must be for Exchange and not expire within five
/// minutes; an opaque one is taken as it is (Exchange says whether it works).
fn delegated_token(token: &str, exchange_root: &str, now: time::OffsetDateTime) -> Result<AccessToken, Error> {
    let bare = cba_token::jwt::strip_bearer(token).trim();
    let invalid = |reason: String| Error::Invalid { what: "Exchange admin token", value: "[redacted]".into(), reason };
    if bare.is_empty() || bare.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"') {
        return Err(invalid("it is empty or holds characters a bearer token cannot".into()));
    }
    let token = AccessToken::opaque(bare, "Bearer", "");
    let Ok(decoded) = token.decode() else { return Ok(token) };
    if let Some(exp) = decoded.expires_at() {
        let doing = "the administrator's Exchange token (CBA_EXO_ADMIN_TOKEN) cannot be used";
        let needed = Duration::from_secs(300);
        if exp <= now {
            return Err(Error::Token {
                doing: doing.into(),
                source: cba_token::Error::TokenExpired { expired_at: exp },
            });
        }
        let left: Duration = (exp - now).try_into().unwrap_or(Duration::ZERO);
        if left < needed {
            let source = cba_token::Error::TokenExpiresSoon { expires_at: exp, left, needed };
            return Err(Error::Token { doing: doing.into(), source });
        }
    }
    match decoded.claim_str("aud") {
        Some(aud)
            if aud.trim_end_matches('/').eq_ignore_ascii_case(exchange_root)
                || aud.eq_ignore_ascii_case(EXCHANGE_APP_ID) => {}
        Some(aud) => {
            return Err(invalid(format!(
                "it is for {aud:?}, not Exchange Online ({exchange_root}): get a token for {exchange_root}/.default"
            )));
        }
        None => return Err(invalid("it has no aud claim".into())),
    }
    Ok(token)
}

/// The tenant a delegated Exchange admin token was issued in (its `tid`), when it is a readable JWT: a fleet
/// checks it against the customer tenant before anything is sent.
pub fn admin_token_tenant(credential: &ExchangeAdminCredential) -> Option<String> {
    let ExchangeAdminCredential::Token(t) = credential else { return None };
    let token = AccessToken::opaque(cba_token::jwt::strip_bearer(t).trim(), "Bearer", "");
    token.decode().ok()?.claim_str("tid").map(str::to_ascii_lowercase)
}

fn upn_of(token: &AccessToken) -> Option<String> {
    let d = token.decode().ok()?;
    d.claim_str("upn").or_else(|| d.claim_str("preferred_username")).map(str::to_owned)
}

/// The Entra objects the Exchange steps attach to.
#[derive(Debug, Clone)]
pub(crate) struct App<'a> {
    pub app_id: &'a str,
    pub sp_object_id: &'a str,
    pub name: &'a str,
}

/// Make the Exchange objects (service principal, scope, role group, membership), recording each intent in
/// `profile.exchange` (saved by `save`) before its create.
pub(crate) async fn apply(
    services: &Services,
    exo: &Exo,
    app: &App<'_>,
    setup: &ExchangeSetup,
    profile: &mut Profile,
    save: &mut (dyn FnMut(&mut Profile) -> Result<(), Error> + Send),
    wait: Duration,
) -> Result<ExchangeReport, Error> {
    let mut recorded = profile.exchange.clone();
    let mut save_exchange = |state: &ExchangeProfile| {
        profile.exchange = Some(state.clone());
        save(profile)
    };
    apply_recorded(services, exo, app, setup, &mut recorded, &mut save_exchange, wait).await
}

/// [`apply`] for a record kept elsewhere (a fleet entry): `recorded` is what was made before, and `save` keeps
/// each new state (an intent before its create) where the caller keeps it.
pub(crate) async fn apply_recorded(
    services: &Services,
    exo: &Exo,
    app: &App<'_>,
    setup: &ExchangeSetup,
    current: &mut Option<ExchangeProfile>,
    save: &mut (dyn FnMut(&ExchangeProfile) -> Result<(), Error> + Send),
    wait: Duration,
) -> Result<ExchangeReport, Error> {
    let progress = services.progress.as_ref();
    let mut report = ExchangeReport::default();
    let recorded = current.clone().unwrap_or_default();
    let mut state = ExchangeProfile { service_principal: app.sp_object_id.to_string(), ..recorded.clone() };

    // 1. The Exchange service principal.
    let sp = match exo.find("Get-ServicePrincipal", params(&[("Identity", app.app_id.into())])).await? {
        Some(sp) => {
            report.unchanged.push("service_principal".into());
            sp
        }
        None => {
            state.service_principal_created = true;
            record(current, &state, save)?;
            let new = params(&[
                ("AppId", app.app_id.into()),
                ("ObjectId", app.sp_object_id.into()),
                ("DisplayName", app.name.into()),
            ]);
            let found = create(services, exo, setup, "New-ServicePrincipal", new, wait, &mut report, || {
                exo.find("Get-ServicePrincipal", params(&[("Identity", app.app_id.into())]))
            })
            .await?;
            report.created.push("service_principal".into());
            found
        }
    };
    let object_id = text(&sp, "ObjectId");
    if !object_id.is_empty() && !object_id.eq_ignore_ascii_case(app.sp_object_id) {
        return Err(Error::ExchangeObject {
            object: format!("Exchange service principal of app {}", app.app_id),
            problem: format!(
                "it points at Entra service principal {object_id}, not {} (the app's service principal was \
                 recreated); remove it with Remove-ServicePrincipal -Identity {object_id} and rerun",
                app.sp_object_id
            ),
        });
    }
    progress.detail(format!("Exchange service principal: {} ({})", text(&sp, "DisplayName"), app.sp_object_id));
    report.service_principal = app.sp_object_id.to_string();

    // 2. The scope and the group. Another group than the one recorded: leave the old one first (what the app
    // held there must not outlive the change), and forget it only once it is left.
    let wanted = match &setup.roles {
        ExchangeRoles::Group(name) => name.clone(),
        ExchangeRoles::Custom { .. } => role_group_name(app.name),
    };
    if !recorded.role_group.is_empty() && !recorded.role_group.eq_ignore_ascii_case(&wanted) {
        report.removed = leave(exo, app, &recorded).await?;
        for r in &report.removed {
            progress.detail(format!("{r}: removed (the previous role group {:?})", recorded.role_group));
        }
        state = ExchangeProfile {
            service_principal: state.service_principal.clone(),
            service_principal_created: state.service_principal_created,
            ..ExchangeProfile::default()
        };
        record(current, &state, save)?;
    }
    let group = match &setup.roles {
        ExchangeRoles::Group(name) => {
            let Some(group) = exo.find("Get-RoleGroup", params(&[("Identity", name.as_str().into())])).await? else {
                return Err(Error::ExchangeObject {
                    object: format!("Exchange role group {name:?}"),
                    problem: "it does not exist: name an existing group (Get-RoleGroup lists them), or let cba \
                              create one with the roles you need"
                        .into(),
                });
            };
            state.role_group = text(&group, "Name");
            state.role_group_created =
                recorded.role_group_created && recorded.role_group.eq_ignore_ascii_case(&state.role_group);
            report.unchanged.push("role_group".into());
            group
        }
        ExchangeRoles::Custom { roles, write_scope } => {
            let name = role_group_name(app.name);
            // An existing group is checked before anything is made: cba does not change its roles or scope.
            let existing = exo.find("Get-RoleGroup", params(&[("Identity", name.as_str().into())])).await?;
            if let Some(group) = &existing {
                check_group_scope(exo, &name, write_scope.as_ref().map(|_| name.as_str())).await?;
                check_group_roles(&name, group, roles)?;
            }
            if let Some(filter) = write_scope {
                let scope = match exo.find("Get-ManagementScope", params(&[("Identity", name.as_str().into())])).await?
                {
                    Some(scope) => {
                        state.scope_created =
                            recorded.scope_created && recorded.scope.as_deref() == Some(name.as_str());
                        report.unchanged.push("management_scope".into());
                        scope
                    }
                    None => {
                        state.scope = Some(name.clone());
                        state.scope_created = true;
                        record(current, &state, save)?;
                        let new = params(&[
                            ("Name", name.as_str().into()),
                            ("RecipientRestrictionFilter", filter.as_str().into()),
                        ]);
                        let found = create(services, exo, setup, "New-ManagementScope", new, wait, &mut report, || {
                            exo.find("Get-ManagementScope", params(&[("Identity", name.as_str().into())]))
                        })
                        .await?;
                        report.created.push("management_scope".into());
                        found
                    }
                };
                let found_filter = text(&scope, "RecipientRestrictionFilter");
                if !same_filter(&found_filter, filter) {
                    return Err(Error::ExchangeObject {
                        object: format!("management scope {name:?}"),
                        problem: format!(
                            "its filter is {found_filter:?}, not {filter:?}: rerun with that --write-scope, or \
                             remove the scope (Remove-ManagementScope, after the role group that uses it)"
                        ),
                    });
                }
                state.scope = Some(name.clone());
                state.write_scope = Some(found_filter);
            } else {
                state.scope = None;
                state.write_scope = None;
                state.scope_created = false;
            }
            let group = match existing {
                Some(group) => {
                    state.role_group_created =
                        recorded.role_group_created && recorded.role_group.eq_ignore_ascii_case(&name);
                    report.unchanged.push("role_group".into());
                    group
                }
                None => {
                    state.role_group = name.clone();
                    state.role_group_created = true;
                    record(current, &state, save)?;
                    let mut new = params(&[
                        ("Name", name.as_str().into()),
                        ("Roles", Value::from(roles.clone())),
                        ("Description", format!("Made by cba for app {} ({})", app.name, app.app_id).into()),
                    ]);
                    if let Some(scope) = &state.scope {
                        new.insert("CustomRecipientWriteScope", scope.as_str());
                    }
                    let found = create(services, exo, setup, "New-RoleGroup", new, wait, &mut report, || {
                        exo.find("Get-RoleGroup", params(&[("Identity", name.as_str().into())]))
                    })
                    .await?;
                    report.created.push("role_group".into());
                    found
                }
            };
            check_group_roles(&name, &group, roles)?;
            state.role_group = text(&group, "Name");
            group
        }
    };
    if state.role_group.is_empty() {
        state.role_group = text(&group, "Name");
    }
    state.roles = strings(&group, "Roles");
    record(current, &state, save)?;
    progress.detail(format!("Exchange role group: {} [{}]", state.role_group, state.roles.join(", ")));

    // 3. The membership.
    if is_member(exo, &state.role_group, app).await? {
        report.unchanged.push("membership".into());
    } else {
        let add = params(&[("Identity", state.role_group.as_str().into()), ("Member", app.sp_object_id.into())]);
        match exo.run("Add-RoleGroupMember", add.clone()).await {
            Ok(_) => report.created.push("membership".into()),
            Err(e) if is_exception(&e, "MemberAlreadyExistsException") => report.unchanged.push("membership".into()),
            Err(e) if e.is_outcome_unknown() => {
                // Look, then decide: sent again only when the look-up shows it did not happen.
                progress.detail("Add-RoleGroupMember: outcome unknown; looking before sending it again");
                if !is_member(exo, &state.role_group, app).await? {
                    match exo.run("Add-RoleGroupMember", add).await {
                        Ok(_) => {}
                        Err(e) if is_exception(&e, "MemberAlreadyExistsException") => {}
                        Err(e) => return Err(exo.failed("Add-RoleGroupMember", e)),
                    }
                }
                report.created.push("membership".into());
            }
            Err(e) => return Err(exo.failed("Add-RoleGroupMember", e)),
        }
        if !is_member(exo, &state.role_group, app).await? {
            return Err(Error::ExchangeObject {
                object: format!("Exchange role group {:?}", state.role_group),
                problem: format!("Add-RoleGroupMember succeeded but the group does not list {}", app.sp_object_id),
            });
        }
    }
    progress.detail(format!("member of {}: {}", state.role_group, app.sp_object_id));

    report.role_group = state.role_group.clone();
    report.role_group_created = state.role_group_created;
    report.roles = state.roles.clone();
    report.scope = state.scope.clone();
    report.write_scope = state.write_scope.clone();
    report.requests = exo.requests();
    Ok(report)
}

/// What setup would make in Exchange (a dry run: reads only). `created` lists what would be made, `unchanged`
/// what exists; an existing group named by the request must exist, and a `cba-<app>` group must hold the roles
/// and scope asked, as for a real run.
pub(crate) async fn plan(
    exo: &Exo,
    app_id: Option<&str>,
    app_name: &str,
    roles: &ExchangeRoles,
) -> Result<ExchangeReport, Error> {
    let mut report = ExchangeReport::default();
    let mut note = |name: &str, exists: bool| {
        if exists { report.unchanged.push(name.into()) } else { report.created.push(name.into()) }
    };
    let sp = match app_id {
        Some(id) => exo.find("Get-ServicePrincipal", params(&[("Identity", id.into())])).await?,
        None => None,
    };
    note("service_principal", sp.is_some());
    let (name, group) = match roles {
        ExchangeRoles::Group(name) => {
            let group = exo.find("Get-RoleGroup", params(&[("Identity", name.as_str().into())])).await?;
            if group.is_none() {
                return Err(Error::ExchangeObject {
                    object: format!("Exchange role group {name:?}"),
                    problem: "it does not exist: name an existing group (Get-RoleGroup lists them), or let cba \
                              create one with the roles you need"
                        .into(),
                });
            }
            (name.clone(), group)
        }
        ExchangeRoles::Custom { roles, write_scope } => {
            let name = role_group_name(app_name);
            let group = exo.find("Get-RoleGroup", params(&[("Identity", name.as_str().into())])).await?;
            if let Some(g) = &group {
                check_group_scope(exo, &name, write_scope.as_ref().map(|_| name.as_str())).await?;
                check_group_roles(&name, g, roles)?;
            }
            if let Some(filter) = write_scope {
                let scope = scope_filter(exo, &name).await?;
                if let Some(found) = &scope
                    && !same_filter(found, filter)
                {
                    return Err(Error::ExchangeObject {
                        object: format!("management scope {name:?}"),
                        problem: format!("its filter is {found:?}, not {filter:?}"),
                    });
                }
                note("management_scope", scope.is_some());
                report.scope = Some(name.clone());
                report.write_scope = Some(filter.clone());
            }
            note("role_group", group.is_some());
            report.role_group_created = group.is_none();
            (name, group)
        }
    };
    let member = match (&sp, &group) {
        (Some(sp), Some(_)) => {
            let app = App { app_id: app_id.unwrap_or_default(), sp_object_id: &text(sp, "ObjectId"), name: app_name };
            is_member(exo, &name, &app).await?
        }
        _ => false,
    };
    note("membership", member);
    report.service_principal = sp.map(|s| text(&s, "ObjectId")).unwrap_or_default();
    report.roles = match (&group, roles) {
        (Some(g), _) => strings(g, "Roles"),
        (None, ExchangeRoles::Custom { roles, .. }) => roles.clone(),
        (None, ExchangeRoles::Group(_)) => Vec::new(),
    };
    report.role_group = name;
    report.requests = exo.requests();
    Ok(report)
}

/// Leave the previously recorded group: the membership, and the group and scope when `cba` made them.
async fn leave(exo: &Exo, app: &App<'_>, recorded: &ExchangeProfile) -> Result<Vec<String>, Error> {
    let mut removed = Vec::new();
    let confirm = || ("Confirm", Value::Bool(false));
    let group = recorded.role_group.as_str();
    let member = params(&[("Identity", group.into()), ("Member", app.sp_object_id.into()), confirm()]);
    if remove(exo, "Remove-RoleGroupMember", member, &["MemberNotFoundException"]).await? {
        removed.push("membership".to_string());
    }
    if recorded.role_group_created
        && remove(exo, "Remove-RoleGroup", params(&[("Identity", group.into()), confirm()]), &[]).await?
    {
        removed.push("role_group".to_string());
    }
    if let (Some(scope), true) = (&recorded.scope, recorded.scope_created)
        && remove(exo, "Remove-ManagementScope", params(&[("Identity", scope.as_str().into()), confirm()]), &[]).await?
    {
        removed.push("management_scope".to_string());
    }
    Ok(removed)
}

/// A custom group must hold exactly `roles`.
fn check_group_roles(name: &str, group: &Value, roles: &[String]) -> Result<(), Error> {
    let found = strings(group, "Roles");
    if same_set(&found, roles) {
        return Ok(());
    }
    Err(Error::ExchangeObject {
        object: format!("Exchange role group {name:?}"),
        problem: format!(
            "it holds the roles [{}], not [{}]: rerun with those --exchange-roles, or remove the group \
             (Remove-RoleGroup) so cba makes it anew",
            found.join(", "),
            roles.join(", ")
        ),
    })
}

/// An existing custom group must limit its writes by `scope` (or not at all when `None`), as its role
/// assignments say: cba does not change a group's scope behind its owner's back.
async fn check_group_scope(exo: &Exo, group: &str, scope: Option<&str>) -> Result<(), Error> {
    let assignments = exo
        .run("Get-ManagementRoleAssignment", params(&[("RoleAssignee", group.into())]))
        .await
        .map_err(|e| exo.failed("Get-ManagementRoleAssignment", e))?;
    let found: Vec<String> = assignments.iter().map(|a| text(a, "CustomRecipientWriteScope")).collect();
    let ok = match scope {
        Some(s) => !found.is_empty() && found.iter().all(|f| f.eq_ignore_ascii_case(s)),
        None => found.iter().all(String::is_empty),
    };
    if ok {
        return Ok(());
    }
    let had = found.iter().find(|f| !f.is_empty()).map_or("none".to_string(), |f| format!("{f:?}"));
    Err(Error::ExchangeObject {
        object: format!("Exchange role group {group:?}"),
        problem: format!(
            "its write scope is {had}, not {}: remove the group (Remove-RoleGroup) so cba makes it anew with the \
             scope asked, or rerun with the --write-scope it has",
            scope.map_or("none".to_string(), |s| format!("{s:?}"))
        ),
    })
}

fn record(
    current: &mut Option<ExchangeProfile>,
    state: &ExchangeProfile,
    save: &mut (dyn FnMut(&ExchangeProfile) -> Result<(), Error> + Send),
) -> Result<(), Error> {
    if current.as_ref() != Some(state) {
        *current = Some(state.clone());
        save(state)?;
    }
    Ok(())
}

/// Whether `app`'s service principal is a member of `group`.
async fn is_member(exo: &Exo, group: &str, app: &App<'_>) -> Result<bool, Error> {
    let members = exo
        .run("Get-RoleGroupMember", params(&[("Identity", group.into())]))
        .await
        .map_err(|e| exo.failed("Get-RoleGroupMember", e))?;
    Ok(members.iter().any(|m| is_app(m, app.sp_object_id, app.app_id)))
}

fn is_app(member: &Value, sp_object_id: &str, app_id: &str) -> bool {
    ["ExternalDirectoryObjectId", "Identity", "Name", "ObjectId", "AppId"]
        .iter()
        .map(|k| text(member, k))
        .any(|v| v.eq_ignore_ascii_case(sp_object_id) || v.eq_ignore_ascii_case(app_id))
}

/// Send a create once, then read the object back. "Already exists" counts as success. An unknown outcome is
/// looked up and sent again only when absent. A dehydrated tenant is customized first when the request says so.
#[allow(clippy::too_many_arguments, reason = "one internal helper; a struct would only rename the arguments")]
async fn create<F, Fut>(
    services: &Services,
    exo: &Exo,
    setup: &ExchangeSetup,
    cmdlet: &str,
    params: Parameters,
    wait: Duration,
    report: &mut ExchangeReport,
    look: F,
) -> Result<Value, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Value>, Error>>,
{
    let mut customized = false;
    let mut retried_unknown = false;
    loop {
        match exo.run(cmdlet, params.clone()).await {
            Ok(_) => break,
            Err(e) if is_exception(&e, "ADObjectAlreadyExistsException") => break,
            Err(e) if e.is_outcome_unknown() && !retried_unknown => {
                services.progress.detail(format!("{cmdlet}: outcome unknown; looking before sending it again"));
                if look().await?.is_some() {
                    break;
                }
                retried_unknown = true;
            }
            Err(e) if is_dehydrated(&e) && !customized => {
                if !setup.enable_customization {
                    return Err(Error::ExchangeCustomizationNeeded { cmdlet: cmdlet.to_string(), source: e });
                }
                enable_customization(services, exo, wait).await?;
                report.customization_enabled = true;
                customized = true;
            }
            Err(e) => return Err(exo.failed(cmdlet, e)),
        }
    }
    look().await?.ok_or_else(|| Error::ExchangeObject {
        object: format!("the object {cmdlet} made"),
        problem: "it succeeded but the look-up does not find it".into(),
    })
}

/// `Enable-OrganizationCustomization`, then wait until `Get-OrganizationConfig` no longer says `IsDehydrated`.
async fn enable_customization(services: &Services, exo: &Exo, wait: Duration) -> Result<(), Error> {
    services.progress.detail("the tenant is dehydrated: running Enable-OrganizationCustomization");
    match exo.run("Enable-OrganizationCustomization", Parameters::new()).await {
        Ok(_) => {}
        Err(e) if e.to_string().contains("already enabled") || e.to_string().contains("not required") => {}
        // Whether it ran or not, the configuration below says where the tenant is.
        Err(e) if e.is_outcome_unknown() => {}
        Err(e) => return Err(exo.failed("Enable-OrganizationCustomization", e)),
    }
    let policy = poll_policy(services, wait);
    let progress = services.progress.clone();
    let (outcome, _) = cba_http::with_retry_on(
        services.clock.as_ref(),
        &policy,
        |_| exo.find("Get-OrganizationConfig", Parameters::new()),
        |outcome| match outcome {
            Ok(Some(config)) if config.get("IsDehydrated").and_then(Value::as_bool) == Some(true) => {
                Verdict::Retry { after: None, reason: "Enable-OrganizationCustomization has not completed yet".into() }
            }
            _ => Verdict::Done,
        },
        |event| progress.event(&wait_event(event, wait)),
    )
    .await;
    match outcome? {
        Some(config) if config.get("IsDehydrated").and_then(Value::as_bool) == Some(true) => {
            Err(Error::ExchangeObject {
                object: "the organization's customization".into(),
                problem: format!(
                    "Enable-OrganizationCustomization ran but the tenant is still dehydrated after {} s: rerun \
                     later, or with a longer --wait",
                    wait.as_secs()
                ),
            })
        }
        _ => Ok(()),
    }
}

fn poll_policy(services: &Services, deadline: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts: u32::MAX,
        initial_backoff: Duration::from_secs(2),
        // Short enough that the wait ends soon after the change applies; RBAC changes take minutes, not hours.
        max_backoff: Duration::from_secs(20),
        deadline,
        ..services.retry.clone()
    }
}

fn wait_event(event: &cba_http::RetryEvent, deadline: Duration) -> Event {
    Event::Wait {
        reason: event.reason.clone(),
        next_try_in: event.wait,
        elapsed: event.elapsed,
        remaining: deadline.saturating_sub(event.elapsed + event.wait),
    }
}

/// The read cmdlet the roles allow that proves the app's access: Get-Mailbox for recipient roles,
/// Get-OrganizationConfig for configuration roles; `None` when no known role allows a read.
pub fn proof_cmdlet(roles: &[String]) -> Option<(&'static str, Parameters)> {
    let has = |names: &[&str]| roles.iter().any(|r| names.iter().any(|n| r.eq_ignore_ascii_case(n)));
    if has(&["View-Only Recipients", "Mail Recipients"]) {
        Some(("Get-Mailbox", params(&[("ResultSize", 1.into())])))
    } else if has(&["View-Only Configuration", "Organization Configuration"]) {
        Some(("Get-OrganizationConfig", Parameters::new()))
    } else {
        None
    }
}

/// Run the proof cmdlet with the app's own token until Exchange applies the membership (RBAC propagation),
/// within `deadline`. Returns how long it took.
pub(crate) async fn prove_access(
    services: &Services,
    app: &Exo,
    cmdlet: &str,
    params: &Parameters,
    deadline: Duration,
) -> Result<Duration, Error> {
    let started = services.now();
    let policy = poll_policy(services, deadline);
    let progress = services.progress.clone();
    let (outcome, stats) = cba_http::with_retry_on(
        services.clock.as_ref(),
        &policy,
        |_| app.run(cmdlet, params.clone()),
        |outcome| match outcome {
            Err(e) if e.is_permission() => Verdict::Retry {
                after: None,
                reason: format!(
                    "{cmdlet} refused: Exchange has not applied the role group to the app yet (RBAC propagation)"
                ),
            },
            _ => Verdict::Done,
        },
        |event| progress.event(&wait_event(event, deadline)),
    )
    .await;
    let waited = services.since(started);
    match outcome {
        Ok(_) => Ok(waited),
        Err(e) if e.is_permission() && stats.gave_up => {
            Err(Error::ExchangeNotEffective { app_id: app.who.clone(), cmdlet: cmdlet.to_string(), waited })
        }
        Err(e) => Err(app.failed(cmdlet, e)),
    }
}

/// The write scope, as Exchange reports it: `(name, filter)`.
pub(crate) async fn scope_filter(exo: &Exo, name: &str) -> Result<Option<String>, Error> {
    Ok(exo
        .find("Get-ManagementScope", params(&[("Identity", name.into())]))
        .await?
        .map(|s| text(&s, "RecipientRestrictionFilter")))
}

/// The Exchange links of a setup, as `status` checks: `exchange_service_principal`, `exchange_membership`,
/// `exchange_roles`, `exchange_scope` (read with `reader`: the admin's Exchange client, or the app's own when it
/// holds Role Management) and `exchange_access` (a read cmdlet with the app's own token). A link nothing could
/// read is unconfirmed (`ok: null`), never ok.
pub async fn checks(
    reader: Option<&Exo>,
    app_exo: Option<&Exo>,
    app_id: &str,
    recorded: &ExchangeProfile,
) -> Vec<Check> {
    let check = |name: &'static str, ok: Option<bool>, source: &'static str, detail: String| {
        let remedy = match ok {
            Some(true) => None,
            Some(false) => Some(Remedy::Setup),
            None => Some(Remedy::CheckWithAdmin),
        };
        Check { check: name, ok, warning: false, detail, source, remedy }
    };
    let mut out = Vec::new();
    let group = &recorded.role_group;
    let read = match reader {
        Some(exo) => read_links(exo, app_id, recorded).await,
        None => Err("no Exchange reader: pass the administrator's Exchange sign-in (--exchange-admin)".to_string()),
    };
    match read {
        Ok(links) => {
            out.push(check(
                "exchange_service_principal",
                Some(links.sp.is_some()),
                "exchange",
                match &links.sp {
                    Some(id) => format!("Exchange service principal {id}"),
                    None => format!("no Exchange service principal for app {app_id}"),
                },
            ));
            out.push(match &links.group_roles {
                None => check(
                    "exchange_membership",
                    Some(false),
                    "exchange",
                    format!("role group {group:?} does not exist"),
                ),
                Some(_) => check(
                    "exchange_membership",
                    Some(links.member),
                    "exchange",
                    if links.member {
                        format!("member of {group:?}")
                    } else {
                        format!("the app is not a member of {group:?}")
                    },
                ),
            });
            if let Some(roles) = &links.group_roles {
                let same = recorded.roles.is_empty() || same_set(roles, &recorded.roles);
                out.push(check(
                    "exchange_roles",
                    Some(same),
                    "exchange",
                    if same {
                        format!("{group:?} holds [{}]", roles.join(", "))
                    } else {
                        format!(
                            "{group:?} holds [{}], the profile expects [{}]",
                            roles.join(", "),
                            recorded.roles.join(", ")
                        )
                    },
                ));
            }
            if let (Some(name), Some(filter)) = (&recorded.scope, &recorded.write_scope) {
                let ok = links.scope_filter.as_deref().is_some_and(|f| same_filter(f, filter));
                out.push(check(
                    "exchange_scope",
                    Some(ok),
                    "exchange",
                    match &links.scope_filter {
                        Some(f) if ok => format!("write scope {name:?}: {f}"),
                        Some(f) => format!("write scope {name:?} is {f:?}, the profile expects {filter:?}"),
                        None => format!("write scope {name:?} does not exist"),
                    },
                ));
            }
        }
        Err(why) => {
            for name in ["exchange_service_principal", "exchange_membership", "exchange_roles"] {
                out.push(check(name, None, "exchange", format!("not confirmed: {why}")));
            }
            if recorded.scope.is_some() {
                out.push(check("exchange_scope", None, "exchange", format!("not confirmed: {why}")));
            }
        }
    }
    if let Some(app) = app_exo {
        match proof_cmdlet(&recorded.roles) {
            Some((cmdlet, params)) => out.push(match app.run(cmdlet, params).await {
                Ok(_) => check("exchange_access", Some(true), "exchange", format!("the app ran {cmdlet}")),
                Err(e) if e.is_permission() => check(
                    "exchange_access",
                    Some(false),
                    "exchange",
                    format!("Exchange refused {cmdlet} to the app: {e}"),
                ),
                Err(e) => check("exchange_access", None, "exchange", format!("{cmdlet} failed: {e}")),
            }),
            None => out.push(check(
                "exchange_access",
                None,
                "exchange",
                format!("no read cmdlet known for the roles [{}]", recorded.roles.join(", ")),
            )),
        }
    }
    out
}

/// The Exchange checks of `status` for the role group a profile records: read with the administrator's
/// Exchange sign-in when given, else with the app's own token (enough when its roles include Role Management;
/// otherwise those links are unconfirmed); the app's access with its own token.
pub async fn status_checks(
    services: &Services,
    admin: Option<&ExchangeAdminCredential>,
    credential: Option<&crate::Credential>,
    tenant: &str,
    app_id: &str,
    recorded: &ExchangeProfile,
) -> Result<Vec<Check>, Error> {
    let deadline = Duration::from_secs(60);
    let app = match credential {
        Some(c) => {
            let cert = c.client_certificate(tenant, app_id).map_err(Error::token_in("the certificate"))?;
            Some(app_client(services, cert, deadline)?)
        }
        None => None,
    };
    let admin = match admin {
        Some(a) => Some(admin_client(services, a, tenant, deadline).await?),
        None => None,
    };
    Ok(checks(admin.as_ref().or(app.as_ref()), app.as_ref(), app_id, recorded).await)
}

/// The Exchange part of a teardown for a profile that records a role group (`None` when it records none).
pub async fn teardown_profile(
    services: &Services,
    admin: &ExchangeAdminCredential,
    profile: &Profile,
) -> Result<Option<ExchangeTeardown>, Error> {
    let Some(recorded) = &profile.exchange else { return Ok(None) };
    if profile.app_id.is_empty() {
        return Ok(None);
    }
    services.progress.stage("removing the app's Exchange role group membership and what cba made in Exchange");
    let exo = admin_client(services, admin, &profile.tenant_id, Duration::from_secs(300)).await?;
    let out = teardown(&exo, &profile.app_id, recorded).await?;
    for r in &out.removed {
        services.progress.detail(format!("{r}: removed"));
    }
    for r in &out.already_gone {
        services.progress.detail(format!("{r}: already gone"));
    }
    Ok(Some(out))
}

struct Links {
    sp: Option<String>,
    group_roles: Option<Vec<String>>,
    member: bool,
    scope_filter: Option<String>,
}

async fn read_links(exo: &Exo, app_id: &str, recorded: &ExchangeProfile) -> Result<Links, String> {
    let text_of = |e: Error| match &e {
        Error::Exchange { source, .. } if source.is_permission() => {
            format!("{} may not read Exchange RBAC (it needs the Role Management role)", exo.who)
        }
        _ => crate::status::chain(&e),
    };
    let sp = exo.find("Get-ServicePrincipal", params(&[("Identity", app_id.into())])).await.map_err(text_of)?;
    let sp_id = sp.as_ref().map(|s| text(s, "ObjectId")).unwrap_or_else(|| recorded.service_principal.clone());
    let group = exo
        .find("Get-RoleGroup", params(&[("Identity", recorded.role_group.as_str().into())]))
        .await
        .map_err(text_of)?;
    let member = match &group {
        Some(_) => {
            let app = App { app_id, sp_object_id: &sp_id, name: "" };
            is_member(exo, &recorded.role_group, &app).await.map_err(text_of)?
        }
        None => false,
    };
    let scope_filter = match &recorded.scope {
        Some(name) => scope_filter(exo, name).await.map_err(text_of)?,
        None => None,
    };
    Ok(Links {
        sp: sp.map(|s| text(&s, "ObjectId")),
        group_roles: group.map(|g| strings(&g, "Roles")),
        member,
        scope_filter,
    })
}

/// What the Exchange part of a teardown removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExchangeTeardown {
    /// Removed now (`exchange_membership`, `exchange_role_group`, `exchange_scope`, `exchange_service_principal`).
    pub removed: Vec<String>,
    /// Already gone.
    pub already_gone: Vec<String>,
    /// Requests sent.
    pub requests: u32,
}

/// Remove what setup made in Exchange: the membership, the group and scope `cba` created (only those), and the
/// Exchange service principal. A 404 (and "not a member") is done. Rerunnable.
pub async fn teardown(exo: &Exo, app_id: &str, recorded: &ExchangeProfile) -> Result<ExchangeTeardown, Error> {
    let mut out = ExchangeTeardown::default();
    let mut note = |name: &str, removed: bool| {
        if removed { out.removed.push(name.into()) } else { out.already_gone.push(name.into()) }
    };
    let confirm = || ("Confirm", Value::Bool(false));
    if !recorded.role_group.is_empty() {
        let member = if recorded.service_principal.is_empty() { app_id } else { &recorded.service_principal };
        let removed = remove(
            exo,
            "Remove-RoleGroupMember",
            params(&[("Identity", recorded.role_group.as_str().into()), ("Member", member.into()), confirm()]),
            &["MemberNotFoundException"],
        )
        .await?;
        note("exchange_membership", removed);
        if recorded.role_group_created {
            let removed = remove(
                exo,
                "Remove-RoleGroup",
                params(&[("Identity", recorded.role_group.as_str().into()), confirm()]),
                &[],
            )
            .await?;
            note("exchange_role_group", removed);
        }
    }
    if let (Some(scope), true) = (&recorded.scope, recorded.scope_created) {
        let removed =
            remove(exo, "Remove-ManagementScope", params(&[("Identity", scope.as_str().into()), confirm()]), &[])
                .await?;
        note("exchange_scope", removed);
    }
    let removed =
        remove(exo, "Remove-ServicePrincipal", params(&[("Identity", app_id.into()), confirm()]), &[]).await?;
    note("exchange_service_principal", removed);
    out.requests = exo.requests();
    Ok(out)
}

/// The Exchange service principal of app `app_id` (its memberships go with it), for a teardown that has no
/// recorded role group (no profile, or one from before): a group `cba` may have made is not known, so it stays.
pub async fn remove_service_principal(
    services: &Services,
    admin: &ExchangeAdminCredential,
    tenant: &str,
    app_id: &str,
) -> Result<ExchangeTeardown, Error> {
    let exo = admin_client(services, admin, tenant, Duration::from_secs(300)).await?;
    teardown(&exo, app_id, &ExchangeProfile::default()).await
}

/// Run a Remove-: `true` removed, `false` already gone (404 or one of `gone`). An unknown outcome is settled
/// by running it again: a second remove of a removed object answers 404.
async fn remove(exo: &Exo, cmdlet: &str, params: Parameters, gone: &[&str]) -> Result<bool, Error> {
    let mut again = false;
    loop {
        match exo.run(cmdlet, params.clone()).await {
            Ok(_) => return Ok(true),
            Err(e) if is_not_found(&e) || gone.iter().any(|g| is_exception(&e, g)) => return Ok(again),
            Err(e) if e.is_outcome_unknown() && !again => again = true,
            Err(e) => return Err(exo.failed(cmdlet, e)),
        }
    }
}

/// A role group the app is a member of, with its roles and write scope (`cba exo roles`).
#[derive(Debug, Clone, Serialize)]
pub struct HeldGroup {
    /// The group.
    pub role_group: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// Its custom recipient write scope, when it has one.
    pub write_scope: Option<String>,
    /// That scope's recipient filter.
    pub write_scope_filter: Option<String>,
}

/// Which Exchange role groups and roles the app holds (`cba exo roles --output json`).
#[derive(Debug, Clone, Serialize)]
pub struct AppRoles {
    /// The app.
    pub app_id: String,
    /// Its Exchange service principal, when it has one.
    pub service_principal: Option<String>,
    /// The groups it is a member of.
    pub role_groups: Vec<HeldGroup>,
    /// Every role, once, sorted.
    pub roles: Vec<String>,
    /// Requests sent.
    pub requests: u32,
}

/// Read from Exchange which role groups (and so roles) the app `app_id` holds through its Exchange service
/// principal. Needs Role Management (the admin's sign-in, or an app token holding it). The Entra role's
/// implicit group is not listed (it is not a membership).
pub async fn app_roles(exo: &Exo, app_id: &str) -> Result<AppRoles, Error> {
    let sp = exo.find("Get-ServicePrincipal", params(&[("Identity", app_id.into())])).await?;
    let mut out = AppRoles {
        app_id: app_id.to_string(),
        service_principal: None,
        role_groups: Vec::new(),
        roles: Vec::new(),
        requests: 0,
    };
    if let Some(sp) = sp {
        let sp_id = text(&sp, "ObjectId");
        let names: Vec<String> = ["ObjectId", "Name", "Identity", "DisplayName", "AppId"]
            .iter()
            .map(|k| text(&sp, k))
            .filter(|v| !v.is_empty())
            .collect();
        let groups = exo.run("Get-RoleGroup", Parameters::new()).await.map_err(|e| exo.failed("Get-RoleGroup", e))?;
        for g in groups {
            let members = strings(&g, "Members");
            if !members.iter().any(|m| names.iter().any(|n| n.eq_ignore_ascii_case(m))) {
                continue;
            }
            let name = text(&g, "Name");
            let assignments = exo
                .run("Get-ManagementRoleAssignment", params(&[("RoleAssignee", name.as_str().into())]))
                .await
                .map_err(|e| exo.failed("Get-ManagementRoleAssignment", e))?;
            let write_scope = assignments.iter().map(|a| text(a, "CustomRecipientWriteScope")).find(|s| !s.is_empty());
            let write_scope_filter = match &write_scope {
                Some(s) => scope_filter(exo, s).await?,
                None => None,
            };
            out.role_groups.push(HeldGroup {
                role_group: name,
                roles: strings(&g, "Roles"),
                write_scope,
                write_scope_filter,
            });
        }
        out.service_principal = Some(sp_id);
    }
    let mut roles: Vec<String> = out.role_groups.iter().flat_map(|g| g.roles.clone()).collect();
    roles.sort_by_key(|r| r.to_ascii_lowercase());
    roles.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    out.roles = roles;
    out.requests = exo.requests();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_cut_to_64() {
        assert_eq!(role_group_name("contoso-exo"), "cba-contoso-exo");
        let long = "x".repeat(100);
        assert_eq!(role_group_name(&long).chars().count(), 64);
    }

    #[test]
    fn requests_are_checked() {
        assert!(check(&ExchangeRoles::Group("Help Desk".into())).is_ok());
        assert!(check(&ExchangeRoles::Group(" ".into())).is_err());
        assert!(check(&ExchangeRoles::Custom { roles: vec![], write_scope: None }).is_err());
        assert!(
            check(&ExchangeRoles::Custom { roles: vec!["Mail Recipients".into()], write_scope: Some(" ".into()) })
                .is_err()
        );
        assert!(
            check(&ExchangeRoles::Custom {
                roles: vec!["Mail Recipients".into()],
                write_scope: Some("Department -eq 'Sales'".into())
            })
            .is_ok()
        );
    }

    #[test]
    fn proof_cmdlets_follow_the_roles() {
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(proof_cmdlet(&roles(&["mail recipients"])).map(|p| p.0), Some("Get-Mailbox"));
        assert_eq!(proof_cmdlet(&roles(&["View-Only Configuration"])).map(|p| p.0), Some("Get-OrganizationConfig"));
        assert_eq!(proof_cmdlet(&roles(&["Reset Password"])).map(|p| p.0), None);
    }

    #[test]
    fn sets_and_filters_compare_loosely() {
        let v = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(same_set(&v(&["A", "b"]), &v(&["B", "a"])));
        assert!(!same_set(&v(&["A"]), &v(&["A", "B"])));
        assert!(same_filter("Department -eq 'Sales'", "department  -eq 'sales'"));
        assert!(!same_filter("Department -eq 'Sales'", "Department -eq 'Finance'"));
    }

    #[test]
    fn errors_are_read_by_exception() {
        let e = cba_exo::Error::Cmdlet {
            cmdlet: "New-RoleGroup".into(),
            status: 400,
            code: "BadRequest".into(),
            message: "Error executing cmdlet".into(),
            details: vec![cba_exo::CmdletErrorDetail::parse(
                "Ex6F9304|Microsoft.Exchange.Management.Tasks.InvalidOperationInDehydratedContextException|This operation is not available in current service offer. Please run Enable-OrganizationCustomization before running this operation.",
            )],
            client_request_id: String::new(),
        };
        assert!(is_dehydrated(&e));
        assert!(!is_not_found(&e));
        let nf = cba_exo::Error::Cmdlet {
            cmdlet: "Get-RoleGroup".into(),
            status: 404,
            code: "NotFound".into(),
            message: String::new(),
            details: vec![],
            client_request_id: String::new(),
        };
        assert!(is_not_found(&nf));
    }

    #[test]
    fn delegated_tokens_are_checked() {
        let now = time::OffsetDateTime::now_utc();
        assert!(delegated_token("opaque-token", "https://outlook.office365.com", now).is_ok());
        assert!(delegated_token("has space", "https://outlook.office365.com", now).is_err());
        let jwt = |claims: &str| {
            use std::io::Write as _;
            let b64 = |s: &str| {
                let mut out = Vec::new();
                // base64url without padding, by hand: the test needs no extra dependency.
                const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                for chunk in s.as_bytes().chunks(3) {
                    let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
                    for i in 0..=chunk.len() {
                        out.write_all(&[A[((n >> (18 - 6 * i)) & 63) as usize]]).unwrap();
                    }
                }
                String::from_utf8(out).unwrap()
            };
            format!("{}.{}.c2ln", b64(r#"{"alg":"RS256","typ":"JWT"}"#), b64(claims))
        };
        let root = "https://outlook.office365.com";
        let at = |secs: i64| now.unix_timestamp() + secs;
        let fresh = jwt(&format!(r#"{{"aud":"{root}","exp":{},"upn":"admin@contoso.com"}}"#, at(3600)));
        let token = delegated_token(&fresh, root, now).expect("a fresh Exchange token");
        assert_eq!(upn_of(&token).as_deref(), Some("admin@contoso.com"));
        let expired = jwt(&format!(r#"{{"aud":"{root}","exp":{}}}"#, at(-60)));
        let e = delegated_token(&expired, root, now).unwrap_err();
        assert!(matches!(e, Error::Token { source: cba_token::Error::TokenExpired { .. }, .. }), "{e:?}");
        let soon = jwt(&format!(r#"{{"aud":"{root}","exp":{}}}"#, at(60)));
        let e = delegated_token(&soon, root, now).unwrap_err();
        assert!(matches!(e, Error::Token { source: cba_token::Error::TokenExpiresSoon { .. }, .. }), "{e:?}");
        let graph = jwt(&format!(r#"{{"aud":"https://graph.microsoft.com","exp":{}}}"#, at(3600)));
        let e = delegated_token(&graph, root, now).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }) && e.to_string().contains("not Exchange Online"), "{e}");
        let debug = format!("{:?}", ExchangeAdminCredential::Token(zeroize::Zeroizing::new("secret".into())));
        assert!(!debug.contains("secret"));
    }
}
