//! What a cmdlet's name says: whether it is a `Verb-Noun` name at all, and whether running it twice is harmless.

use crate::ParamError;

/// Check that `name` is a cmdlet name: `Verb-Noun`, letters for the verb and letters or digits for the noun
/// (`Get-Mailbox`, `Get-EXOMailbox2`). The name also goes into the `X-CmdletName` header, so this keeps
/// anything else (spaces, line breaks) out of it.
///
/// ```
/// assert!(cba_exo::check_cmdlet_name("Get-Mailbox").is_ok());
/// assert!(cba_exo::check_cmdlet_name("Get-Mail box").is_err());
/// ```
pub fn check_cmdlet_name(name: &str) -> Result<(), ParamError> {
    let ok = name.split_once('-').is_some_and(|(verb, noun)| {
        !verb.is_empty()
            && !noun.is_empty()
            && verb.chars().all(|c| c.is_ascii_alphabetic())
            && noun.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if ok { Ok(()) } else { Err(ParamError::cmdlet_name(name)) }
}

/// The verbs of cmdlets that only read: `Get` and `Test` (any case).
///
/// Everything else is treated as a write, including `Search-*` (`Search-Mailbox -DeleteContent` deletes, and
/// `Search-UnifiedAuditLog -SessionCommand ReturnNextPreviewPage` moves a server-side cursor) and `Export-*`,
/// `Start-*`, `Invoke-*`. The client retries a read after any transient failure, but a write only when the
/// failure shows it did not run ([`ExoClient`](crate::ExoClient) has the rule).
pub const READ_ONLY_VERBS: &[&str] = &["Get", "Test"];

/// Whether `cmdlet` only reads (its verb is one of [`READ_ONLY_VERBS`]), so sending it twice is harmless.
///
/// ```
/// assert!(cba_exo::is_read_only("Get-Mailbox"));
/// assert!(cba_exo::is_read_only("test-OAuthConnectivity"));
/// assert!(!cba_exo::is_read_only("Set-Mailbox"));
/// assert!(!cba_exo::is_read_only("Search-UnifiedAuditLog"));
/// ```
pub fn is_read_only(cmdlet: &str) -> bool {
    let verb = cmdlet.split_once('-').map_or(cmdlet, |(verb, _)| verb);
    READ_ONLY_VERBS.iter().any(|v| v.eq_ignore_ascii_case(verb))
}

/// The `Get-` cmdlet that shows what `cmdlet` changed, by the PowerShell naming convention (`Set-Mailbox` →
/// `Get-Mailbox`, `Add-MailboxPermission` → `Get-MailboxPermission`). `None` for a name without a noun.
///
/// ```
/// assert_eq!(cba_exo::matching_get_cmdlet("Set-Mailbox").as_deref(), Some("Get-Mailbox"));
/// ```
pub fn matching_get_cmdlet(cmdlet: &str) -> Option<String> {
    let (_, noun) = cmdlet.split_once('-')?;
    (!noun.is_empty()).then(|| format!("Get-{noun}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdlet_names() {
        assert!(check_cmdlet_name("Get-Mailbox").is_ok());
        assert!(check_cmdlet_name("Get-EXOMailbox2").is_ok());
        for bad in ["Get", "Get-", "-Mailbox", "Get-Mail box", "Get-Mailbox\r\nX: y"] {
            let e = check_cmdlet_name(bad).unwrap_err();
            assert_eq!(e.kind(), &crate::ParamErrorKind::InvalidCmdletName { name: bad.to_string() }, "{bad:?}");
        }
        assert_eq!(
            check_cmdlet_name("Get").unwrap_err().to_string(),
            r#""Get" is not a cmdlet name (Verb-Noun, e.g. Get-Mailbox)"#
        );
    }

    #[test]
    fn reads_and_writes() {
        for read in ["Get-Mailbox", "GET-mailbox", "Test-MAPIConnectivity", "Get-EXOMailbox"] {
            assert!(is_read_only(read), "{read}");
        }
        for write in [
            "Set-Mailbox",
            "New-Mailbox",
            "Add-MailboxPermission",
            "Remove-RoleGroup",
            "Enable-Mailbox",
            "Search-Mailbox",
            "Getx-Y",
        ] {
            assert!(!is_read_only(write), "{write}");
        }
        assert_eq!(matching_get_cmdlet("Add-MailboxPermission").as_deref(), Some("Get-MailboxPermission"));
        assert_eq!(matching_get_cmdlet("Remove-"), None);
    }
}
