//! Ids that are the same in every tenant (docs/wire-formats.md §1).

/// Office 365 Exchange Online resource appId.
pub const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
/// The Exchange resource identifier used in scopes and as the token audience.
pub const EXCHANGE_RESOURCE: &str = "https://outlook.office365.com";
/// `Exchange.ManageAsApp` app role id.
pub const MANAGE_AS_APP_ROLE_ID: &str = "dc50a0fb-09a3-484d-be87-e023b12c6440";
/// Microsoft Graph resource appId.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The Graph resource identifier used in scopes and as the token audience.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Audience of addKey/removeKey proof tokens.
pub const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";
/// Global Administrator role template id (the sim's admin user holds it).
pub const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
/// Exchange Administrator role template id.
pub const EXCHANGE_ADMINISTRATOR: &str = "29232cdf-9323-42fd-ade2-1d097af3e4de";

/// The three delegated scopes setup needs; the admin token carries them.
pub const ADMIN_SCOPES: [&str; 3] =
    ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "RoleManagement.ReadWrite.Directory"];

/// (template id, display name) of the built-in directory roles the sim knows.
pub(crate) const ROLE_DEFINITIONS: &[(&str, &str)] = &[
    (EXCHANGE_ADMINISTRATOR, "Exchange Administrator"),
    (GLOBAL_ADMINISTRATOR, "Global Administrator"),
    ("31392ffb-586c-42d1-9346-e59415a2cc4e", "Exchange Recipient Administrator"),
    ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
    ("17315797-102d-40b4-93e0-432062caca18", "Compliance Administrator"),
    ("729827e3-9c14-49f7-bb1b-9608f156bbb8", "Helpdesk Administrator"),
    ("194ae4cb-b126-40b2-bd5b-6091b380977d", "Security Administrator"),
    ("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader"),
    ("e8611ab8-c189-46e8-94e1-60213ab1f814", "Privileged Role Administrator"),
    ("9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", "Application Administrator"),
    ("158c047a-c907-4556-b7ef-446551a6b5f7", "Cloud Application Administrator"),
];

/// Roles that let an app run Exchange cmdlets app-only (docs/wire-formats.md §1, EXO column).
pub(crate) const EXCHANGE_CAPABLE_ROLES: &[&str] = &[
    EXCHANGE_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    "31392ffb-586c-42d1-9346-e59415a2cc4e",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "17315797-102d-40b4-93e0-432062caca18",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "5d6b6bb7-de71-4623-b4af-96380a352509",
];

/// (id, value, display name) of the app roles seeded on the Exchange service principal.
pub(crate) const EXCHANGE_APP_ROLES: &[(&str, &str, &str)] = &[
    (MANAGE_AS_APP_ROLE_ID, "Exchange.ManageAsApp", "Manage Exchange As Application"),
    (
        "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
        "full_access_as_app",
        "Use Exchange Web Services with full access to all mailboxes",
    ),
];

/// (id, value, display name) of the app roles seeded on the Graph service principal.
pub(crate) const GRAPH_APP_ROLES: &[(&str, &str, &str)] = &[
    ("1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "Application.ReadWrite.All", "Read and write all applications"),
    ("9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30", "Application.Read.All", "Read all applications"),
    (
        "06b708a9-e830-4db3-a914-8e69da51d44f",
        "AppRoleAssignment.ReadWrite.All",
        "Manage app permission grants and app role assignments",
    ),
    (
        "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8",
        "RoleManagement.ReadWrite.Directory",
        "Read and write all directory RBAC settings",
    ),
    ("7ab1d382-f21e-4acd-a863-ba3e13f7da61", "Directory.Read.All", "Read directory data"),
    ("df021288-bdef-4463-88db-98f22de89214", "User.Read.All", "Read all users' full profiles"),
];

/// Delegated Graph scopes a device-code sign-in may ask for (besides the OpenID ones).
pub(crate) const GRAPH_DELEGATED_SCOPES: &[&str] = &[
    "Application.ReadWrite.All",
    "Application.Read.All",
    "AppRoleAssignment.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
    "RoleManagement.Read.Directory",
    "Directory.Read.All",
    "User.Read",
];

/// OpenID Connect scopes: allowed beside resource scopes, never put in `scp`.
pub(crate) const OIDC_SCOPES: &[&str] = &["openid", "profile", "offline_access", "email"];

/// Microsoft first-party public clients accepted for the device-code flow without registration.
pub(crate) const FIRST_PARTY_PUBLIC_CLIENTS: &[(&str, &str)] = &[
    ("14d82eec-204b-4c2f-b7e8-296a70dab67e", "Microsoft Graph Command Line Tools"),
    ("04b07795-8ddb-461a-bbee-02f9e1bf7b46", "Microsoft Azure CLI"),
    ("1950a258-227b-4e31-a9cf-717495945fc2", "Microsoft Azure PowerShell"),
    ("fb78d390-0c51-40cd-8e17-fdbfab77341b", "Microsoft Exchange REST API Based Powershell"),
];

/// The Azure CLI client id: refused (AADSTS65002) for explicit Graph scopes.
pub(crate) const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

pub(crate) fn role_definition(id: &str) -> Option<&'static str> {
    ROLE_DEFINITIONS.iter().find(|(tid, _)| tid.eq_ignore_ascii_case(id)).map(|(_, name)| *name)
}

/// The canonical resource identifier for a scope's resource part (URI or appId form).
pub(crate) fn resource_for(identifier: &str) -> Option<&'static str> {
    let id = identifier.trim_end_matches('/');
    if id.eq_ignore_ascii_case(EXCHANGE_RESOURCE) || id.eq_ignore_ascii_case(EXCHANGE_APP_ID) {
        Some(EXCHANGE_RESOURCE)
    } else if id.eq_ignore_ascii_case(GRAPH_RESOURCE) || id.eq_ignore_ascii_case(GRAPH_APP_ID) {
        Some(GRAPH_RESOURCE)
    } else {
        None
    }
}

/// The resource appId for a canonical resource identifier.
pub(crate) fn resource_app_id(resource: &str) -> &'static str {
    if resource == EXCHANGE_RESOURCE { EXCHANGE_APP_ID } else { GRAPH_APP_ID }
}
