//! Ids that are the same in every tenant (docs/wire-formats.md §1).

use serde::Serialize;

use crate::Error;

/// Office 365 Exchange Online: the resource appId (its service principal's object id differs per tenant).
pub const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
/// The Exchange.ManageAsApp application permission (app role id on the Exchange Online service principal).
pub const EXCHANGE_MANAGE_AS_APP_ROLE_ID: &str = "dc50a0fb-09a3-484d-be87-e023b12c6440";
/// The value of that app role, as it appears in `appRoles[].value` and in app-only tokens' `roles`.
pub const EXCHANGE_MANAGE_AS_APP: &str = "Exchange.ManageAsApp";
/// Microsoft Graph's resource appId.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The `aud` of the proof JWT for `addKey`/`removeKey`.
pub const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";
/// `signInAudience` of a single-tenant app.
pub const SINGLE_TENANT: &str = "AzureADMyOrg";
/// `signInAudience` of a multi-tenant app (work or school accounts of any tenant; docs/wire-formats.md §11).
pub const MULTI_TENANT: &str = "AzureADMultipleOrgs";

/// A built-in Entra role usable for app-only Exchange (docs/wire-formats.md §1). `roleDefinitionId` takes the
/// template id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Role {
    /// The display name, as in the Entra admin center.
    pub name: &'static str,
    /// The role template id (same in every tenant).
    pub template_id: &'static str,
    /// Usable with Exchange Online PowerShell.
    pub exchange: bool,
    /// Usable with Security & Compliance PowerShell.
    pub compliance: bool,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

const fn role(name: &'static str, template_id: &'static str, exchange: bool, compliance: bool) -> Role {
    Role { name, template_id, exchange, compliance }
}

/// Exchange Administrator: covers every Exchange Online task; the default.
pub const EXCHANGE_ADMINISTRATOR: Role =
    role("Exchange Administrator", "29232cdf-9323-42fd-ade2-1d097af3e4de", true, false);

/// The roles docs/wire-formats.md §1 lists as usable for app-only Exchange, default first.
pub const ROLES: [Role; 8] = [
    EXCHANGE_ADMINISTRATOR,
    role("Global Administrator", "62e90394-69f5-4237-9190-012177145e10", true, true),
    role("Exchange Recipient Administrator", "31392ffb-586c-42d1-9346-e59415a2cc4e", true, false),
    role("Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451", true, true),
    role("Compliance Administrator", "17315797-102d-40b4-93e0-432062caca18", true, true),
    role("Helpdesk Administrator", "729827e3-9c14-49f7-bb1b-9608f156bbb8", true, false),
    role("Security Administrator", "194ae4cb-b126-40b2-bd5b-6091b380977d", true, true),
    role("Security Reader", "5d6b6bb7-de71-4623-b4af-96380a352509", true, true),
];

/// Look a role up by name, ignoring case and surrounding spaces; the error lists the accepted names.
pub fn role_by_name(name: &str) -> Result<Role, Error> {
    let wanted = name.trim();
    ROLES
        .iter()
        .copied()
        .find(|r| r.name.eq_ignore_ascii_case(wanted))
        .ok_or_else(|| Error::UnknownRole { name: name.to_string(), known: ROLES.iter().map(|r| r.name).collect() })
}

/// The role with this template id, if it is one of [`ROLES`].
pub fn role_by_template_id(template_id: &str) -> Option<Role> {
    ROLES.iter().copied().find(|r| r.template_id.eq_ignore_ascii_case(template_id))
}
