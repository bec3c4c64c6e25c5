//! Least privilege in Exchange against cba-sim: setup with an Exchange role group instead of an Entra role, its
//! proof, reruns and crashes, status and teardown.

use std::sync::Arc;
use std::time::Duration;

use cba_exo::{ExoClient, Parameters};
use cba_lifecycle::exchange_roles::{self, ExchangeAdminCredential, ExchangeRoles, ExchangeSetup};
use cba_lifecycle::{Error, Event, MemoryStore, ProfileStore as _, SetupReport};
use cba_sim::SimTenant;
use cba_token::{CertificateTokenSource, Resource};
use serde_json::json;

use crate::support::{Recorder, Tenant, request, shared_identity};

const VIEW_ONLY: &str = "View-Only Organization Management";
const SALES: &str = "Department -eq 'Sales'";

async fn start(configure: impl FnOnce(cba_sim::SimTenantBuilder) -> cba_sim::SimTenantBuilder) -> Tenant {
    let sim = configure(SimTenant::builder().tenant_name("contoso").replication_delay(Duration::ZERO)).start().await;
    Tenant { sim: Arc::new(sim) }
}

fn admin(tenant: &Tenant) -> ExchangeAdminCredential {
    ExchangeAdminCredential::Token(zeroize::Zeroizing::new(tenant.sim.exchange_admin_token()))
}

fn custom(roles: &[&str], scope: Option<&str>) -> ExchangeRoles {
    ExchangeRoles::Custom { roles: roles.iter().map(|r| r.to_string()).collect(), write_scope: scope.map(Into::into) }
}

fn exchange_request(tenant: &Tenant, roles: ExchangeRoles) -> cba_lifecycle::SetupRequest {
    let mut r = request(tenant, &shared_identity());
    r.roles = Vec::new();
    r.exchange =
        Some(ExchangeSetup { roles, keep_entra_role: false, enable_customization: false, admin: admin(tenant) });
    r
}

async fn set_up(tenant: &Tenant, store: &MemoryStore, req: &cba_lifecycle::SetupRequest) -> Result<SetupReport, Error> {
    let services = tenant.services(Arc::new(Recorder::default()));
    cba_lifecycle::setup(&services, store, &tenant.admin(), req).await
}

/// The app's own Exchange client (app-only, as a script would use it).
fn app_exo(tenant: &Tenant, app_id: &str) -> ExoClient {
    let services = tenant.services(Arc::new(Recorder::default()));
    let cert = cba_token::ClientCertificate::new(shared_identity(), tenant.sim.tenant_id(), app_id).unwrap();
    ExoClient::builder()
        .base_url(tenant.sim.exchange_url())
        .tenant_id(tenant.sim.tenant_id())
        .token_source(Arc::new(CertificateTokenSource::new(services.tokens.clone(), cert, &Resource::Exchange)))
        .retry_policy(cba_http::RetryPolicy::fast())
        .build()
        .unwrap()
}

/// The administrator's delegated Exchange client, to look and to break links behind the operations' back.
fn admin_exo(tenant: &Tenant) -> ExoClient {
    let token = tenant.sim.exchange_admin_token();
    let upn = cba_token::jwt::decode(&token).unwrap().claim_str("upn").unwrap().to_string();
    ExoClient::builder()
        .base_url(tenant.sim.exchange_url())
        .tenant_id(tenant.sim.tenant_id())
        .token_source(Arc::new(cba_exo::StaticToken::new(token)))
        .anchor_mailbox(format!("UPN:{upn}"))
        .retry_policy(cba_http::RetryPolicy::fast())
        .build()
        .unwrap()
}

fn p(pairs: serde_json::Value) -> Parameters {
    Parameters::from_json(pairs).unwrap()
}

/// The alias of the first seeded mailbox in `department`.
async fn mailbox_in(tenant: &Tenant, department: &str) -> String {
    let users = admin_exo(tenant).collect_all("Get-User", &p(json!({"ResultSize": 8}))).await.unwrap();
    let user = users.iter().find(|u| u["Department"] == department).expect("a seeded mailbox in the department");
    user["Identity"].as_str().unwrap().to_string()
}

fn exception(e: &cba_exo::Error) -> String {
    match e {
        cba_exo::Error::Cmdlet { details, .. } => {
            details.iter().map(|d| d.exception_name().to_string()).collect::<Vec<_>>().join(",")
        }
        other => format!("{other:?}"),
    }
}

/// Exactly one Exchange service principal (the app's), `group` holding it once, and `scopes` custom scopes.
fn assert_exchange_objects(
    state: &cba_sim::StateSnapshot,
    sp_id: &str,
    group: &str,
    custom_groups: usize,
    scopes: usize,
) {
    let t = state.primary();
    assert_eq!(t.exchange_service_principals.len(), 1, "{:#?}", t.exchange_service_principals);
    assert!(t.exchange_service_principals[0].object_id.eq_ignore_ascii_case(sp_id));
    let g = t.role_groups.iter().find(|g| g.name == group).expect("the role group");
    assert_eq!(g.members.iter().filter(|m| m.eq_ignore_ascii_case(sp_id)).count(), 1, "{g:#?}");
    assert_eq!(t.role_groups.iter().filter(|g| !g.built_in).count(), custom_groups, "{:#?}", t.role_groups);
    assert_eq!(t.management_scopes.len(), scopes, "{:#?}", t.management_scopes);
    assert!(t.role_assignments.is_empty(), "no Entra role: {:#?}", t.role_assignments);
}

#[tokio::test]
async fn built_in_group_reads_and_cannot_write() {
    let tenant = start(|b| b).await;
    let store = MemoryStore::new();
    let report = set_up(&tenant, &store, &exchange_request(&tenant, ExchangeRoles::Group(VIEW_ONLY.into())))
        .await
        .expect("setup");
    let x = report.exchange.as_ref().expect("an Exchange report");
    assert_eq!(x.role_group, VIEW_ONLY);
    assert!(!x.role_group_created);
    assert_eq!(x.created, ["service_principal", "membership"]);
    assert_eq!(x.proof_cmdlet.as_deref(), Some("Get-Mailbox"));
    assert!(report.role_assignments.is_empty());
    assert!(report.token_wids.as_ref().is_none_or(Vec::is_empty), "{:?}", report.token_wids);
    let sp = report.service_principal_id.clone().unwrap();
    assert_exchange_objects(&tenant.state().await, &sp, VIEW_ONLY, 0, 0);

    let app = app_exo(&tenant, report.app_id.as_deref().unwrap());
    let mailboxes = app.collect_all("Get-Mailbox", &p(json!({"ResultSize": 2}))).await.expect("a read");
    assert_eq!(mailboxes.len(), 2);
    let target = mailbox_in(&tenant, "Sales").await;
    let write = app.collect_all("Set-Mailbox", &p(json!({"Identity": target, "CustomAttribute1": "x"}))).await;
    assert!(matches!(write, Err(cba_exo::Error::NotAllowed { .. })), "{write:?}");

    let profile = store.load().unwrap().unwrap();
    let recorded = profile.exchange.expect("the profile records the group");
    assert_eq!((recorded.role_group.as_str(), recorded.role_group_created), (VIEW_ONLY, false));
    assert!(recorded.service_principal_created);
    assert!(recorded.service_principal.eq_ignore_ascii_case(&sp));
}

#[tokio::test]
async fn custom_roles_with_a_department_scope_write_only_inside_it_and_rerun_changes_nothing() {
    let tenant = start(|b| b).await;
    let store = MemoryStore::new();
    let req = exchange_request(&tenant, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
    let report = set_up(&tenant, &store, &req).await.expect("setup");
    let x = report.exchange.as_ref().unwrap();
    assert_eq!(x.role_group, "cba-contoso-exo");
    assert!(x.role_group_created);
    assert_eq!(x.created, ["service_principal", "management_scope", "role_group", "membership"]);
    assert_eq!(x.write_scope.as_deref(), Some(SALES));
    let sp = report.service_principal_id.clone().unwrap();
    let before = tenant.state().await;
    assert_exchange_objects(&before, &sp, "cba-contoso-exo", 1, 1);
    let group = before.primary().role_groups.iter().find(|g| g.name == "cba-contoso-exo").unwrap().clone();
    assert_eq!(group.write_scope.as_deref(), Some("cba-contoso-exo"));

    let app = app_exo(&tenant, report.app_id.as_deref().unwrap());
    let sales = mailbox_in(&tenant, "Sales").await;
    let finance = mailbox_in(&tenant, "Finance").await;
    app.collect_all("Set-Mailbox", &p(json!({"Identity": sales, "CustomAttribute1": "in scope"})))
        .await
        .expect("a write inside the scope");
    let refused = app
        .collect_all("Set-Mailbox", &p(json!({"Identity": finance, "CustomAttribute1": "out of scope"})))
        .await
        .unwrap_err();
    assert_eq!(exception(&refused), "RecipientOutOfWriteScopeException", "{refused:?}");

    // Rerun: every object found, nothing made.
    let rerun = cba_lifecycle::SetupRequest { new_certificate: false, ..req.clone() };
    let again = set_up(&tenant, &store, &rerun).await.expect("rerun");
    assert!(!again.changed);
    let x = again.exchange.as_ref().unwrap();
    assert!(x.created.is_empty(), "{:?}", x.created);
    assert_eq!(x.unchanged, ["service_principal", "management_scope", "role_group", "membership"]);
    let after = tenant.state().await;
    assert_eq!(after.primary().exchange_service_principals, before.primary().exchange_service_principals);
    assert_eq!(after.primary().role_groups, before.primary().role_groups);
    assert_eq!(after.primary().management_scopes, before.primary().management_scopes);
    let recorded = store.load().unwrap().unwrap().exchange.unwrap();
    assert!(recorded.role_group_created && recorded.scope_created, "a rerun keeps what cba made: {recorded:?}");

    // Another filter for the same scope is refused, not silently changed.
    let other = exchange_request(
        &tenant,
        custom(&["Mail Recipients", "View-Only Recipients"], Some("Department -eq 'Finance'")),
    );
    let e = set_up(&tenant, &store, &other).await.unwrap_err();
    assert!(matches!(e, Error::ExchangeObject { .. }), "{e:?}");
    assert!(e.to_string().contains("Department -eq 'Sales'"), "{e}");
}

#[tokio::test]
async fn an_entra_role_with_a_role_group_is_refused_unless_kept() {
    let tenant = start(|b| b).await;
    let store = MemoryStore::new();
    let mut req = exchange_request(&tenant, ExchangeRoles::Group(VIEW_ONLY.into()));
    req.roles = vec![cba_graph::wellknown::EXCHANGE_ADMINISTRATOR];
    let e = set_up(&tenant, &store, &req).await.unwrap_err();
    assert!(matches!(e, Error::Invalid { what: "roles", .. }), "{e:?}");
    assert!(store.load().unwrap().is_none(), "nothing written");
    assert!(tenant.state().await.primary().applications.is_empty());

    req.exchange.as_mut().unwrap().keep_entra_role = true;
    let report = set_up(&tenant, &store, &req).await.expect("both, on purpose");
    assert_eq!(report.role_assignments.len(), 1);
    assert_eq!(report.exchange.unwrap().role_group, VIEW_ONLY);

    let missing = exchange_request(&tenant, ExchangeRoles::Group("No Such Group".into()));
    let e = set_up(&tenant, &MemoryStore::new(), &missing).await.unwrap_err();
    assert!(matches!(&e, Error::ExchangeObject { object, .. } if object.contains("No Such Group")), "{e:?}");
    let unknown = exchange_request(&tenant, custom(&["No Such Role"], None));
    let e = set_up(&tenant, &MemoryStore::new(), &unknown).await.unwrap_err();
    assert!(e.to_string().contains("No Such Role") || format!("{e:?}").contains("No Such Role"), "{e:?}");
}

#[tokio::test]
async fn writes_whose_outcome_is_unknown_are_looked_up_not_resent() {
    // The first n Exchange writes are carried out and then answered 500: each is looked up before anything
    // is sent again, so no step makes a duplicate.
    for n in 1..=4 {
        let tenant = start(|b| b.exchange_fail_after_execute(n)).await;
        let store = MemoryStore::new();
        let req = exchange_request(&tenant, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
        let recorder = Arc::new(Recorder::default());
        let services = tenant.services(recorder.clone());
        let report = cba_lifecycle::setup(&services, &store, &tenant.admin(), &req)
            .await
            .unwrap_or_else(|e| panic!("n={n}: {e:?}"));
        let looked = recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Detail(d) if d.contains("outcome unknown; looking")))
            .count();
        assert_eq!(looked, n as usize, "each unknown outcome was looked up (n={n})");
        let sp = report.service_principal_id.clone().unwrap();
        assert_exchange_objects(&tenant.state().await, &sp, "cba-contoso-exo", 1, 1);
        let x = report.exchange.unwrap();
        assert_eq!(x.created.len(), 4, "n={n}: {:?}", x.created);
    }
}

#[tokio::test]
async fn killed_at_each_exchange_step_a_rerun_converges() {
    let identity = shared_identity();
    // The steps of a whole run, to kill at each one from the Exchange sign-in on.
    let probe = start(|b| b).await;
    let recorder = Arc::new(Recorder::default());
    let services = probe.services(recorder.clone());
    let req = exchange_request(&probe, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
    cba_lifecycle::setup(&services, &MemoryStore::new(), &probe.admin(), &req).await.expect("setup");
    let events = recorder.events.lock().unwrap().clone();
    let steps: Vec<&Event> = events.iter().filter(|e| !matches!(e, Event::Wait { .. })).collect();
    let first = steps
        .iter()
        .position(|e| matches!(e, Event::Stage(s) if s.contains("Exchange Online")))
        .expect("the Exchange sign-in stage")
        + 1;
    for kill_at in first..=steps.len() {
        let tenant = Arc::new(start(|b| b).await);
        let store = Arc::new(MemoryStore::new());
        let services = tenant.services(Arc::new(Recorder::killer(kill_at)));
        let run = {
            let (t, s) = (tenant.clone(), store.clone());
            tokio::spawn(async move {
                let req = exchange_request(&t, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
                cba_lifecycle::setup(&services, s.as_ref(), &t.admin(), &req).await.map(|_| ())
            })
        };
        let died = run.await.is_err();
        assert!(died || kill_at == steps.len(), "run {kill_at} was not killed");
        let req = exchange_request(&tenant, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
        let report =
            set_up(&tenant, &store, &req).await.unwrap_or_else(|e| panic!("rerun after kill {kill_at}: {e:?}"));
        let sp = report.service_principal_id.clone().unwrap();
        assert_exchange_objects(&tenant.state().await, &sp, "cba-contoso-exo", 1, 1);
        let recorded = store.load().unwrap().unwrap().exchange.unwrap();
        assert!(
            recorded.role_group_created && recorded.scope_created && recorded.service_principal_created,
            "kill at {kill_at}: what cba made stays recorded as made by cba: {recorded:?}"
        );
        let _ = &identity;
    }
}

#[tokio::test]
async fn status_catches_a_removed_membership() {
    let tenant = start(|b| b).await;
    let store = MemoryStore::new();
    let req = exchange_request(&tenant, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
    let report = set_up(&tenant, &store, &req).await.expect("setup");
    let profile = store.load().unwrap().unwrap();
    let recorded = profile.exchange.clone().unwrap();
    let services = tenant.services(Arc::new(Recorder::default()));
    let credential: cba_lifecycle::Credential = shared_identity().into();
    let run = |admin: Option<ExchangeAdminCredential>| {
        let (services, credential, profile, recorded) =
            (services.clone(), credential.clone(), profile.clone(), recorded.clone());
        async move {
            exchange_roles::status_checks(
                &services,
                admin.as_ref(),
                Some(&credential),
                &profile.tenant_id,
                &profile.app_id,
                &recorded,
            )
            .await
            .expect("status")
        }
    };
    let verdicts = |checks: &[cba_lifecycle::status::Check]| checks.iter().map(|c| (c.check, c.ok)).collect::<Vec<_>>();
    let checks = run(Some(admin(&tenant))).await;
    assert_eq!(
        verdicts(&checks),
        [
            ("exchange_service_principal", Some(true)),
            ("exchange_membership", Some(true)),
            ("exchange_roles", Some(true)),
            ("exchange_scope", Some(true)),
            ("exchange_access", Some(true)),
        ],
        "{checks:#?}"
    );
    // Without the admin the app reads RBAC with its own token, which has no Role Management: unconfirmed.
    let checks = run(None).await;
    assert_eq!(checks.iter().find(|c| c.check == "exchange_membership").unwrap().ok, None, "{checks:#?}");
    assert_eq!(checks.iter().find(|c| c.check == "exchange_access").unwrap().ok, Some(true));

    let sp = report.service_principal_id.unwrap();
    admin_exo(&tenant)
        .collect_all(
            "Remove-RoleGroupMember",
            &p(json!({"Identity": "cba-contoso-exo", "Member": sp, "Confirm": false})),
        )
        .await
        .expect("removed behind cba's back");
    let checks = run(Some(admin(&tenant))).await;
    let failed: Vec<_> = checks.iter().filter(|c| c.ok == Some(false)).map(|c| c.check).collect();
    assert_eq!(failed, ["exchange_membership", "exchange_access"], "{checks:#?}");
    assert!(checks.iter().all(|c| c.ok == Some(true) || c.remedy.is_some()));
    // A rerun of setup repairs it.
    let again = set_up(&tenant, &store, &req).await.expect("rerun");
    assert_eq!(again.exchange.unwrap().created, ["membership"]);
}

#[tokio::test]
async fn teardown_removes_what_cba_made_and_leaves_built_in_groups() {
    let tenant = start(|b| b).await;
    let before = tenant.state().await;
    let store = MemoryStore::new();
    let req = exchange_request(&tenant, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
    set_up(&tenant, &store, &req).await.expect("setup");
    let profile = store.load().unwrap().unwrap();
    let services = tenant.services(Arc::new(Recorder::default()));
    let x = exchange_roles::teardown_profile(&services, &admin(&tenant), &profile).await.expect("teardown").unwrap();
    assert_eq!(
        x.removed,
        ["exchange_membership", "exchange_role_group", "exchange_scope", "exchange_service_principal"]
    );
    cba_lifecycle::teardown(&services, &tenant.admin(), &cba_lifecycle::TeardownRequest::for_profile(&profile))
        .await
        .expect("Graph teardown");
    let after = tenant.state().await;
    let (a, b) = (after.primary(), before.primary());
    assert!(a.exchange_service_principals.is_empty());
    assert_eq!(a.role_groups, b.role_groups, "only the built-in groups, as they were");
    assert!(a.management_scopes.is_empty());
    assert!(a.applications.is_empty());
    // Rerun: all gone already.
    let x = exchange_roles::teardown_profile(&services, &admin(&tenant), &profile).await.expect("rerun").unwrap();
    assert!(x.removed.is_empty(), "{x:?}");

    // A built-in group loses the member and stays.
    let tenant = start(|b| b).await;
    let before = tenant.state().await;
    let store = MemoryStore::new();
    set_up(&tenant, &store, &exchange_request(&tenant, ExchangeRoles::Group(VIEW_ONLY.into()))).await.unwrap();
    let profile = store.load().unwrap().unwrap();
    let x = exchange_roles::teardown_profile(&services_of(&tenant), &admin(&tenant), &profile).await.unwrap().unwrap();
    assert_eq!(x.removed, ["exchange_membership", "exchange_service_principal"]);
    let after = tenant.state().await;
    assert_eq!(after.primary().role_groups, before.primary().role_groups);
    assert!(after.primary().exchange_service_principals.is_empty());
}

fn services_of(tenant: &Tenant) -> cba_lifecycle::Services {
    tenant.services(Arc::new(Recorder::default()))
}

#[tokio::test]
async fn propagation_delay_is_waited_out_within_the_deadline() {
    let delay = Duration::from_secs(90);
    let tenant = start(|b| b.exchange_rbac_delay(delay)).await;
    let recorder = Arc::new(Recorder::default());
    let services = tenant.services(recorder.clone());
    let req = exchange_request(&tenant, ExchangeRoles::Group(VIEW_ONLY.into()));
    let report = cba_lifecycle::setup(&services, &MemoryStore::new(), &tenant.admin(), &req).await.expect("setup");
    let x = report.exchange.unwrap();
    assert!(x.rbac_wait_ms >= 90_000, "{}", x.rbac_wait_ms);
    let waits = recorder
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Wait { reason, .. } if reason.contains("RBAC")))
        .count();
    assert!(waits > 0, "the wait is shown");

    // A deadline shorter than the delay: the membership is in place, the proof says it has not applied yet.
    let tenant = start(|b| b.exchange_rbac_delay(Duration::from_secs(3600))).await;
    let mut req = exchange_request(&tenant, ExchangeRoles::Group(VIEW_ONLY.into()));
    req.wait = Duration::from_secs(120);
    let e = set_up(&tenant, &MemoryStore::new(), &req).await.unwrap_err();
    assert!(matches!(e, Error::ExchangeNotEffective { .. }), "{e:?}");
}

#[tokio::test]
async fn a_dehydrated_tenant_is_customized_only_when_asked() {
    let tenant = start(|b| b.dehydrated(true).enable_customization_delay(Duration::from_secs(30))).await;
    let store = MemoryStore::new();
    let mut req = exchange_request(&tenant, custom(&["View-Only Recipients"], None));
    let e = set_up(&tenant, &store, &req).await.unwrap_err();
    assert!(matches!(e, Error::ExchangeCustomizationNeeded { .. }), "{e:?}");
    assert!(store.load().unwrap().unwrap().incomplete, "setup did not finish");
    assert_eq!(tenant.state().await.primary().role_groups.iter().filter(|g| !g.built_in).count(), 0);

    req.exchange.as_mut().unwrap().enable_customization = true;
    let report = set_up(&tenant, &store, &req).await.expect("setup with --yes");
    let x = report.exchange.unwrap();
    assert!(x.customization_enabled);
    assert!(x.created.contains(&"role_group".to_string()), "{:?}", x.created);
    assert!(!store.load().unwrap().unwrap().incomplete);
}

#[tokio::test]
async fn another_group_on_a_rerun_leaves_the_old_one_and_a_changed_scope_is_refused() {
    let tenant = start(|b| b).await;
    let store = MemoryStore::new();
    let custom_req = exchange_request(&tenant, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
    let first = set_up(&tenant, &store, &custom_req).await.expect("setup");
    let sp = first.service_principal_id.clone().unwrap();

    // Without the scope now: the group cba made keeps its scope, so it is refused before anything changes.
    let before = tenant.state().await;
    let unscoped = exchange_request(&tenant, custom(&["Mail Recipients", "View-Only Recipients"], None));
    let e = set_up(&tenant, &store, &unscoped).await.unwrap_err();
    assert!(matches!(&e, Error::ExchangeObject { problem, .. } if problem.contains("write scope")), "{e:?}");
    let after = tenant.state().await;
    assert_eq!(after.primary().role_groups, before.primary().role_groups);
    assert_eq!(after.primary().management_scopes, before.primary().management_scopes);

    // A built-in group instead: the app leaves the custom group, which cba made and removes with its scope.
    let report = set_up(&tenant, &store, &exchange_request(&tenant, ExchangeRoles::Group(VIEW_ONLY.into())))
        .await
        .expect("the switch");
    let x = report.exchange.unwrap();
    assert_eq!(x.removed, ["membership", "role_group", "management_scope"]);
    assert!(report.changed);
    assert_exchange_objects(&tenant.state().await, &sp, VIEW_ONLY, 0, 0);
    let recorded = store.load().unwrap().unwrap().exchange.unwrap();
    assert_eq!((recorded.role_group.as_str(), recorded.role_group_created), (VIEW_ONLY, false));
    assert_eq!((recorded.scope, recorded.scope_created), (None, false));
    assert!(recorded.service_principal_created, "the service principal is still cba's");
    // The app no longer writes anywhere.
    let app = app_exo(&tenant, report.app_id.as_deref().unwrap());
    let sales = mailbox_in(&tenant, "Sales").await;
    let write = app.collect_all("Set-Mailbox", &p(json!({"Identity": sales, "CustomAttribute1": "x"}))).await;
    assert!(matches!(write, Err(cba_exo::Error::NotAllowed { .. })), "{write:?}");
}

#[tokio::test]
async fn a_provisioning_app_runs_the_exchange_steps_with_its_own_token() {
    let tenant = start(|b| b).await;
    let provisioner = cba_cert::generate(&cba_cert::NewCertificate::new("provisioner")).unwrap();
    let seeded = tenant.sim.seed_app("provisioner", &[provisioner.certificate.der()]).await;
    tenant.sim.seed_grant_manage_as_app(&seeded).await;
    let credential = ExchangeAdminCredential::Certificate {
        identity: Box::new(provisioner.clone()),
        client_id: seeded.app_id.clone(),
    };
    let mut req = exchange_request(&tenant, ExchangeRoles::Group(VIEW_ONLY.into()));
    req.exchange.as_mut().unwrap().admin = credential.clone();

    // Without an Exchange role it may not run the RBAC cmdlets: refused, naming the cmdlet and who ran it.
    let e = set_up(&tenant, &MemoryStore::new(), &req).await.unwrap_err();
    match &e {
        Error::Exchange { doing, source } => {
            assert!(source.is_permission(), "{source:?}");
            assert!(doing.contains(&seeded.app_id), "{doing}");
        }
        other => panic!("{other:?}"),
    }
    // Exchange Administrator (Organization Management, so Role Management): it does.
    tenant.sim.seed_role_assignment(&seeded, cba_graph::wellknown::EXCHANGE_ADMINISTRATOR.template_id).await;
    tenant.sim.advance_clock(Duration::from_secs(3600));
    let report = set_up(&tenant, &MemoryStore::new(), &req).await.expect("setup by the provisioning app");
    assert_eq!(report.exchange.unwrap().role_group, VIEW_ONLY);
    let state = tenant.state().await;
    let t = state.primary();
    assert_eq!(t.exchange_service_principals.len(), 1, "only the new app's: {:#?}", t.exchange_service_principals);
    assert_eq!(t.role_assignments.len(), 1, "only the provisioner's Entra role");
    let group = t.role_groups.iter().find(|g| g.name == VIEW_ONLY).unwrap();
    assert_eq!(group.members.len(), 1, "{group:#?}");
}

#[tokio::test]
async fn a_dry_run_plans_the_exchange_steps_and_writes_nothing() {
    let tenant = start(|b| b).await;
    let before = tenant.state().await;
    let mut req = exchange_request(&tenant, custom(&["Mail Recipients", "View-Only Recipients"], Some(SALES)));
    req.dry_run = true;
    let store = MemoryStore::new();
    let report = set_up(&tenant, &store, &req).await.expect("dry run");
    let x = report.exchange.expect("the Exchange plan");
    assert_eq!(x.created, ["service_principal", "management_scope", "role_group", "membership"]);
    assert!(report.changed);
    assert_eq!(tenant.state().await, before, "nothing written");
    assert!(store.load().unwrap().is_none());

    req.dry_run = false;
    set_up(&tenant, &store, &req).await.expect("setup");
    req.dry_run = true;
    let report = set_up(&tenant, &store, &req).await.expect("dry run after setup");
    let x = report.exchange.unwrap();
    assert!(x.created.is_empty(), "{:?}", x.created);
    assert_eq!(x.unchanged, ["service_principal", "management_scope", "role_group", "membership"]);

    // A group that does not exist is refused by the plan as by a real run.
    let mut missing = exchange_request(&tenant, ExchangeRoles::Group("No Such Group".into()));
    missing.dry_run = true;
    let e = set_up(&tenant, &MemoryStore::new(), &missing).await.unwrap_err();
    assert!(matches!(e, Error::ExchangeObject { .. }), "{e:?}");
}
