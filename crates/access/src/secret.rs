//! Random secrets (session ids, CSRF tokens, API tokens, OAuth codes and client secrets) and the
//! hashes stored in their place; the PKCE code challenge (RFC 7636).
//!
//! Secrets have 256 bits from the operating system's generator, so a plain SHA-256 is a safe
//! stored form: unlike passwords they cannot be guessed, and a stolen table of hashes gives no
//! working session or token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of API tokens, so that one leaked into a file or a log is recognisable.
pub const API_TOKEN_PREFIX: &str = "rpt_";

/// 32 random bytes, base64url without padding (43 characters).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new API token: `rpt_` and a secret.
pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", new_secret())
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The PKCE `S256` code challenge of a code verifier (RFC 7636 §4.2):
/// BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), without padding.
pub fn pkce_s256(code_verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(hash_secret(code_verifier))
}

/// Whether a PKCE code verifier is well formed (RFC 7636 §4.1): 43 to 128 characters of the
/// unreserved set `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_pkce_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Compare two secrets without leaking where they differ through timing.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hash_stably() {
        let a = new_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_secret());
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert!(new_api_token().starts_with("rpt_"));
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b_and_verifiers_are_checked() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            pkce_s256(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_pkce_verifier(verifier));
        assert!(is_pkce_verifier(&"a~._-".repeat(26)[..128]));
        assert!(!is_pkce_verifier(&verifier[..42]));
        assert!(!is_pkce_verifier(&"a".repeat(129)));
        assert!(!is_pkce_verifier(&format!("{}+", &verifier[..43])));
        assert!(!is_pkce_verifier(&format!("{} ", &verifier[..43])));
    }
}
