//! Passwords (Argon2id, PHC strings) and random secrets: session ids, API tokens and one-time
//! passwords. Only hashes are stored: a session id or token as its SHA-256 (they are random and
//! long, so a fast hash is enough), a password as Argon2id with a per-password salt.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Argon2id with the crate's default (OWASP-recommended) cost: 19 MiB, 2 passes.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// True when `password` matches the stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the user does not exist, so that a wrong username costs as
/// long as a wrong password and does not reveal which usernames exist.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| hash_password("not a password of anyone").unwrap_or_default());
    &DUMMY
}

/// Checks a new password: long enough, not all one character.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(format!(
            "a password has at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err("a password is not one character repeated".into());
    }
    Ok(())
}

/// The key that lets whoever uploaded a photo read it back without logging in (the snap-and-report
/// page shows a queued report's photos from the server): HMAC-SHA256 of the photo id under the
/// service's secret, 128 bits in hex. Whoever uploads the same bytes again gets the same key.
pub fn photo_key(secret: &str, photo_id: &str) -> String {
    use hmac::{Hmac, Mac};
    #[allow(clippy::expect_used)] // HMAC takes a key of any length: this never fails
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"photo:");
    mac.update(photo_id.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// True when `key` is `photo_id`'s key, compared in constant time.
pub fn is_photo_key(secret: &str, photo_id: &str, key: &str) -> bool {
    let expected = photo_key(secret, photo_id);
    expected.len() == key.len()
        && expected
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A random secret of `bytes` bytes, URL-safe base64 without padding.
pub fn random_secret(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A one-time password people can type: 12 characters without look-alikes (0/O, 1/l/I).
pub fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// SHA-256, lowercase hex: how session ids, tokens and API keys are stored and looked up, and
/// how an uploaded photo's bytes are recognised.
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(data.as_ref()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_photo_key_belongs_to_one_photo_and_one_secret() {
        let id = "0123456789abcdef0123456789abcdef";
        let key = super::photo_key("s3cret", id);
        assert_eq!(key.len(), 32);
        assert!(super::is_photo_key("s3cret", id, &key));
        assert!(!super::is_photo_key(
            "s3cret",
            "fedcba9876543210fedcba9876543210",
            &key
        ));
        assert!(!super::is_photo_key("another", id, &key));
        assert!(!super::is_photo_key("s3cret", id, &key[..31]));
        assert!(!super::is_photo_key("s3cret", id, ""));
    }

    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let h = hash_password("网格化管理 2026").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("网格化管理 2026", &h));
        assert!(!verify_password("网格化管理 2025", &h));
        assert!(!verify_password("x", "not a hash"));
        // Two hashes of one password differ (salted).
        assert_ne!(h, hash_password("网格化管理 2026").unwrap());
        assert!(!verify_password("anything", dummy_hash()));
    }

    #[test]
    fn new_passwords_are_checked() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("aaaaaaaaaaaa").is_err());
        assert!(check_new_password("correct horse").is_ok());
    }

    #[test]
    fn secrets_are_random_and_hash_to_hex() {
        let a = random_secret(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_secret(32));
        assert_eq!(sha256_hex("abc").len(), 64);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let otp = one_time_password();
        assert_eq!(otp.len(), 12);
        assert!(otp
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c)));
    }
}
