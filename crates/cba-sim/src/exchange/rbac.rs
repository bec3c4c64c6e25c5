//! Exchange RBAC as the sim models it (docs/wire-formats.md §10, crate README "Exchange RBAC"): per tenant,
//! Exchange service principals, role groups (the built-in ones and custom ones) holding roles and an optional
//! recipient write scope, management scopes with an OPATH filter, and role-group membership.
//!
//! Who may do what: a delegated Global/Exchange Administrator acts as Organization Management; an app-only
//! caller holds the role group its Entra directory role maps to, plus every group whose members include its
//! Exchange service principal (matched on AppId and ObjectId). Membership changes reach app-only authorization
//! `exchange_rbac_delay` after they were made; the RBAC read cmdlets show them at once.

use serde_json::{Value, json};

use super::opath::Filter;
use super::recipients::Mailboxes;
use super::{ExoError, Outcome, Params, bad_request, cmdlet_error, object_not_found};
use crate::ids;
use crate::jwt::AccessClaims;
use crate::state::Tenant;
use crate::wellknown::{EXCHANGE_ADMINISTRATOR, EXCHANGE_CAPABLE_ROLES, GLOBAL_ADMINISTRATOR};

const ALREADY_EXISTS: &str = "Microsoft.Exchange.Configuration.Tasks.ADObjectAlreadyExistsException";
const NOT_FOUND: &str = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException";
const INVALID_FILTER: &str = "Microsoft.Exchange.Configuration.Tasks.InvalidFilterException";
const DEHYDRATED: &str = "Microsoft.Exchange.Management.Tasks.InvalidOperationInDehydratedContextException";
const MEMBER_EXISTS: &str = "Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException";
const MEMBER_NOT_FOUND: &str = "Microsoft.Exchange.Management.Tasks.MemberNotFoundException";
const OUT_OF_SCOPE: &str = "Microsoft.Exchange.Management.Tasks.RecipientOutOfWriteScopeException";
const INVALID_OPERATION: &str = "Microsoft.Exchange.Configuration.Tasks.InvalidOperationException";

/// The built-in role groups: name, roles, description.
const BUILT_IN_GROUPS: &[(&str, &[&str], &str)] = &[
    (
        "Organization Management",
        &[
            "Role Management",
            "Mail Recipients",
            "Mail Recipient Creation",
            "View-Only Recipients",
            "View-Only Configuration",
            "Organization Configuration",
            "Distribution Groups",
            "Reset Password",
            "User Options",
        ],
        "Members of this management role group have permissions to manage Exchange objects and their properties in the Exchange organization.",
    ),
    (
        "Recipient Management",
        &[
            "Mail Recipients",
            "Mail Recipient Creation",
            "Distribution Groups",
            "Reset Password",
            "Move Mailboxes",
            "Message Tracking",
            "Recipient Policies",
        ],
        "Members of this management role group have rights to create, manage, and remove Exchange recipient objects in the Exchange organization.",
    ),
    (
        "View-Only Organization Management",
        &["View-Only Configuration", "View-Only Recipients"],
        "Members of this management role group can view recipient and configuration objects and their properties in the Exchange organization.",
    ),
    (
        "Help Desk",
        &["Reset Password", "User Options", "View-Only Recipients"],
        "Members of this management role group can view and manage the configuration for individual recipients and view recipients in an Exchange organization.",
    ),
];

/// The role group an Entra directory role (template id) acts as in Exchange. The first five are documented
/// (wire-formats §10); Compliance/Security Administrator and Security Reader are the sim's read-only stand-in
/// (UNVERIFIED: Exchange has role groups of their own for them).
fn entra_role_group(template_id: &str) -> Option<&'static str> {
    let group = match template_id.to_ascii_lowercase().as_str() {
        EXCHANGE_ADMINISTRATOR | GLOBAL_ADMINISTRATOR => "Organization Management",
        "31392ffb-586c-42d1-9346-e59415a2cc4e" => "Recipient Management",
        "f2ef992c-3afb-46b9-b7cf-a126ee74c451" => "View-Only Organization Management",
        "729827e3-9c14-49f7-bb1b-9608f156bbb8" => "Help Desk",
        other if EXCHANGE_CAPABLE_ROLES.contains(&other) => "View-Only Organization Management",
        _ => return None,
    };
    Some(group)
}

/// Every role name a role group may hold, canonical spelling.
fn known_role(name: &str) -> Option<&'static str> {
    BUILT_IN_GROUPS.iter().flat_map(|(_, roles, _)| roles.iter()).find(|r| r.eq_ignore_ascii_case(name.trim())).copied()
}

fn built_in_roles(group: &str) -> &'static [&'static str] {
    BUILT_IN_GROUPS.iter().find(|(name, _, _)| *name == group).map_or(&[], |(_, roles, _)| roles)
}

/// An Exchange service principal: Exchange's pointer at an Entra service principal (New-ServicePrincipal).
#[derive(Debug, Clone)]
pub(crate) struct ExoServicePrincipal {
    pub(crate) app_id: String,
    pub(crate) object_id: String,
    pub(crate) display_name: String,
}

/// What a role group can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Member {
    ServicePrincipal { app_id: String, object_id: String, display_name: String },
    Mailbox { index: usize },
}

impl Member {
    fn name(&self) -> String {
        match self {
            Member::ServicePrincipal { object_id, .. } => object_id.clone(),
            Member::Mailbox { index } => Mailboxes::alias(*index),
        }
    }

    fn row(&self, mailboxes: &Mailboxes<'_>) -> Value {
        match self {
            Member::ServicePrincipal { object_id, display_name, .. } => json!({
                "Name": object_id,
                "Identity": object_id,
                "Id": object_id,
                "DisplayName": display_name,
                "ExternalDirectoryObjectId": object_id,
                "RecipientType": "ServicePrincipal",
                "RecipientTypeDetails": "ServicePrincipal",
            }),
            Member::Mailbox { index } => json!({
                "Name": Mailboxes::alias(*index),
                "Identity": Mailboxes::alias(*index),
                "Id": Mailboxes::alias(*index),
                "DisplayName": Mailboxes::display_name(*index),
                "ExternalDirectoryObjectId": mailboxes.object_id(*index),
                "RecipientType": "UserMailbox",
                "RecipientTypeDetails": "UserMailbox",
            }),
        }
    }
}

/// A membership, kept after removal until the removal has reached authorization.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    member: Member,
    added_ms: i64,
    removed_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct RoleGroup {
    pub(crate) name: String,
    guid: String,
    pub(crate) roles: Vec<&'static str>,
    pub(crate) write_scope: Option<String>,
    description: String,
    pub(crate) built_in: bool,
    memberships: Vec<Membership>,
    /// Removed (Remove-RoleGroup): gone for every cmdlet, still honoured until the removal has propagated.
    removed_ms: Option<i64>,
}

impl RoleGroup {
    fn live(&self) -> bool {
        self.removed_ms.is_none()
    }

    /// Current members, as Get-RoleGroupMember shows them.
    pub(crate) fn members(&self) -> impl Iterator<Item = &Member> {
        self.memberships.iter().filter(|m| m.removed_ms.is_none()).map(|m| &m.member)
    }

    pub(crate) fn member_names(&self) -> Vec<String> {
        self.members().map(Member::name).collect()
    }

    fn row(&self) -> Value {
        json!({
            "Name": self.name,
            "Identity": self.name,
            "Id": self.name,
            "DisplayName": self.name,
            "ExchangeObjectId": self.guid,
            "Guid": self.guid,
            "Roles": self.roles,
            "Members": self.member_names(),
            "Description": self.description,
            "RoleGroupType": "Standard",
            "Capabilities": [],
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ManagementScope {
    pub(crate) name: String,
    pub(crate) filter_text: String,
    filter: Filter,
}

impl ManagementScope {
    fn row(&self) -> Value {
        json!({
            "Name": self.name,
            "Identity": self.name,
            "Id": self.name,
            "RecipientFilter": self.filter_text,
            "RecipientRestrictionFilter": self.filter_text,
            "ScopeRestrictionType": "RecipientScope",
            "Exclusive": false,
        })
    }
}

/// One tenant's Exchange RBAC objects.
#[derive(Debug, Clone)]
pub(crate) struct Organization {
    pub(crate) service_principals: Vec<ExoServicePrincipal>,
    role_groups: Vec<RoleGroup>,
    pub(crate) scopes: Vec<ManagementScope>,
    dehydrated: bool,
    /// When Enable-OrganizationCustomization completes (set by the cmdlet; `enable_customization_delay`).
    customization_done_ms: Option<i64>,
}

impl Organization {
    pub(crate) fn new(tenant_id: &str, dehydrated: bool) -> Organization {
        let role_groups = BUILT_IN_GROUPS
            .iter()
            .enumerate()
            .map(|(i, (name, roles, description))| RoleGroup {
                name: name.to_string(),
                guid: ids::derived_guid(tenant_id, (1 << 42) | i as u64),
                roles: roles.to_vec(),
                write_scope: None,
                description: description.to_string(),
                built_in: true,
                memberships: Vec::new(),
                removed_ms: None,
            })
            .collect();
        Organization {
            service_principals: Vec::new(),
            role_groups,
            scopes: Vec::new(),
            dehydrated,
            customization_done_ms: None,
        }
    }

    /// Whether custom role groups are still refused (Get-OrganizationConfig's IsDehydrated).
    pub(crate) fn is_dehydrated(&self, now_ms: i64) -> bool {
        self.dehydrated && self.customization_done_ms.is_none_or(|done| now_ms < done)
    }

    /// The role groups every cmdlet sees (removed ones still propagating excluded).
    pub(crate) fn role_groups(&self) -> impl Iterator<Item = &RoleGroup> {
        self.role_groups.iter().filter(|g| g.live())
    }

    fn group(&self, identity: &str) -> Option<&RoleGroup> {
        let wanted = identity.trim();
        self.role_groups().find(|g| g.name.eq_ignore_ascii_case(wanted) || g.guid.eq_ignore_ascii_case(wanted))
    }

    fn group_mut(&mut self, identity: &str) -> Option<&mut RoleGroup> {
        let wanted = identity.trim();
        self.role_groups
            .iter_mut()
            .filter(|g| g.live())
            .find(|g| g.name.eq_ignore_ascii_case(wanted) || g.guid.eq_ignore_ascii_case(wanted))
    }

    fn service_principal(&self, identity: &str) -> Option<&ExoServicePrincipal> {
        let wanted = identity.trim();
        self.service_principals.iter().find(|s| {
            s.app_id.eq_ignore_ascii_case(wanted)
                || s.object_id.eq_ignore_ascii_case(wanted)
                || s.display_name.eq_ignore_ascii_case(wanted)
        })
    }

    fn scope(&self, identity: &str) -> Option<&ManagementScope> {
        self.scopes.iter().find(|s| s.name.eq_ignore_ascii_case(identity.trim()))
    }

    /// Forget removals that have reached authorization.
    pub(crate) fn purge(&mut self, now_ms: i64, delay_ms: i64) {
        let pending = |removed: Option<i64>| removed.is_none_or(|at| now_ms < at.saturating_add(delay_ms));
        self.role_groups.retain(|g| pending(g.removed_ms));
        for group in &mut self.role_groups {
            group.memberships.retain(|m| pending(m.removed_ms));
        }
    }
}

/// A role the caller holds, through which group, with which write scope (`None`: the organization).
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) role: &'static str,
    pub(crate) scope: Option<String>,
}

/// The roles a caller holds right now.
pub(crate) fn grants(
    org: &Organization,
    tenant: &Tenant,
    claims: &AccessClaims,
    now_ms: i64,
    entra_seen_at_ms: i64,
    rbac_delay_ms: i64,
) -> Vec<Grant> {
    let organization_wide =
        |group: &str| built_in_roles(group).iter().map(|role| Grant { role, scope: None }).collect::<Vec<_>>();
    if !claims.is_app_only() {
        // A delegated admin: the directory roles of the signed-in user.
        let mut wids = claims.wids.clone();
        if claims.oid == tenant.admin_id {
            wids.extend(tenant.admin_roles());
        }
        return wids.iter().filter_map(|w| entra_role_group(w)).flat_map(organization_wide).collect();
    }
    if !claims.roles.iter().any(|r| r == "Exchange.ManageAsApp") {
        return Vec::new();
    }
    // The Entra role as Exchange's copy of the directory sees it (exchange_role_delay behind Graph), not the
    // token's `wids`.
    let mut held: Vec<Grant> = tenant
        .directory_roles(&claims.oid, entra_seen_at_ms)
        .iter()
        .filter_map(|w| entra_role_group(w))
        .flat_map(organization_wide)
        .collect();
    let effective = |m: &Membership| {
        m.added_ms.saturating_add(rbac_delay_ms) <= now_ms
            && m.removed_ms.is_none_or(|at| now_ms < at.saturating_add(rbac_delay_ms))
    };
    for group in &org.role_groups {
        let is_member = group.memberships.iter().filter(|m| effective(m)).any(|m| {
            matches!(&m.member, Member::ServicePrincipal { app_id, object_id, .. }
                if app_id.eq_ignore_ascii_case(&claims.appid) && object_id.eq_ignore_ascii_case(&claims.oid))
        });
        if is_member {
            held.extend(group.roles.iter().map(|role| Grant { role, scope: group.write_scope.clone() }));
        }
    }
    held
}

/// Whether `grants` let the caller write to a recipient through `role`: some grant of it has no write scope,
/// or a scope whose filter the recipient matches.
pub(crate) fn in_write_scope(
    org: &Organization,
    grants: &[Grant],
    role: &str,
    property: &dyn Fn(&str) -> Option<String>,
) -> bool {
    grants.iter().filter(|g| g.role == role).any(|g| match &g.scope {
        None => true,
        Some(name) => org.scope(name).is_some_and(|s| s.filter.matches(property)),
    })
}

pub(crate) fn out_of_write_scope(alias: &str) -> ExoError {
    cmdlet_error(
        400,
        OUT_OF_SCOPE,
        &format!("The user \"{alias}\" is outside of your current write scope. The action can't be performed."),
    )
}

fn already_exists(text: String) -> ExoError {
    cmdlet_error(400, ALREADY_EXISTS, &text)
}

/// What an RBAC cmdlet may touch besides the organization's RBAC objects.
pub(crate) struct Context<'a> {
    pub(crate) tenant: &'a Tenant,
    pub(crate) mailboxes: Mailboxes<'a>,
    pub(crate) now_ms: i64,
    pub(crate) graph_now_ms: i64,
    pub(crate) customization_delay_ms: i64,
}

/// Run an RBAC cmdlet (the name is canonical).
pub(crate) fn run(
    name: &str,
    params: &Params<'_>,
    org: &mut Organization,
    ctx: &Context<'_>,
) -> Result<Outcome, ExoError> {
    match name {
        "Get-ServicePrincipal" => {
            params.check(&["Identity", "ResultSize"])?;
            let row = |s: &ExoServicePrincipal| {
                json!({
                    "AppId": s.app_id,
                    "ObjectId": s.object_id,
                    "DisplayName": s.display_name,
                    "Name": s.object_id,
                    "Identity": s.object_id,
                    "Id": s.object_id,
                })
            };
            match params.string("Identity")? {
                Some(identity) => {
                    let sp = org.service_principal(&identity).ok_or_else(|| object_not_found(&identity))?;
                    Ok(Outcome::Rows(vec![row(sp)]))
                }
                None => Ok(Outcome::Rows(org.service_principals.iter().map(row).collect())),
            }
        }
        "New-ServicePrincipal" => {
            params.check(&["AppId", "ObjectId", "DisplayName"])?;
            params.mandatory(&["AppId", "ObjectId"])?;
            let app_id = params.guid("AppId")?;
            let object_id = params.guid("ObjectId")?;
            if let Some(existing) = org
                .service_principals
                .iter()
                .find(|s| s.app_id.eq_ignore_ascii_case(&app_id) || s.object_id.eq_ignore_ascii_case(&object_id))
            {
                return Err(already_exists(format!(
                    "The service principal with AppId '{}' already exists.",
                    existing.app_id
                )));
            }
            // Exchange resolves the ObjectId in the directory (UNVERIFIED how it words a wrong one): the
            // classic mistake is the application's object id instead of its service principal's.
            let entra = ctx.tenant.sp(&object_id, ctx.graph_now_ms).filter(|s| s.gone_at_ms.is_none());
            let display_name = match entra {
                Some(sp) if !sp.app_id.eq_ignore_ascii_case(&app_id) => {
                    return Err(bad_request(&format!(
                        "The service principal '{object_id}' belongs to AppId '{}', not to AppId '{app_id}'.",
                        sp.app_id
                    )));
                }
                Some(sp) => params.string("DisplayName")?.unwrap_or_else(|| sp.display_name.clone()),
                None if ctx.tenant.app(&object_id, ctx.graph_now_ms).is_some() => {
                    return Err(bad_request(&format!(
                        "'{object_id}' is the object id of an application registration; -ObjectId takes the object id of the application's service principal (enterprise application)."
                    )));
                }
                None => return Err(object_not_found(&object_id)),
            };
            let sp = ExoServicePrincipal { app_id, object_id, display_name };
            let row = json!({
                "AppId": sp.app_id,
                "ObjectId": sp.object_id,
                "DisplayName": sp.display_name,
                "Name": sp.object_id,
                "Identity": sp.object_id,
                "Id": sp.object_id,
            });
            org.service_principals.push(sp);
            Ok(Outcome::Rows(vec![row]))
        }
        "Remove-ServicePrincipal" => {
            params.check(&["Identity", "Confirm"])?;
            let identity = params.required("Identity")?;
            let sp = org.service_principal(&identity).cloned().ok_or_else(|| object_not_found(&identity))?;
            org.service_principals.retain(|s| s.object_id != sp.object_id);
            for group in &mut org.role_groups {
                for m in group.memberships.iter_mut().filter(|m| m.removed_ms.is_none()) {
                    if matches!(&m.member, Member::ServicePrincipal { object_id, .. } if *object_id == sp.object_id) {
                        m.removed_ms = Some(ctx.now_ms);
                    }
                }
            }
            Ok(Outcome::Done)
        }
        "Get-RoleGroup" => {
            params.check(&["Identity", "ResultSize"])?;
            match params.string("Identity")? {
                Some(identity) => {
                    let group = org.group(&identity).ok_or_else(|| object_not_found(&identity))?;
                    Ok(Outcome::Rows(vec![group.row()]))
                }
                None => Ok(Outcome::Rows(org.role_groups().map(RoleGroup::row).collect())),
            }
        }
        "New-RoleGroup" => {
            params.check(&["Name", "Roles", "CustomRecipientWriteScope", "Description", "DisplayName"])?;
            let name = params.required("Name")?;
            if name.trim().is_empty() || name.chars().count() > 64 {
                return Err(bad_request(&format!(
                    "Cannot validate argument on parameter 'Name'. The name '{name}' must be 1 to 64 characters long."
                )));
            }
            let mut roles: Vec<&'static str> = Vec::new();
            for role in params.strings("Roles")? {
                let canonical = known_role(&role).ok_or_else(|| {
                    cmdlet_error(
                        400,
                        NOT_FOUND,
                        &format!("The operation couldn't be performed because object '{role}' couldn't be found."),
                    )
                })?;
                if !roles.contains(&canonical) {
                    roles.push(canonical);
                }
            }
            let write_scope = match params.string("CustomRecipientWriteScope")? {
                Some(scope) => Some(org.scope(&scope).ok_or_else(|| object_not_found(&scope))?.name.clone()),
                None => None,
            };
            if org.group(&name).is_some() {
                return Err(already_exists(format!("The role group '{name}' already exists.")));
            }
            if org.is_dehydrated(ctx.now_ms) {
                return Err(cmdlet_error(
                    400,
                    DEHYDRATED,
                    "This operation is not available in current service offer. Please run Enable-OrganizationCustomization before running this operation.",
                ));
            }
            let group = RoleGroup {
                name: name.trim().to_string(),
                guid: ids::guid(),
                roles,
                write_scope,
                description: params.string("Description")?.unwrap_or_default(),
                built_in: false,
                memberships: Vec::new(),
                removed_ms: None,
            };
            let row = group.row();
            org.role_groups.push(group);
            Ok(Outcome::Rows(vec![row]))
        }
        "Remove-RoleGroup" => {
            params.check(&["Identity", "Confirm", "BypassSecurityGroupManagerCheck"])?;
            let identity = params.required("Identity")?;
            let now = ctx.now_ms;
            let group = org.group_mut(&identity).ok_or_else(|| object_not_found(&identity))?;
            if group.built_in {
                return Err(cmdlet_error(
                    400,
                    INVALID_OPERATION,
                    &format!("The role group '{}' is a built-in role group and can't be removed.", group.name),
                ));
            }
            group.removed_ms = Some(now);
            for m in group.memberships.iter_mut().filter(|m| m.removed_ms.is_none()) {
                m.removed_ms = Some(now);
            }
            Ok(Outcome::Done)
        }
        "Get-RoleGroupMember" => {
            params.check(&["Identity", "ResultSize"])?;
            let identity = params.required("Identity")?;
            let group = org.group(&identity).ok_or_else(|| object_not_found(&identity))?;
            Ok(Outcome::Rows(group.members().map(|m| m.row(&ctx.mailboxes)).collect()))
        }
        "Add-RoleGroupMember" | "Remove-RoleGroupMember" => {
            let adding = name == "Add-RoleGroupMember";
            if adding {
                params.check(&["Identity", "Member", "BypassSecurityGroupManagerCheck"])?;
            } else {
                params.check(&["Identity", "Member", "Confirm", "BypassSecurityGroupManagerCheck"])?;
            }
            params.mandatory(&["Identity", "Member"])?;
            let identity = params.required("Identity")?;
            let wanted = params.required("Member")?;
            let member = match org.service_principal(&wanted) {
                Some(sp) => Member::ServicePrincipal {
                    app_id: sp.app_id.clone(),
                    object_id: sp.object_id.clone(),
                    display_name: sp.display_name.clone(),
                },
                None => match ctx.mailboxes.find(&wanted) {
                    Some(index) => Member::Mailbox { index },
                    None => return Err(object_not_found(&wanted)),
                },
            };
            let now = ctx.now_ms;
            let group = org.group_mut(&identity).ok_or_else(|| object_not_found(&identity))?;
            let current = group.memberships.iter_mut().find(|m| m.removed_ms.is_none() && m.member == member);
            match (adding, current) {
                (true, Some(_)) => Err(cmdlet_error(
                    400,
                    MEMBER_EXISTS,
                    &format!(
                        "The recipient \"{}\" is already a member of the group \"{}\".",
                        member.name(),
                        group.name
                    ),
                )),
                (true, None) => {
                    group.memberships.push(Membership { member, added_ms: now, removed_ms: None });
                    Ok(Outcome::Done)
                }
                (false, Some(m)) => {
                    m.removed_ms = Some(now);
                    Ok(Outcome::Done)
                }
                (false, None) => Err(cmdlet_error(
                    400,
                    MEMBER_NOT_FOUND,
                    &format!("The recipient \"{}\" isn't a member of the group \"{}\".", member.name(), group.name),
                )),
            }
        }
        "Get-ManagementScope" => {
            params.check(&["Identity", "ResultSize"])?;
            match params.string("Identity")? {
                Some(identity) => {
                    let scope = org.scope(&identity).ok_or_else(|| object_not_found(&identity))?;
                    Ok(Outcome::Rows(vec![scope.row()]))
                }
                None => Ok(Outcome::Rows(org.scopes.iter().map(ManagementScope::row).collect())),
            }
        }
        "New-ManagementScope" => {
            params.check(&["Name", "RecipientRestrictionFilter"])?;
            params.mandatory(&["Name", "RecipientRestrictionFilter"])?;
            let name = params.required("Name")?;
            let filter_text = params.required("RecipientRestrictionFilter")?;
            let filter = Filter::parse(&filter_text).map_err(|e| {
                cmdlet_error(400, INVALID_FILTER, &format!("Invalid filter syntax: {e} Filter: \"{filter_text}\""))
            })?;
            if name.trim().is_empty() || name.chars().count() > 64 {
                return Err(bad_request(&format!(
                    "Cannot validate argument on parameter 'Name'. The name '{name}' must be 1 to 64 characters long."
                )));
            }
            if org.scope(&name).is_some() {
                return Err(already_exists(format!("The management scope '{name}' already exists.")));
            }
            let scope = ManagementScope { name: name.trim().to_string(), filter_text, filter };
            let row = scope.row();
            org.scopes.push(scope);
            Ok(Outcome::Rows(vec![row]))
        }
        "Remove-ManagementScope" => {
            params.check(&["Identity", "Confirm"])?;
            let identity = params.required("Identity")?;
            let scope = org.scope(&identity).ok_or_else(|| object_not_found(&identity))?.name.clone();
            if let Some(group) = org.role_groups().find(|g| g.write_scope.as_deref() == Some(scope.as_str())) {
                return Err(cmdlet_error(
                    400,
                    INVALID_OPERATION,
                    &format!(
                        "The management scope '{scope}' can't be removed because it is used by role assignments of the role group '{}'. Remove the role group or its role assignments first.",
                        group.name
                    ),
                ));
            }
            org.scopes.retain(|s| s.name != scope);
            Ok(Outcome::Done)
        }
        "Get-ManagementRoleAssignment" => {
            params.check(&["RoleAssignee", "Role", "ResultSize"])?;
            let groups: Vec<&RoleGroup> = match params.string("RoleAssignee")? {
                None => org.role_groups().collect(),
                Some(assignee) => match org.group(&assignee) {
                    Some(group) => vec![group],
                    None => {
                        let sp = org.service_principal(&assignee).ok_or_else(|| object_not_found(&assignee))?;
                        org.role_groups()
                            .filter(|g| {
                                g.members().any(|m| matches!(m, Member::ServicePrincipal { object_id, .. } if *object_id == sp.object_id))
                            })
                            .collect()
                    }
                },
            };
            let role_filter = params.string("Role")?;
            let rows = groups
                .iter()
                .flat_map(|g| g.roles.iter().map(move |r| (g, *r)))
                .filter(|(_, r)| role_filter.as_deref().is_none_or(|f| f.eq_ignore_ascii_case(r)))
                .map(|(g, role)| {
                    json!({
                        "Name": format!("{role}-{}", g.name),
                        "Identity": format!("{role}-{}", g.name),
                        "Role": role,
                        "RoleAssignee": g.name,
                        "RoleAssigneeName": g.name,
                        "RoleAssigneeType": "RoleGroup",
                        "CustomRecipientWriteScope": g.write_scope,
                        "RecipientWriteScope": if g.write_scope.is_some() { "CustomRecipientScope" } else { "Organization" },
                        "RecipientReadScope": "Organization",
                        "Enabled": true,
                    })
                })
                .collect();
            Ok(Outcome::Rows(rows))
        }
        "Enable-OrganizationCustomization" => {
            params.check(&[])?;
            if !org.is_dehydrated(ctx.now_ms) || org.customization_done_ms.is_some() {
                return Err(cmdlet_error(
                    400,
                    INVALID_OPERATION,
                    "This operation is not required. Organization is already enabled for customization.",
                ));
            }
            org.customization_done_ms = Some(ctx.now_ms.saturating_add(ctx.customization_delay_ms));
            Ok(Outcome::Done)
        }
        other => Err(bad_request(&format!("The term '{other}' is not recognized."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exchange_capable_entra_role_maps_to_a_built_in_group() {
        for (id, name) in crate::wellknown::ROLE_DEFINITIONS {
            let expected = !matches!(
                *name,
                "Privileged Role Administrator" | "Application Administrator" | "Cloud Application Administrator"
            );
            let group = entra_role_group(id);
            assert_eq!(group.is_some(), expected, "{name}");
            if let Some(group) = group {
                assert!(!built_in_roles(group).is_empty(), "{name} → {group}");
            }
        }
    }

    #[test]
    fn roles_resolve_case_insensitively() {
        assert_eq!(known_role(" mail recipients"), Some("Mail Recipients"));
        assert_eq!(known_role("Mailbox Import Export"), None);
    }
}
