//! `jwt::decode` and expiry in words.

use cba_token::Error;
use cba_token::jwt::{decode, describe_expiry};
use serde_json::json;
use time::Duration;

use crate::support::{fake_jwt, now};

#[test]
fn decodes_header_and_claims_without_verification() {
    let token = fake_jwt(
        json!({"aud": "https://outlook.office365.com", "roles": ["Exchange.ManageAsApp"], "exp": 1_800_000_000}),
    );
    let d = decode(&format!("  Bearer {token}\n")).unwrap();
    assert_eq!(d.header["alg"], "RS256");
    assert_eq!(d.claim_str("aud"), Some("https://outlook.office365.com"));
    assert_eq!(d.claim_strings("roles"), vec!["Exchange.ManageAsApp"]);
    assert!(d.claim_strings("wids").is_empty());
    assert_eq!(d.expires_at().unwrap().unix_timestamp(), 1_800_000_000);
}

#[test]
fn refuses_what_is_not_a_jws() {
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let cases = [
        "".to_owned(),
        "one.two".to_owned(),
        "a.b.c.d.e".to_owned(),
        "!!!.e30.x".to_owned(),
        format!("{}.{}.x", b64("not json"), b64("{}")),
        format!("{}.{}.x", b64("[1]"), b64("{}")),
        format!("{}.{}.x", b64(r#"{"typ":"JWT"}"#), b64("{}")),
    ];
    for case in cases {
        assert!(matches!(decode(&case), Err(Error::InvalidToken { .. })), "{case:?}");
    }
    let e = decode("a.b.c.d.e").unwrap_err().to_string();
    assert!(e.contains("encrypted"), "{e}");
}

#[test]
fn expiry_in_words() {
    let at = now();
    let check = |secs: i64, expected: &str| assert_eq!(describe_expiry(at + Duration::seconds(secs), at), expected);
    check(59 * 60 + 30, "expires in 59 minutes");
    check(3600, "expires in 1 hour");
    check(3600 + 120, "expires in 1 hour 2 minutes");
    check(45, "expires in 45 seconds");
    check(-1, "expired 1 second ago");
    check(-(2 * 86_400 + 3 * 3600), "expired 2 days 3 hours ago");
}
