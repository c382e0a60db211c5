//! Password policy and hashing.
//!
//! Policy (NIST SP 800-63B §5.1.1.2, with a longer minimum for health data): at least 12
//! characters and at most 128, not a known common or breached password (a small built-in list,
//! also matched after stripping leading and trailing digits and symbols), not built from the
//! account's own e-mail or name, and not a run of one character or a keyboard sequence.
//! Composition rules ("one upper case, one digit…") are deliberately not imposed (800-63B).
//!
//! Hashing: Argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane), stored
//! as a PHC string so that parameters can be raised later and old hashes still verify.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::AccessError;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 128;

const COMMON: &str = include_str!("common-passwords.txt");

fn is_common(candidate: &str) -> bool {
    let lower = candidate.to_lowercase();
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    COMMON
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|w| w == lower || (!core.is_empty() && w == core))
}

/// True when every step between neighbouring characters is the same +1/-1 (abcdef…, 98765…),
/// or the text is one character repeated.
fn is_sequence(s: &str) -> bool {
    let chars: Vec<i64> = s.chars().map(|c| c as i64).collect();
    let steps: Vec<i64> = chars.windows(2).map(|w| w[1] - w[0]).collect();
    steps.iter().all(|d| *d == 0) || steps.iter().all(|d| *d == 1) || steps.iter().all(|d| *d == -1)
}

/// Check `password` against the policy for the account with this e-mail and name.
pub fn check_policy(password: &str, email_local_part: &str, name: &str) -> Result<(), AccessError> {
    let weak = |why: &str| Err(AccessError::WeakPassword(why.to_owned()));
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return weak(&format!("it must be at least {MIN_LENGTH} characters long"));
    }
    if length > MAX_LENGTH {
        return weak(&format!("it must be at most {MAX_LENGTH} characters long"));
    }
    if is_common(password) {
        return weak("it is a commonly used password");
    }
    if is_sequence(password) {
        return weak("it is a repeated character or a simple sequence");
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return weak("it uses fewer than 5 different characters");
    }
    let lower = password.to_lowercase();
    let personal = std::iter::once(email_local_part.to_lowercase())
        .chain(name.split_whitespace().map(str::to_lowercase))
        .filter(|p| p.chars().count() >= 4);
    for part in personal {
        if lower.contains(&part) {
            return weak("it contains the account's name or e-mail address");
        }
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The Argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AccessError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccessError::Hashing(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccessError::Hashing(e.to_string()))
}

/// Whether `password` matches the stored PHC string (constant time in the hash comparison).
pub fn verify_password(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => hasher().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the account does not exist, so that a sign-in for an unknown
/// e-mail costs as long as one with a wrong password (no account enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("an unguessable placeholder").expect("hashing works"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_sequential_and_personal_passwords_are_refused() {
        for (pw, why) in [
            ("short", "at least 12"),
            ("Password2024!", "commonly used"),
            ("qwertyuiop123", "commonly used"),
            ("iloveyou123", "at least 12"),
            ("!!Welcome2026", "commonly used"),
            ("abcdefghijklm", "sequence"),
            ("aaaaaaaaaaaaaa", "sequence"),
            ("ababababababab", "fewer than 5"),
            ("ana.lima-is-great", "name or e-mail"),
            ("Marquez rules the ward", "name or e-mail"),
        ] {
            let err = check_policy(pw, "ana.lima", "Ana Marquez")
                .unwrap_err()
                .to_string();
            let err_lower = err.to_lowercase();
            assert!(err_lower.contains(why), "{pw}: {err}");
        }
        check_policy("correct horse battery staple", "ana.lima", "Ana Lima").unwrap();
    }

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let a = hash_password("correct horse battery staple").unwrap();
        let b = hash_password("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password(&a, "correct horse battery staple"));
        assert!(!verify_password(&a, "correct horse battery stapler"));
        assert!(!verify_password("not a hash", "x"));
    }
}
