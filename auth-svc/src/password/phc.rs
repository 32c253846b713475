//! argon2id password hashes as PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, the
//! PHC string format that `argon2::PasswordHasher` writes too), computed in the calling thread's
//! reusable argon2 memory.
//!
//! Each thread allocates its argon2 memory (19 MiB) once and reuses it for every hash: glibc
//! keeps freed 19 MiB blocks in per-thread arenas, so allocating per hash on up to 512 blocking
//! threads grew the process by hundreds of MiB. [`super::pool`] runs these functions on a few
//! dedicated threads.

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// argon2id memory cost in KiB (OWASP's first recommended configuration: m=19 MiB, t=2, p=1).
pub const MEMORY_KIB: u32 = 19_456;
/// argon2id passes over the memory.
pub const ITERATIONS: u32 = 2;
/// argon2id lanes.
pub const PARALLELISM: u32 = 1;
/// Length of the hash we store, in bytes (argon2's default, which `params()` leaves in place).
const OUTPUT_BYTES: usize = Params::DEFAULT_OUTPUT_LEN;
/// Room for a decoded salt: PHC salts are at most 64 bytes.
const SALT_BUFFER_BYTES: usize = 64;

/// Why a password could not be hashed. Hashing our own parameters fails only on a bug.
#[derive(Debug, thiserror::Error)]
pub enum PhcError {
    #[error("argon2 computation failed")]
    Argon2(#[from] argon2::Error),
    #[error("PHC string encoding failed")]
    Encoding(#[from] argon2::password_hash::Error),
}

fn params() -> Params {
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).expect("valid argon2 parameters")
}

thread_local! {
    /// The thread's argon2 memory, allocated once and reused by every hash on that thread.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Computes the raw argon2 output into `out` with the thread's reusable memory.
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let count = params.block_count();
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if blocks.len() < count {
            blocks.resize(count, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..count])
    })
}

/// `password` hashed with a fresh random salt and our parameters, as a PHC string. Blocks for
/// the whole computation (20-50 ms): call it on a hashing thread.
pub fn hash(password: &[u8]) -> Result<String, PhcError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; SALT_BUFFER_BYTES];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf)?;
    let params = params();
    let mut out = [0u8; OUTPUT_BYTES];
    compute(
        &Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
        &params,
        password,
        salt_bytes,
        &mut out,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, computed with the algorithm, version and
/// parameters stored in it (so older hashes keep working after a parameter change). A string
/// that is not a valid argon2 PHC string matches nothing. Blocks like [`hash`].
pub fn verify(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let version = parsed.version.and_then(|v| Version::try_from(v).ok()).unwrap_or_default();
    let mut salt_buf = [0u8; SALT_BUFFER_BYTES];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else { return false };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    if compute(&argon, &params, password, salt_bytes, &mut out).is_err() {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    fn argon2() -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
    }

    #[test]
    fn hashes_carry_the_chosen_parameters() {
        let phc = hash(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(b"correct horse", &phc));
        assert!(!verify(b"wrong horse", &phc));
        assert_ne!(hash(b"correct horse").unwrap(), phc, "a fresh salt every time");
    }

    #[test]
    fn phc_strings_are_compatible_with_the_argon2_crate_both_ways() {
        let ours = hash(b"SecurePass123!").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"SecurePass123!", &parsed).is_ok());
        assert!(argon2().verify_password(b"SecurePass124!", &parsed).is_err());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2().hash_password(b"SecurePass123!", &salt).unwrap().to_string();
        assert!(verify(b"SecurePass123!", &theirs));
        assert!(!verify(b"SecurePass123", &theirs));
        // Other parameters stored in the string are honoured.
        let light = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, None).unwrap());
        let weak = light.hash_password(b"pw-123456", &salt).unwrap().to_string();
        assert!(verify(b"pw-123456", &weak));
        assert!(!verify(b"pw-1234567", &weak));
        assert!(!verify(b"pw-123456", "not a phc string"));
    }
}
