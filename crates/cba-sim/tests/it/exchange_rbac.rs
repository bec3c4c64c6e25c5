//! Exchange RBAC over InvokeCommand: service principals, role groups, scopes, membership, who may call what
//! (docs/wire-formats.md §10 and its "Exchange RBAC" section).

use std::time::Duration;

use cba_sim::{SeededApp, SimTenant};
use serde_json::{Value, json};

use crate::common::*;

/// An InvokeCommand caller: the admin's delegated token (anchor UPN:) or an app's (anchor APP:).
struct Exo {
    url: String,
    token: String,
    anchor: String,
}

impl Exo {
    fn admin(sim: &SimTenant) -> Exo {
        Exo {
            url: format!("{}/adminapi/beta/{}/InvokeCommand", sim.exchange_url(), sim.tenant_id()),
            token: sim.exchange_admin_token(),
            anchor: format!("UPN:admin@{}", sim.tenant_domain()),
        }
    }

    fn app(sim: &SimTenant, app: &SeededApp) -> Exo {
        Exo {
            url: format!("{}/adminapi/beta/{}/InvokeCommand", sim.exchange_url(), sim.tenant_id()),
            token: sim.app_token(app, "https://outlook.office365.com"),
            anchor: format!("APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{}", sim.tenant_id()),
        }
    }

    async fn call(&self, name: &str, parameters: Value) -> (u16, Value) {
        let body = json!({"CmdletInput": {"CmdletName": name, "Parameters": parameters}});
        let response = client()
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("X-AnchorMailbox", &self.anchor)
            .header("X-CmdletName", name)
            .json(&body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    /// Call and expect success: the rows of a 200, `Null` for a 204.
    async fn ok(&self, name: &str, parameters: Value) -> Value {
        let (status, body) = self.call(name, parameters.clone()).await;
        assert!(status == 200 || status == 204, "{name} {parameters}: {status} {body}");
        if status == 200 { body["value"].clone() } else { Value::Null }
    }
}

/// The exception type and text of a cmdlet error (`details[0].message` = `Ex…|type|text`).
fn detail(body: &Value) -> (String, String) {
    assert_eq!(body["error"]["message"], "Error executing cmdlet", "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "Context", "{body}");
    let message = body["error"]["details"][0]["message"].as_str().unwrap_or_else(|| panic!("no detail: {body}"));
    let mut parts = message.splitn(3, '|');
    let id = parts.next().unwrap();
    assert!(id.len() == 8 && id.starts_with("Ex"), "{message}");
    (parts.next().unwrap().to_string(), parts.next().unwrap().to_string())
}

fn assert_cmdlet_error(status: u16, body: &Value, want_status: u16, exception: &str, text: &str) {
    assert_eq!(status, want_status, "{body}");
    let (kind, message) = detail(body);
    assert!(kind.ends_with(exception), "{kind} is not {exception}: {body}");
    assert!(message.contains(text), "{message:?} lacks {text:?}");
}

fn assert_not_allowed(status: u16, body: &Value, cmdlet: &str) {
    assert_eq!(status, 401, "{cmdlet}: {body}");
    assert_eq!(body["error"]["code"], "Unauthorized", "{body}");
    assert_eq!(body["error"]["message"], format!("User is not allowed to call {cmdlet}"), "{body}");
}

/// An app with Exchange.ManageAsApp and no Entra role.
async fn bare_app(sim: &SimTenant, name: &str) -> SeededApp {
    let app = sim.seed_app(name, &[der(cert(0))]).await;
    sim.seed_grant_manage_as_app(&app).await;
    app
}

/// New-ServicePrincipal for the app, then Add-RoleGroupMember to `group`.
async fn add_to_group(admin: &Exo, app: &SeededApp, group: &str) {
    let sp = admin
        .ok(
            "New-ServicePrincipal",
            json!({"AppId": app.app_id, "ObjectId": app.service_principal_id, "DisplayName": "rbac-app"}),
        )
        .await;
    assert_eq!(sp[0]["ObjectId"], app.service_principal_id.as_str());
    admin.ok("Add-RoleGroupMember", json!({"Identity": group, "Member": app.service_principal_id})).await;
}

/// A custom group "cba-scoped" with Mail Recipients + View-Only Recipients and a Sales write scope.
async fn scoped_group(admin: &Exo) {
    admin
        .ok("New-ManagementScope", json!({"Name": "cba-sales", "RecipientRestrictionFilter": "Department -eq 'Sales'"}))
        .await;
    let group = admin
        .ok(
            "New-RoleGroup",
            json!({"Name": "cba-scoped", "Roles": ["Mail Recipients", "View-Only Recipients"], "CustomRecipientWriteScope": "cba-sales"}),
        )
        .await;
    assert_eq!(group[0]["Roles"], json!(["Mail Recipients", "View-Only Recipients"]));
}

#[tokio::test]
async fn the_admins_exchange_token_is_organization_management() {
    let sim = SimTenant::builder().start().await;
    let token = sim.exchange_admin_token();
    let claims = claims(&token);
    assert_eq!(claims["aud"], "https://outlook.office365.com");
    assert_eq!(claims["upn"], format!("admin@{}", sim.tenant_domain()));
    assert!(claims["scp"].as_str().unwrap().contains("AdminApi.AccessAsUser.All"), "{claims}");
    assert!(claims.get("roles").is_none(), "{claims}");
    assert_eq!(sim.connection_info().exchange_admin_token.split('.').count(), 3, "a JWT");

    let admin = Exo::admin(&sim);
    admin.ok("Get-Mailbox", json!({"Identity": "user00001"})).await;
    admin.ok("Set-Mailbox", json!({"Identity": "user00001", "CustomAttribute1": "x"})).await;
    let groups = admin.ok("Get-RoleGroup", json!({})).await;
    let names: Vec<&str> = groups.as_array().unwrap().iter().map(|g| g["Name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Organization Management", "Recipient Management", "View-Only Organization Management", "Help Desk"]
    );
    assert_eq!(admin.ok("Get-ServicePrincipal", json!({})).await, json!([]));

    // The delegated token needs its own UPN as anchor, and a scope.
    let wrong = Exo { anchor: format!("UPN:user00001@{}", sim.tenant_domain()), ..Exo::admin(&sim) };
    let (status, _) = wrong.call("Get-RoleGroup", json!({})).await;
    assert_eq!(status, 400);
    let (status, _) = Exo { token: sim.admin_token(), ..Exo::admin(&sim) }.call("Get-RoleGroup", json!({})).await;
    assert_eq!(status, 401, "a Graph token is not an Exchange token");
    let other = SimTenant::builder().tenant("fabrikam").start().await;
    assert!(other.exchange_admin_token_for("fabrikam").is_some());
    assert!(other.exchange_admin_token_for("nowhere").is_none());
}

#[tokio::test]
async fn service_principals_role_groups_and_duplicates() {
    let sim = SimTenant::builder().start().await;
    let admin = Exo::admin(&sim);
    let app = bare_app(&sim, "rbac-app").await;
    let new_sp = json!({"AppId": app.app_id, "ObjectId": app.service_principal_id});
    let created = admin.ok("New-ServicePrincipal", new_sp.clone()).await;
    assert_eq!(created[0]["AppId"], app.app_id.as_str());
    assert_eq!(created[0]["DisplayName"], "rbac-app", "defaults to the Entra display name");
    assert_eq!(created[0]["Identity"], app.service_principal_id.as_str());
    let (status, body) = admin.call("New-ServicePrincipal", new_sp).await;
    assert_cmdlet_error(status, &body, 400, ".ADObjectAlreadyExistsException", "already exists");
    for identity in [&app.app_id, &app.service_principal_id, &"RBAC-APP".to_string()] {
        let found = admin.ok("Get-ServicePrincipal", json!({"Identity": identity})).await;
        assert_eq!(found[0]["ObjectId"], app.service_principal_id.as_str(), "{identity}");
    }
    let (status, body) =
        admin.call("Get-ServicePrincipal", json!({"Identity": uuid::Uuid::new_v4().to_string()})).await;
    assert_cmdlet_error(status, &body, 404, ".ManagementObjectNotFoundException", "couldn't be found");

    scoped_group(&admin).await;
    let (status, body) = admin.call("New-RoleGroup", json!({"Name": "CBA-SCOPED", "Roles": "Mail Recipients"})).await;
    assert_cmdlet_error(
        status,
        &body,
        400,
        ".ADObjectAlreadyExistsException",
        "The role group 'CBA-SCOPED' already exists.",
    );
    let (status, body) = admin
        .call("New-ManagementScope", json!({"Name": "cba-sales", "RecipientRestrictionFilter": "Department -eq 'x'"}))
        .await;
    assert_cmdlet_error(
        status,
        &body,
        400,
        ".ADObjectAlreadyExistsException",
        "The management scope 'cba-sales' already exists.",
    );

    let add = json!({"Identity": "cba-scoped", "Member": app.app_id});
    admin.ok("Add-RoleGroupMember", add.clone()).await;
    let (status, body) = admin.call("Add-RoleGroupMember", add).await;
    assert_cmdlet_error(
        status,
        &body,
        400,
        ".MemberAlreadyExistsException",
        "is already a member of the group \"cba-scoped\"",
    );
    let members = admin.ok("Get-RoleGroupMember", json!({"Identity": "cba-scoped"})).await;
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    assert_eq!(members[0]["ExternalDirectoryObjectId"], app.service_principal_id.as_str());
    assert_eq!(members[0]["RecipientTypeDetails"], "ServicePrincipal");
    let group = admin.ok("Get-RoleGroup", json!({"Identity": "cba-scoped"})).await;
    assert_eq!(group[0]["Members"], json!([app.service_principal_id]));
    assert_eq!(group[0]["RoleGroupType"], "Standard");

    let assignments = admin.ok("Get-ManagementRoleAssignment", json!({"RoleAssignee": app.service_principal_id})).await;
    let rows = assignments.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{assignments}");
    for row in rows {
        assert_eq!(row["RoleAssignee"], "cba-scoped");
        assert_eq!(row["CustomRecipientWriteScope"], "cba-sales");
        assert_eq!(row["RecipientWriteScope"], "CustomRecipientScope");
    }
    let org =
        admin.ok("Get-ManagementRoleAssignment", json!({"RoleAssignee": "View-Only Organization Management"})).await;
    assert!(org.as_array().unwrap().iter().all(|r| r["RecipientWriteScope"] == "Organization"), "{org}");

    let state = sim.state().await;
    let tenant = state.primary();
    assert_eq!(tenant.exchange_service_principals.len(), 1);
    assert_eq!(tenant.management_scopes.len(), 1);
    let custom: Vec<_> = tenant.role_groups.iter().filter(|g| !g.built_in).collect();
    assert_eq!(custom.len(), 1);
    assert_eq!(custom[0].members, vec![app.service_principal_id.clone()]);
    assert_eq!(custom[0].write_scope.as_deref(), Some("cba-sales"));
}

#[tokio::test]
async fn a_built_in_group_gives_read_not_write() {
    let sim = SimTenant::builder().start().await;
    let app = bare_app(&sim, "reader").await;
    let exo = Exo::app(&sim, &app);
    let (status, body) = exo.call("Get-Mailbox", json!({})).await;
    assert_not_allowed(status, &body, "Get-Mailbox");

    add_to_group(&Exo::admin(&sim), &app, "View-Only Organization Management").await;
    assert_eq!(exo.ok("Get-Mailbox", json!({})).await.as_array().unwrap().len(), 5);
    exo.ok("Get-User", json!({"Identity": "user00001"})).await;
    exo.ok("Get-OrganizationConfig", json!({})).await;
    let (status, body) = exo.call("Set-Mailbox", json!({"Identity": "user00001", "CustomAttribute1": "x"})).await;
    assert_not_allowed(status, &body, "Set-Mailbox");
    let (status, body) = exo.call("Get-RoleGroup", json!({})).await;
    assert_not_allowed(status, &body, "Get-RoleGroup");
    let token = token_for(&sim, &app, cert(0), EXO_SCOPE).await;
    assert!(claims(&token).get("wids").is_none(), "no Entra role: {}", claims(&token));
}

#[tokio::test]
async fn a_department_write_scope_limits_set_mailbox() {
    let sim = SimTenant::builder().mailboxes(8).start().await;
    let admin = Exo::admin(&sim);
    let app = bare_app(&sim, "scoped").await;
    scoped_group(&admin).await;
    add_to_group(&admin, &app, "cba-scoped").await;
    let exo = Exo::app(&sim, &app);

    // user00004: 4 % 4 → Sales; user00001: Marketing.
    let sales = exo.ok("Get-User", json!({"Identity": "user00004"})).await;
    assert_eq!(sales[0]["Department"], "Sales");
    let (status, _) = exo.call("Set-Mailbox", json!({"Identity": "user00004", "CustomAttribute2": "in"})).await;
    assert_eq!(status, 204);
    let (status, body) = exo.call("Set-Mailbox", json!({"Identity": "user00001", "CustomAttribute2": "out"})).await;
    assert_cmdlet_error(
        status,
        &body,
        400,
        ".RecipientOutOfWriteScopeException",
        "The user \"user00001\" is outside of your current write scope. The action can't be performed.",
    );
    assert_eq!(body["error"]["code"], "BadRequest");
    // Reads cover the whole organization; the refused write changed nothing.
    let all = exo.ok("Get-Mailbox", json!({})).await;
    assert_eq!(all.as_array().unwrap().len(), 8);
    assert_eq!(all[4]["CustomAttribute2"], "in");
    assert!(all[1].get("CustomAttribute2").is_none(), "{}", all[1]);
    let (status, body) = exo.call("Get-OrganizationConfig", json!({})).await;
    assert_not_allowed(status, &body, "Get-OrganizationConfig");

    // An organization-wide grant beside the scoped one lifts the limit.
    admin.ok("Add-RoleGroupMember", json!({"Identity": "Recipient Management", "Member": app.app_id})).await;
    let (status, _) = exo.call("Set-Mailbox", json!({"Identity": "user00001", "CustomAttribute2": "now"})).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn membership_changes_reach_the_app_after_the_rbac_delay() {
    let delay = Duration::from_secs(30 * 60);
    let sim = SimTenant::builder().exchange_rbac_delay(delay).start().await;
    let admin = Exo::admin(&sim);
    let app = bare_app(&sim, "patient").await;
    add_to_group(&admin, &app, "View-Only Organization Management").await;
    let members = admin.ok("Get-RoleGroupMember", json!({"Identity": "View-Only Organization Management"})).await;
    assert_eq!(members.as_array().unwrap().len(), 1, "RBAC reads show the change at once");

    let exo = Exo::app(&sim, &app);
    let (status, body) = exo.call("Get-Mailbox", json!({})).await;
    assert_not_allowed(status, &body, "Get-Mailbox");
    sim.advance_clock(delay - Duration::from_secs(1));
    let (status, _) = exo.call("Get-Mailbox", json!({})).await;
    assert_eq!(status, 401, "one second early");
    sim.advance_clock(Duration::from_secs(1));
    let exo = Exo::app(&sim, &app);
    exo.ok("Get-Mailbox", json!({})).await;

    admin
        .ok(
            "Remove-RoleGroupMember",
            json!({"Identity": "View-Only Organization Management", "Member": app.service_principal_id, "Confirm": false}),
        )
        .await;
    assert_eq!(
        admin.ok("Get-RoleGroupMember", json!({"Identity": "View-Only Organization Management"})).await,
        json!([])
    );
    exo.ok("Get-Mailbox", json!({})).await;
    sim.advance_clock(delay);
    let exo = Exo::app(&sim, &app);
    let (status, body) = exo.call("Get-Mailbox", json!({})).await;
    assert_not_allowed(status, &body, "Get-Mailbox");
}

#[tokio::test]
async fn a_dehydrated_tenant_needs_enable_organization_customization() {
    let delay = Duration::from_secs(600);
    let sim = SimTenant::builder().dehydrated(true).enable_customization_delay(delay).start().await;
    let admin = Exo::admin(&sim);
    assert_eq!(admin.ok("Get-OrganizationConfig", json!({})).await[0]["IsDehydrated"], true);
    assert!(sim.state().await.primary().exchange_dehydrated);
    let new_group = json!({"Name": "cba-app", "Roles": "Mail Recipients,View-Only Recipients"});
    let (status, body) = admin.call("New-RoleGroup", new_group.clone()).await;
    assert_cmdlet_error(
        status,
        &body,
        400,
        ".InvalidOperationInDehydratedContextException",
        "Please run Enable-OrganizationCustomization before running this operation.",
    );
    // Built-in groups take members in a dehydrated tenant.
    let app = bare_app(&sim, "dry").await;
    add_to_group(&admin, &app, "View-Only Organization Management").await;

    let (status, _) = admin.call("Enable-OrganizationCustomization", json!({})).await;
    assert_eq!(status, 204);
    let (status, body) = admin.call("Enable-OrganizationCustomization", json!({})).await;
    assert_cmdlet_error(status, &body, 400, "Exception", "This operation is not required.");
    let (status, _) = admin.call("New-RoleGroup", new_group.clone()).await;
    assert_eq!(status, 400, "still completing");
    sim.advance_clock(delay);
    let group = admin.ok("New-RoleGroup", new_group).await;
    assert_eq!(group[0]["Roles"], json!(["Mail Recipients", "View-Only Recipients"]));
    assert_eq!(admin.ok("Get-OrganizationConfig", json!({})).await[0]["IsDehydrated"], false);
    assert!(!sim.state().await.primary().exchange_dehydrated);
    let (status, body) = admin.call("Enable-OrganizationCustomization", json!({})).await;
    assert_cmdlet_error(status, &body, 400, "Exception", "Organization is already enabled for customization.");
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let sim = SimTenant::builder().start().await;
    let admin = Exo::admin(&sim);
    let app = bare_app(&sim, "strict").await;

    let (status, body) =
        admin.call("New-RoleGroup", json!({"Name": "g", "Roles": ["Mail Recipients", "Launch Missiles"]})).await;
    assert_cmdlet_error(
        status,
        &body,
        400,
        ".ManagementObjectNotFoundException",
        "object 'Launch Missiles' couldn't be found",
    );
    let (status, body) = admin.call("New-RoleGroup", json!({"Name": "g", "CustomRecipientWriteScope": "nope"})).await;
    assert_cmdlet_error(status, &body, 404, ".ManagementObjectNotFoundException", "'nope'");
    let (status, body) = admin.call("New-RoleGroup", json!({"Name": "x".repeat(65)})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        admin.call("New-ManagementScope", json!({"Name": "s", "RecipientRestrictionFilter": "Title -eq 'x'"})).await;
    assert_cmdlet_error(status, &body, 400, ".InvalidFilterException", "Invalid filter syntax:");
    let (status, body) = admin.call("New-ManagementScope", json!({"Name": "s"})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("missing mandatory parameters: RecipientRestrictionFilter")
    );
    let (status, body) = admin.call("New-ServicePrincipal", json!({"AppId": app.app_id})).await;
    assert!(status == 400 && body.to_string().contains("ObjectId"), "{body}");
    let (status, body) =
        admin.call("New-ServicePrincipal", json!({"AppId": "not-a-guid", "ObjectId": app.service_principal_id})).await;
    assert!(status == 400 && body.to_string().contains("System.Guid"), "{body}");
    let (status, body) =
        admin.call("New-ServicePrincipal", json!({"AppId": app.app_id, "ObjectId": app.object_id})).await;
    assert!(status == 400 && body.to_string().contains("application registration"), "the app's object id: {body}");
    let (status, body) = admin
        .call(
            "New-ServicePrincipal",
            json!({"AppId": uuid::Uuid::new_v4().to_string(), "ObjectId": app.service_principal_id}),
        )
        .await;
    assert!(status == 400 && body.to_string().contains("belongs to AppId"), "{body}");
    let (status, body) =
        admin.call("Get-RoleGroup", json!({"Identity": "Organization Management", "Colour": "red"})).await;
    assert!(status == 400 && body.to_string().contains("'Colour'"), "{body}");
    let (status, body) = admin.call("Remove-RoleGroup", json!({"Identity": "Help Desk", "Confirm": false})).await;
    assert_cmdlet_error(status, &body, 400, "Exception", "built-in role group");
    let (status, body) = admin.call("Remove-RoleGroup", json!({"Identity": "Help Desk", "Confirm": "maybe"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        admin.call("Add-RoleGroupMember", json!({"Identity": "Help Desk", "Member": app.app_id})).await;
    assert_cmdlet_error(status, &body, 404, ".ManagementObjectNotFoundException", "couldn't be found");
    let (status, body) =
        admin.call("Add-RoleGroupMember", json!({"Identity": "No Such Group", "Member": "admin"})).await;
    assert_cmdlet_error(status, &body, 404, ".ManagementObjectNotFoundException", "'No Such Group'");
    let (status, body) = admin
        .call("Remove-RoleGroupMember", json!({"Identity": "Help Desk", "Member": "admin", "Confirm": false}))
        .await;
    assert_cmdlet_error(
        status,
        &body,
        400,
        ".MemberNotFoundException",
        "The recipient \"admin\" isn't a member of the group \"Help Desk\".",
    );

    scoped_group(&admin).await;
    let (status, body) = admin.call("Remove-ManagementScope", json!({"Identity": "cba-sales", "Confirm": false})).await;
    assert_cmdlet_error(status, &body, 400, "Exception", "cba-scoped");
}

#[tokio::test]
async fn teardown_leaves_nothing_and_a_removed_principal_loses_its_roles() {
    let sim = SimTenant::builder().start().await;
    let admin = Exo::admin(&sim);
    let app = bare_app(&sim, "leaving").await;
    scoped_group(&admin).await;
    add_to_group(&admin, &app, "cba-scoped").await;
    admin
        .ok("Add-RoleGroupMember", json!({"Identity": "View-Only Organization Management", "Member": app.app_id}))
        .await;
    let exo = Exo::app(&sim, &app);
    exo.ok("Get-Mailbox", json!({})).await;

    admin.ok("Remove-RoleGroupMember", json!({"Identity": "cba-scoped", "Member": app.app_id, "Confirm": false})).await;
    admin.ok("Remove-RoleGroup", json!({"Identity": "cba-scoped", "Confirm": false})).await;
    let (status, body) = admin.call("Get-RoleGroup", json!({"Identity": "cba-scoped"})).await;
    assert_eq!(status, 404, "{body}");
    admin.ok("Remove-ManagementScope", json!({"Identity": "cba-sales", "Confirm": false})).await;
    admin.ok("Remove-ServicePrincipal", json!({"Identity": app.app_id, "Confirm": false})).await;
    let (status, body) = exo.call("Get-Mailbox", json!({})).await;
    assert_not_allowed(status, &body, "Get-Mailbox");
    assert_eq!(
        admin.ok("Get-RoleGroupMember", json!({"Identity": "View-Only Organization Management"})).await,
        json!([])
    );
    let (status, _) = admin.call("Remove-ServicePrincipal", json!({"Identity": app.app_id})).await;
    assert_eq!(status, 404);

    let state = sim.state().await;
    let tenant = state.primary();
    assert!(tenant.exchange_service_principals.is_empty());
    assert!(tenant.management_scopes.is_empty());
    assert!(tenant.role_groups.iter().all(|g| g.built_in && g.members.is_empty()), "{:?}", tenant.role_groups);
}

#[tokio::test]
async fn rbac_writes_that_fail_after_executing_are_done() {
    let sim = SimTenant::builder().exchange_fail_after_execute(2).start().await;
    let admin = Exo::admin(&sim);
    let (status, _) = admin.call("Get-RoleGroup", json!({})).await;
    assert_eq!(status, 200, "reads do not consume the fault");
    let (status, _) =
        admin.call("New-ManagementScope", json!({"Name": "s", "RecipientRestrictionFilter": "Title -eq 'x'"})).await;
    assert_eq!(status, 400, "nor do refused writes");
    let (status, body) = admin
        .call("New-ManagementScope", json!({"Name": "s", "RecipientRestrictionFilter": "Department -eq 'Sales'"}))
        .await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = admin
        .call("New-RoleGroup", json!({"Name": "g", "Roles": "Mail Recipients", "CustomRecipientWriteScope": "s"}))
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        admin.ok("Get-ManagementScope", json!({"Identity": "s"})).await[0]["RecipientRestrictionFilter"],
        "Department -eq 'Sales'"
    );
    let (status, body) = admin.call("New-RoleGroup", json!({"Name": "g", "Roles": "Mail Recipients"})).await;
    assert_cmdlet_error(status, &body, 400, ".ADObjectAlreadyExistsException", "already exists");
    assert_eq!(sim.state().await.primary().role_groups.iter().filter(|g| g.name == "g").count(), 1);
}

#[tokio::test]
async fn get_user_and_get_recipient_show_departments_and_filter() {
    let sim = SimTenant::builder().mailboxes(10).start().await;
    let admin = Exo::admin(&sim);
    let users = admin.ok("Get-User", json!({})).await;
    let departments: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["Department"].as_str().unwrap()).collect();
    assert_eq!(departments[..5], ["Sales", "Marketing", "Engineering", "Finance", "Sales"]);
    let finance = admin.ok("Get-Recipient", json!({"Filter": "Department -eq 'finance'"})).await;
    let names: Vec<&str> = finance.as_array().unwrap().iter().map(|r| r["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["user00003", "user00007"]);
    assert_eq!(finance[0]["PrimarySmtpAddress"], format!("user00003@{}", sim.tenant_domain()));
    assert_eq!(finance[0]["RecipientTypeDetails"], "UserMailbox");
    let none = admin.ok("Get-Recipient", json!({"RecipientTypeDetails": "MailUser"})).await;
    assert_eq!(none, json!([]));
    let mailboxes = admin.ok("Get-Recipient", json!({"RecipientTypeDetails": ["UserMailbox"], "ResultSize": 3})).await;
    assert_eq!(mailboxes.as_array().unwrap().len(), 3);
    let (status, body) = admin.call("Get-Recipient", json!({"Filter": "Department -eq Sales"})).await;
    assert_cmdlet_error(status, &body, 400, ".InvalidFilterException", "must be quoted");
    // Set-Mailbox's custom attributes are recipient properties a scope can select.
    admin.ok("Set-Mailbox", json!({"Identity": "user00002", "CustomAttribute5": "pilot"})).await;
    let pilot = admin.ok("Get-Recipient", json!({"Filter": "CustomAttribute5 -like 'pil*'"})).await;
    assert_eq!(pilot.as_array().unwrap().len(), 1);
    assert_eq!(pilot[0]["CustomAttribute5"], "pilot");
}

#[tokio::test]
async fn entra_roles_map_to_their_role_groups() {
    let sim = SimTenant::builder().start().await;
    let recipient_admin = bare_app(&sim, "recipients").await;
    sim.seed_role_assignment(&recipient_admin, "31392ffb-586c-42d1-9346-e59415a2cc4e").await;
    let exo = Exo::app(&sim, &recipient_admin);
    exo.ok("Set-Mailbox", json!({"Identity": "user00001", "CustomAttribute1": "x"})).await;
    let (status, body) = exo.call("New-RoleGroup", json!({"Name": "g"})).await;
    assert_not_allowed(status, &body, "New-RoleGroup");

    let helpdesk = bare_app(&sim, "helpdesk").await;
    sim.seed_role_assignment(&helpdesk, "729827e3-9c14-49f7-bb1b-9608f156bbb8").await;
    let exo = Exo::app(&sim, &helpdesk);
    exo.ok("Get-Recipient", json!({})).await;
    let (status, body) = exo.call("Set-Mailbox", json!({"Identity": "user00001", "CustomAttribute1": "y"})).await;
    assert_not_allowed(status, &body, "Set-Mailbox");

    let exchange_admin = exchange_ready_app(&sim).await;
    let exo = Exo::app(&sim, &exchange_admin);
    exo.ok("New-ManagementScope", json!({"Name": "by-app", "RecipientRestrictionFilter": "Department -ne 'Sales'"}))
        .await;
    exo.ok("Get-RoleGroup", json!({"Identity": "Organization Management"})).await;
}
