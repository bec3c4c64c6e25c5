//! cba-pkcs11 integration tests: URI parsing, and keys in a real SoftHSM2 token.

mod softhsm;
mod uri;
