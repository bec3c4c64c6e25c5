//! RFC 7512 URIs: what is read, what is refused, and what is written back.

use std::path::PathBuf;

use cba_pkcs11::{Error, KeyUri};

fn parse(text: &str) -> KeyUri {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn path_and_query_attributes_are_read_and_decoded() {
    let uri = parse(
        "pkcs11:token=cba;object=contoso%20exo;id=%01%a2%FF;type=private;serial=42;slot-id=7\
         ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/cba/pin",
    );
    assert_eq!(uri.token.as_deref(), Some("cba"));
    assert_eq!(uri.object.as_deref(), Some("contoso exo"));
    assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xA2, 0xFF][..]));
    assert_eq!(uri.object_type.as_deref(), Some("private"));
    assert_eq!(uri.serial.as_deref(), Some("42"));
    assert_eq!(uri.slot_id, Some(7));
    assert_eq!(uri.module_path, Some(PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")));
    assert_eq!(uri.pin_source, Some(PathBuf::from("/run/cba/pin")));
    assert_eq!(parse(&uri.to_string()), uri, "written back and read again: {uri}");
}

#[test]
fn the_written_form_encodes_what_must_be_encoded() {
    let uri = parse("pkcs11:object=a%3Bb%3Fc;id=%00%41");
    assert_eq!(uri.object.as_deref(), Some("a;b?c"));
    assert_eq!(uri.to_string(), "pkcs11:object=a%3Bb%3Fc;id=%00%41");
}

#[test]
fn a_pin_in_the_uri_is_refused_without_echoing_it() {
    for text in ["pkcs11:token=cba?pin-value=123456", "pkcs11:token=cba;pin-value=123456"] {
        let err = text.parse::<KeyUri>().unwrap_err();
        assert!(matches!(err, Error::PinInUri), "{text}: {err:?}");
        assert!(!err.to_string().contains("123456"), "{err}");
    }
}

#[test]
fn malformed_uris_say_what_is_wrong() {
    let check = |text: &str, expected: &str| {
        let err = text.parse::<KeyUri>().unwrap_err();
        assert!(matches!(err, Error::Uri { .. }), "{text}: {err:?}");
        assert!(err.to_string().contains(expected), "{text}: {err}");
    };
    check("token=cba", "does not start with \"pkcs11:\"");
    check("pkcs11:token", "\"token\" is not NAME=VALUE");
    check("pkcs11:object=%4", "two hex digits");
    check("pkcs11:tokn=cba", "unknown path attribute \"tokn\"");
    check("pkcs11:token=a;token=b", "token is given twice");
    check("pkcs11:slot-id=x", "slot-id");
    check("pkcs11:token=cba?module-path=a&module-path=b", "given twice");
    check("pkcs11:token=cba?pin-source=https://example.com/pin", "only file:PATH");
    check("pkcs11:token=cba?object=x", "unknown query attribute");
}

#[test]
fn vendor_attributes_are_ignored() {
    assert_eq!(parse("pkcs11:token=cba;x-vendor=1").token.as_deref(), Some("cba"));
}

#[test]
fn pins_print_redacted_and_lose_the_line_ending_of_their_file() {
    let pin = cba_pkcs11::Pin::from_file_contents("1234\r\n");
    assert_eq!(pin.expose(), "1234");
    assert_eq!(format!("{pin:?}"), "Pin([redacted])");
    assert_eq!(cba_pkcs11::Pin::from_file_contents("12 34").expose(), "12 34");
}
