//! Identifiers in the shapes the real services use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A random GUID, lowercase with dashes (object ids, app ids, key ids, trace ids).
pub(crate) fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An opaque id like the ones Graph gives app role and directory role assignments (43 base64url chars).
pub(crate) fn opaque() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `s` is a GUID in the usual 8-4-4-4-12 form.
pub(crate) fn is_guid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// A user code for the device-code flow: nine characters, upper-case letters and digits.
pub(crate) fn user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    uuid::Uuid::new_v4().as_bytes()[..9].iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect()
}

/// A stable GUID derived from a tenant id and an index (mailboxes are generated, not stored).
pub(crate) fn derived_guid(tenant_id: &str, index: u64) -> String {
    let base = uuid::Uuid::parse_str(tenant_id).map(|u| u.as_u128()).unwrap_or(0);
    let mixed = base ^ ((index as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
    // Keep it a well-formed version-4 GUID.
    let mixed = (mixed & !(0xF000u128 << 64) | (0x4000u128 << 64)) & !(0xC000u128 << 48) | (0x8000u128 << 48);
    uuid::Uuid::from_u128(mixed).to_string()
}
