//! The troubleshooting page and the AADSTS code list must not drift apart.

use std::path::PathBuf;

use cba_token::{AADSTS_CODES, aadsts_meaning};

fn page() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/troubleshooting-aadsts.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_known_code_is_documented_and_every_documented_code_is_known() {
    let page = page();
    for code in AADSTS_CODES {
        assert!(aadsts_meaning(*code).is_some(), "AADSTS{code} is listed but has no meaning");
        assert!(page.contains(&format!("## AADSTS{code}")), "docs/troubleshooting-aadsts.md lacks AADSTS{code}");
    }
    let documented: Vec<u32> = page
        .lines()
        .filter_map(|l| l.strip_prefix("## AADSTS"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    for code in documented {
        assert!(AADSTS_CODES.contains(&code), "AADSTS{code} is documented but not in AADSTS_CODES");
    }
}
