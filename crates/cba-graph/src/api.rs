//! Typed calls (docs/wire-formats.md §3). Each names its [`Replication`] choice; see the crate docs for why.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::client::{Request, filter_eq, guid, odata_string, segment};
use crate::model::{
    AppRoleAssignment, Application, Created, Deleted, KeyCredential, NewAppRoleAssignment, NewApplication,
    Organization, RoleAssignment, ServicePrincipal,
};
use crate::{Error, GraphClient, ProofSigner, Replication};

/// Turn a 404 into `Ok(None)`.
fn optional<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Check an application alternate key before it goes into a path: `(uniqueName='…')`, quotes doubled.
fn unique_name_key(value: &str) -> Result<String, Error> {
    let invalid = |reason: &str| Error::Invalid { what: "uniqueName", value: value.to_string(), reason: reason.into() };
    if value.is_empty() || value.chars().count() > 256 {
        return Err(invalid("1 to 256 characters"));
    }
    if value.contains(['/', '?', '#', '%', '\\']) || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("no spaces, control characters or / ? # % \\"));
    }
    Ok(format!("/applications(uniqueName={})", odata_string(value)))
}

/// A 404 on DELETE means an earlier run (or the app's cascade) removed it.
fn deleted(result: Result<crate::client::Response, Error>) -> Result<Deleted, Error> {
    match result {
        Ok(_) => Ok(Deleted::Deleted),
        Err(e) if e.is_not_found() => Ok(Deleted::AlreadyGone),
        Err(e) => Err(e),
    }
}

/// The duplicate answer of an app role grant: 400 `Request_BadRequest` "Permission being assigned already
/// exists on the object." The code is generic, so the message is matched (docs/wire-formats.md §3).
fn is_duplicate_grant(e: &Error) -> bool {
    matches!(e.api(), Some((400, _, message)) if message.to_ascii_lowercase().contains("already exists"))
}

/// The duplicate answer of a directory role assignment is UNVERIFIED (docs/wire-formats.md §3): 409 of any kind, or a
/// 400 that says the assignment already exists or names a conflict ("A conflicting object with one or more
/// of the specified property values is present in the directory.", the directory's usual duplicate answer).
fn is_duplicate_role_assignment(e: &Error) -> bool {
    match e.api() {
        Some((409, _, _)) => true,
        Some((400, code, message)) => {
            let message = message.to_ascii_lowercase();
            message.contains("already exist")
                || message.contains("conflicting object")
                || code.contains("Conflict")
                || code.contains("MultipleObjectsWithSameKeyValue")
        }
        _ => false,
    }
}

impl GraphClient {
    // ---- applications -------------------------------------------------------------------------

    /// `POST /applications`. Not idempotent: a 5xx or timeout is NOT retried here (the app may exist);
    /// [`provision::apply`](crate::provision::apply) recovers by looking the name up before trying again.
    pub async fn create_application(&self, app: &NewApplication) -> Result<Application, Error> {
        let body = serde_json::to_value(app).map_err(|source| Error::Decode {
            method: "POST".into(),
            path: "/applications".into(),
            source,
        })?;
        let mut request = Request::new(Method::POST, "/applications").json(body);
        request.idempotent = false;
        self.send_json(&request).await
    }

    /// `PATCH /applications(uniqueName='...')` with `Prefer: create-if-missing` (application-upsert.md): 201 +
    /// the new app ([`Created::Created`]) when no app holds `unique_name`, else 204 after updating the one that
    /// does ([`Created::AlreadyExisted`]; read it with
    /// [`application_by_unique_name`](Self::application_by_unique_name)). On 204 the body was applied as an
    /// update: its `keyCredentials` REPLACE the app's, its `requiredResourceAccess` likewise.
    ///
    /// Idempotent, unlike [`create_application`](Self::create_application), so a 5xx or timeout is retried: choose
    /// and record the key before the call, and a rerun after a crash finds the app instead of making a second.
    /// Replication does not concern the upsert itself (Graph finds an app it has just made); reads by the key do.
    pub async fn upsert_application(
        &self,
        unique_name: &str,
        app: &NewApplication,
    ) -> Result<Created<Application>, Error> {
        let path = unique_name_key(unique_name)?;
        let body = serde_json::to_value(app).map_err(|source| Error::Decode {
            method: "PATCH".into(),
            path: path.clone(),
            source,
        })?;
        let mut request = Request::new(Method::PATCH, path).json(body);
        request.prefer = Some("create-if-missing");
        let response = self.send(&request).await?;
        if response.status == StatusCode::CREATED {
            Ok(Created::Created(self.decode(&request, &response.body)?))
        } else {
            Ok(Created::AlreadyExisted)
        }
    }

    /// `GET /applications(uniqueName='...')`, `None` on 404. Right after an upsert made the app, pass
    /// [`Replication::Expected`]: the read answers 404 until the app has replicated.
    pub async fn application_by_unique_name(
        &self,
        unique_name: &str,
        replication: Replication,
    ) -> Result<Option<Application>, Error> {
        let path = unique_name_key(unique_name)?;
        optional(self.send_json(&Request::get(path).replication(replication)).await)
    }

    /// `GET /applications/{id}`.
    pub async fn get_application(&self, object_id: &str, replication: Replication) -> Result<Application, Error> {
        let id = guid("application object id", object_id)?;
        self.send_json(&Request::get(format!("/applications/{id}")).replication(replication)).await
    }

    /// `GET /applications(appId='...')`.
    pub async fn get_application_by_app_id(
        &self,
        app_id: &str,
        replication: Replication,
    ) -> Result<Application, Error> {
        let app_id = guid("appId", app_id)?;
        self.send_json(&Request::get(format!("/applications(appId='{app_id}')")).replication(replication)).await
    }

    /// `GET /applications?$filter=displayName eq '...'` (quotes doubled), every page.
    pub async fn find_applications_by_name(&self, display_name: &str) -> Result<Vec<Application>, Error> {
        self.list(Request::get(format!("/applications?{}", filter_eq("displayName", display_name)))).await
    }

    /// `GET /applications/{id}?$select=keyCredentials`: the certificates WITH their `key` (what a PATCH must
    /// resend). Graph throttles this select at 150 requests/min/tenant.
    pub async fn get_key_credentials(
        &self,
        object_id: &str,
        replication: Replication,
    ) -> Result<Vec<KeyCredential>, Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Keys {
            #[serde(default)]
            key_credentials: Vec<KeyCredential>,
        }
        let id = guid("application object id", object_id)?;
        let keys: Keys = self
            .send_json(&Request::get(format!("/applications/{id}?$select=keyCredentials")).replication(replication))
            .await?;
        Ok(keys.key_credentials)
    }

    /// `PATCH /applications/{id}` `{"keyCredentials":[...]}`: REPLACES the whole collection. Every entry
    /// must carry its `key`. Idempotent (same list, same result).
    pub async fn set_key_credentials(
        &self,
        object_id: &str,
        keys: &[KeyCredential],
        replication: Replication,
    ) -> Result<(), Error> {
        let id = guid("application object id", object_id)?;
        if let Some(k) = keys.iter().find(|k| k.key.is_none()) {
            return Err(Error::Invalid {
                what: "keyCredential",
                value: k.key_id.clone().unwrap_or_default(),
                reason: "no `key`: fetch the list with get_key_credentials before replacing it".into(),
            });
        }
        let request = Request::new(Method::PATCH, format!("/applications/{id}"))
            .json(json!({ "keyCredentials": keys }))
            .replication(replication);
        self.send(&request).await.map(drop)
    }

    /// `PATCH /applications/{id}` `{"signInAudience": …}`: who may sign in (switching a single-tenant app to
    /// [`MULTI_TENANT`](crate::wellknown::MULTI_TENANT) lets other tenants consent to it). Idempotent.
    pub async fn set_sign_in_audience(
        &self,
        object_id: &str,
        audience: &str,
        replication: Replication,
    ) -> Result<(), Error> {
        let id = guid("application object id", object_id)?;
        let request = Request::new(Method::PATCH, format!("/applications/{id}"))
            .json(json!({ "signInAudience": audience }))
            .replication(replication);
        self.send(&request).await.map(drop)
    }

    /// `POST /applications/{id}/addKey` with a proof signed by a certificate already on the app; needs no admin.
    /// A `keyId` is made here when `key` has none, so a retry after a lost answer is recognisable.
    pub async fn add_key(
        &self,
        object_id: &str,
        key: &KeyCredential,
        signer: &dyn ProofSigner,
        replication: Replication,
    ) -> Result<KeyCredential, Error> {
        let id = guid("application object id", object_id)?;
        let mut key = key.clone();
        let key_id = key.key_id.get_or_insert_with(|| uuid::Uuid::new_v4().to_string()).clone();
        let mut request = Request::new(Method::POST, format!("/applications/{id}/addKey"))
            .json(json!({ "keyCredential": key, "passwordCredential": null }))
            .replication(replication);
        request.proof = Some((signer, &id));
        match self.send_json(&request).await {
            Ok(added) => Ok(added),
            // Our own earlier attempt got through although its answer was lost.
            Err(e) if matches!(e.api(), Some((400, _, m)) if m.contains(&key_id) && m.contains("already exists")) => {
                let keys = self.get_application(&id, replication).await?.key_credentials;
                keys.into_iter().find(|k| k.key_id.as_deref() == Some(&key_id)).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /applications/{id}/removeKey` with a proof; a 404 (key or app gone) is [`Deleted::AlreadyGone`].
    pub async fn remove_key(
        &self,
        object_id: &str,
        key_id: &str,
        signer: &dyn ProofSigner,
        replication: Replication,
    ) -> Result<Deleted, Error> {
        let id = guid("application object id", object_id)?;
        let key_id = guid("keyId", key_id)?;
        let mut request = Request::new(Method::POST, format!("/applications/{id}/removeKey"))
            .json(json!({ "keyId": key_id }))
            .replication(replication);
        request.proof = Some((signer, &id));
        deleted(self.send(&request).await)
    }

    /// `DELETE /applications/{id}` (soft delete for 30 days; removes its service principal).
    pub async fn delete_application(&self, object_id: &str) -> Result<Deleted, Error> {
        let id = guid("application object id", object_id)?;
        deleted(self.send(&Request::new(Method::DELETE, format!("/applications/{id}"))).await)
    }

    // ---- service principals -------------------------------------------------------------------

    /// `POST /servicePrincipals` `{"appId":...}`. Prefer [`upsert_service_principal`](Self::upsert_service_principal).
    pub async fn create_service_principal(
        &self,
        app_id: &str,
        replication: Replication,
    ) -> Result<ServicePrincipal, Error> {
        let app_id = guid("appId", app_id)?;
        let request =
            Request::new(Method::POST, "/servicePrincipals").json(json!({ "appId": app_id })).replication(replication);
        self.send_json(&request).await
    }

    /// `PATCH /servicePrincipals(appId='...')` with `Prefer: create-if-missing`: 201 + the new principal, or
    /// 204 when it existed ([`Created::AlreadyExisted`]; fetch it by appId). Idempotent. Use
    /// [`Replication::Expected`] right after creating the app (400 `NoBackingApplicationObject`).
    pub async fn upsert_service_principal(
        &self,
        app_id: &str,
        replication: Replication,
    ) -> Result<Created<ServicePrincipal>, Error> {
        let app_id = guid("appId", app_id)?;
        let mut request = Request::new(Method::PATCH, format!("/servicePrincipals(appId='{app_id}')"))
            .json(json!({}))
            .replication(replication);
        request.prefer = Some("create-if-missing");
        let response = self.send(&request).await?;
        if response.status == StatusCode::CREATED {
            Ok(Created::Created(self.decode(&request, &response.body)?))
        } else {
            Ok(Created::AlreadyExisted)
        }
    }

    /// `GET /servicePrincipals(appId='...')`.
    pub async fn get_service_principal_by_app_id(
        &self,
        app_id: &str,
        replication: Replication,
    ) -> Result<ServicePrincipal, Error> {
        let app_id = guid("appId", app_id)?;
        self.send_json(&Request::get(format!("/servicePrincipals(appId='{app_id}')")).replication(replication)).await
    }

    /// `GET /servicePrincipals/{id}`.
    pub async fn get_service_principal(&self, id: &str, replication: Replication) -> Result<ServicePrincipal, Error> {
        let id = guid("service principal id", id)?;
        self.send_json(&Request::get(format!("/servicePrincipals/{id}")).replication(replication)).await
    }

    /// `GET /servicePrincipals?$filter=appId eq '...'`.
    pub async fn find_service_principals_by_app_id(&self, app_id: &str) -> Result<Vec<ServicePrincipal>, Error> {
        let app_id = guid("appId", app_id)?;
        self.list(Request::get(format!("/servicePrincipals?{}", filter_eq("appId", &app_id)))).await
    }

    /// `GET /servicePrincipals(appId='...')`, `None` on 404.
    pub async fn service_principal_for_app(
        &self,
        app_id: &str,
        replication: Replication,
    ) -> Result<Option<ServicePrincipal>, Error> {
        optional(self.get_service_principal_by_app_id(app_id, replication).await)
    }

    /// `GET /servicePrincipals(appId='...')?$select=id,appId,displayName,appRoles` (a resource's principal with
    /// the app roles it offers, without the rest of a large object), `None` on 404.
    pub async fn resource_service_principal(&self, app_id: &str) -> Result<Option<ServicePrincipal>, Error> {
        let app_id = guid("appId", app_id)?;
        let path = format!("/servicePrincipals(appId='{app_id}')?$select=id,appId,displayName,appRoles");
        optional(self.send_json(&Request::get(path)).await)
    }

    /// `GET /organization?$select=id,displayName,verifiedDomains`: the tenant the token acts in. Needs
    /// `User.Read` (delegated) or `Organization.Read.All` / `Directory.Read.All` (app-only).
    pub async fn organization(&self) -> Result<Organization, Error> {
        let request = Request::get("/organization?$select=id,displayName,verifiedDomains".to_string());
        let mut orgs: Vec<Organization> = self.list(request).await?;
        match orgs.len() {
            1 => Ok(orgs.remove(0)),
            n => Err(Error::Invalid {
                what: "Graph answer",
                value: format!("{n} organizations"),
                reason: "GET /organization must list exactly the token's tenant".into(),
            }),
        }
    }

    /// `DELETE /servicePrincipals/{id}`.
    pub async fn delete_service_principal(&self, id: &str) -> Result<Deleted, Error> {
        let id = guid("service principal id", id)?;
        deleted(self.send(&Request::new(Method::DELETE, format!("/servicePrincipals/{id}"))).await)
    }

    // ---- app role grants (admin consent to an application permission) ---------------------------

    /// `POST /servicePrincipals/{resourceId}/appRoleAssignedTo`. The duplicate answer ("Permission being
    /// assigned already exists on the object.") is [`Created::AlreadyExisted`]. Use [`Replication::Expected`]
    /// right after creating the client principal ("Not a valid reference update", 404).
    pub async fn grant_app_role(
        &self,
        grant: &NewAppRoleAssignment,
        replication: Replication,
    ) -> Result<Created<AppRoleAssignment>, Error> {
        let resource = guid("resource service principal id", &grant.resource_id)?;
        guid("principal id", &grant.principal_id)?;
        guid("app role id", &grant.app_role_id)?;
        let body = json!({
            "principalId": grant.principal_id,
            "resourceId": grant.resource_id,
            "appRoleId": grant.app_role_id,
        });
        let request = Request::new(Method::POST, format!("/servicePrincipals/{resource}/appRoleAssignedTo"))
            .json(body)
            .replication(replication);
        match self.send_json(&request).await {
            Ok(created) => Ok(Created::Created(created)),
            Err(e) if is_duplicate_grant(&e) => Ok(Created::AlreadyExisted),
            Err(e) => Err(e),
        }
    }

    /// `GET /servicePrincipals/{clientSpId}/appRoleAssignments`: the app roles this principal holds.
    pub async fn list_app_role_assignments(
        &self,
        principal_sp_id: &str,
        replication: Replication,
    ) -> Result<Vec<AppRoleAssignment>, Error> {
        let id = guid("service principal id", principal_sp_id)?;
        self.list(Request::get(format!("/servicePrincipals/{id}/appRoleAssignments")).replication(replication)).await
    }

    /// `DELETE /servicePrincipals/{resourceId}/appRoleAssignedTo/{id}` (revoke).
    pub async fn delete_app_role_assignment(
        &self,
        resource_sp_id: &str,
        assignment_id: &str,
    ) -> Result<Deleted, Error> {
        let resource = guid("resource service principal id", resource_sp_id)?;
        let id = segment("app role assignment id", assignment_id)?;
        deleted(
            self.send(&Request::new(Method::DELETE, format!("/servicePrincipals/{resource}/appRoleAssignedTo/{id}")))
                .await,
        )
    }

    // ---- directory role assignments -------------------------------------------------------------

    /// `POST /roleManagement/directory/roleAssignments` for the whole directory (`directoryScopeId` "/").
    /// `role_definition_id` takes a role template id. A duplicate-looking 409/400 is
    /// [`Created::AlreadyExisted`] (the real answer is unverified; list first).
    pub async fn assign_directory_role(
        &self,
        principal_id: &str,
        role_definition_id: &str,
        replication: Replication,
    ) -> Result<Created<RoleAssignment>, Error> {
        let principal = guid("principal id", principal_id)?;
        let role = guid("role definition id", role_definition_id)?;
        let body = json!({
            "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
            "roleDefinitionId": role,
            "principalId": principal,
            "directoryScopeId": "/",
        });
        let request =
            Request::new(Method::POST, "/roleManagement/directory/roleAssignments").json(body).replication(replication);
        match self.send_json(&request).await {
            Ok(created) => Ok(Created::Created(created)),
            Err(e) if is_duplicate_role_assignment(&e) => Ok(Created::AlreadyExisted),
            Err(e) => Err(e),
        }
    }

    /// `GET /roleManagement/directory/roleAssignments?$filter=principalId eq '...'`.
    pub async fn list_directory_role_assignments(
        &self,
        principal_id: &str,
        replication: Replication,
    ) -> Result<Vec<RoleAssignment>, Error> {
        let principal = guid("principal id", principal_id)?;
        let path = format!("/roleManagement/directory/roleAssignments?{}", filter_eq("principalId", &principal));
        self.list(Request::get(path).replication(replication)).await
    }

    /// `DELETE /roleManagement/directory/roleAssignments/{id}`.
    pub async fn delete_directory_role_assignment(&self, assignment_id: &str) -> Result<Deleted, Error> {
        let id = segment("role assignment id", assignment_id)?;
        deleted(
            self.send(&Request::new(Method::DELETE, format!("/roleManagement/directory/roleAssignments/{id}"))).await,
        )
    }

    // ---- lookups used by provisioning -----------------------------------------------------------

    /// `GET /applications/{id}` or `(appId='...')`, `None` on 404.
    pub(crate) async fn application(
        &self,
        key: AppKey<'_>,
        replication: Replication,
    ) -> Result<Option<Application>, Error> {
        let result = match key {
            AppKey::ObjectId(id) => self.get_application(id, replication).await,
            AppKey::AppId(id) => self.get_application_by_app_id(id, replication).await,
        };
        optional(result)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum AppKey<'a> {
    ObjectId(&'a str),
    AppId(&'a str),
}
