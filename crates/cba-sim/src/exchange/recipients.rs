//! The generated recipients of a tenant: mailbox `i` (0 is the admin, then `user00001`…) exists for
//! `i < mailboxes`, with department `DEPARTMENTS[i % 4]`. Nothing is stored but what Set-Mailbox changed, so
//! 10,000 mailboxes cost nothing until read. Get-Mailbox, Get-User and Get-Recipient are three views of them.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::ids;
use crate::state::Tenant;

/// The departments seeded mailboxes cycle through (so management scopes have something to select).
pub(crate) const DEPARTMENTS: [&str; 4] = ["Sales", "Marketing", "Engineering", "Finance"];

/// Properties Set-Mailbox takes besides Identity: CustomAttribute1..15 (strings) and one switch-like boolean.
pub(crate) fn settable_mailbox_property(name: &str) -> Option<String> {
    if name.eq_ignore_ascii_case("HiddenFromAddressListsEnabled") {
        return Some("HiddenFromAddressListsEnabled".to_string());
    }
    let n: u8 =
        name.get(..15).filter(|p| p.eq_ignore_ascii_case("CustomAttribute")).and_then(|_| name[15..].parse().ok())?;
    (1..=15).contains(&n).then(|| format!("CustomAttribute{n}"))
}

/// The generated mailboxes of a tenant, with what Set-Mailbox changed laid over them.
pub(crate) struct Mailboxes<'t> {
    pub(crate) tenant: &'t Tenant,
    pub(crate) edits: &'t HashMap<(String, usize), Map<String, Value>>,
}

impl Mailboxes<'_> {
    pub(crate) fn count(&self) -> usize {
        self.tenant.mailboxes
    }

    pub(crate) fn alias(index: usize) -> String {
        if index == 0 { "admin".into() } else { format!("user{index:05}") }
    }

    pub(crate) fn display_name(index: usize) -> String {
        if index == 0 { "Sim Admin".into() } else { format!("User {index:05}") }
    }

    pub(crate) fn department(index: usize) -> &'static str {
        DEPARTMENTS[index % DEPARTMENTS.len()]
    }

    pub(crate) fn object_id(&self, index: usize) -> String {
        ids::derived_guid(&self.tenant.id, index as u64)
    }

    fn address(&self, index: usize) -> String {
        format!("{}@{}", Self::alias(index), self.tenant.domain)
    }

    fn edits_of(&self, index: usize) -> Option<&Map<String, Value>> {
        self.edits.get(&(self.tenant.id.clone(), index))
    }

    /// The value of an OPATH property (opath.rs) on mailbox `index`; `None` when not set.
    pub(crate) fn property(&self, index: usize, name: &str) -> Option<String> {
        match name {
            "Department" => Some(Self::department(index).to_string()),
            "RecipientTypeDetails" => Some("UserMailbox".to_string()),
            "PrimarySmtpAddress" => Some(self.address(index)),
            custom => self.edits_of(index)?.get(custom).and_then(Value::as_str).map(str::to_string),
        }
    }

    /// What Get-Mailbox returns.
    pub(crate) fn get(&self, index: usize) -> Value {
        let alias = Self::alias(index);
        let domain = &self.tenant.domain;
        let address = self.address(index);
        let guid = ids::derived_guid(&self.tenant.id, (index as u64) | (1 << 40));
        let mut mailbox = json!({
            "ExternalDirectoryObjectId": self.object_id(index),
            "UserPrincipalName": address,
            "Alias": alias,
            "DisplayName": Self::display_name(index),
            "Name": alias,
            "Identity": alias,
            "Id": alias,
            "PrimarySmtpAddress": address,
            "EmailAddresses": [format!("SMTP:{address}")],
            "RecipientType": "UserMailbox",
            "RecipientTypeDetails": "UserMailbox",
            "Guid": guid,
            "ExchangeGuid": guid,
            "ExchangeVersion": "0.20 (15.0.0.0)",
            "DistinguishedName": format!("CN={alias},OU={domain},OU=Microsoft Exchange Hosted Organizations,DC=NAMPR01A001,DC=PROD,DC=OUTLOOK,DC=COM"),
            "OrganizationId": format!("NAMPR01A001.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/{domain} - NAMPR01A001.PROD.OUTLOOK.COM/ConfigurationUnits/{domain}/Configuration"),
            "IsMailboxEnabled": true,
        });
        if let (Some(edits), Value::Object(fields)) = (self.edits_of(index), &mut mailbox) {
            fields.extend(edits.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        mailbox
    }

    /// What Get-User returns: the mailbox owner as a user (Department lives here, not on the mailbox).
    pub(crate) fn user(&self, index: usize) -> Value {
        let alias = Self::alias(index);
        let address = self.address(index);
        json!({
            "ExternalDirectoryObjectId": self.object_id(index),
            "UserPrincipalName": address,
            "WindowsEmailAddress": address,
            "PrimarySmtpAddress": address,
            "DisplayName": Self::display_name(index),
            "Name": alias,
            "Identity": alias,
            "Id": alias,
            "Department": Self::department(index),
            "RecipientType": "UserMailbox",
            "RecipientTypeDetails": "UserMailbox",
            "Guid": ids::derived_guid(&self.tenant.id, (index as u64) | (1 << 41)),
        })
    }

    /// What Get-Recipient returns: the common recipient properties, custom attributes included.
    pub(crate) fn recipient(&self, index: usize) -> Value {
        let alias = Self::alias(index);
        let address = self.address(index);
        let mut recipient = json!({
            "ExternalDirectoryObjectId": self.object_id(index),
            "Alias": alias,
            "DisplayName": Self::display_name(index),
            "Name": alias,
            "Identity": alias,
            "Id": alias,
            "PrimarySmtpAddress": address,
            "EmailAddresses": [format!("SMTP:{address}")],
            "Department": Self::department(index),
            "RecipientType": "UserMailbox",
            "RecipientTypeDetails": "UserMailbox",
            "Guid": ids::derived_guid(&self.tenant.id, (index as u64) | (1 << 40)),
        });
        if let (Some(edits), Value::Object(fields)) = (self.edits_of(index), &mut recipient) {
            fields.extend(
                edits.iter().filter(|(k, _)| k.starts_with("CustomAttribute")).map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        recipient
    }

    /// Resolve an identity the way Get-Mailbox does: alias, name, address, UPN, display name or GUID.
    pub(crate) fn find(&self, identity: &str) -> Option<usize> {
        let count = self.tenant.mailboxes;
        let wanted = identity.trim().to_ascii_lowercase();
        let local = wanted.split_once('@').map_or(wanted.as_str(), |(local, domain)| {
            if domain == self.tenant.domain.to_ascii_lowercase() { local } else { "" }
        });
        let index = if local == "admin" || wanted == "sim admin" {
            Some(0)
        } else if let Some(n) = local.strip_prefix("user").filter(|n| n.len() == 5) {
            n.parse::<usize>().ok().filter(|n| *n > 0)
        } else if let Some(n) = wanted.strip_prefix("user ").filter(|n| n.len() == 5) {
            n.parse::<usize>().ok().filter(|n| *n > 0)
        } else if ids::is_guid(&wanted) {
            (0..count).find(|i| {
                ids::derived_guid(&self.tenant.id, *i as u64) == wanted
                    || ids::derived_guid(&self.tenant.id, (*i as u64) | (1 << 40)) == wanted
                    || ids::derived_guid(&self.tenant.id, (*i as u64) | (1 << 41)) == wanted
            })
        } else {
            None
        };
        index.filter(|i| *i < count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settable_properties() {
        assert_eq!(settable_mailbox_property("customattribute7").as_deref(), Some("CustomAttribute7"));
        assert_eq!(settable_mailbox_property("CustomAttribute15").as_deref(), Some("CustomAttribute15"));
        for no in ["CustomAttribute0", "CustomAttribute16", "CustomAttribute", "CustomAttributeX", "DisplayName"] {
            assert_eq!(settable_mailbox_property(no), None, "{no}");
        }
    }

    #[test]
    fn departments_cycle() {
        let got: Vec<&str> = (0..6).map(Mailboxes::department).collect();
        assert_eq!(got, ["Sales", "Marketing", "Engineering", "Finance", "Sales", "Marketing"]);
    }
}
