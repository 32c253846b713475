//! auth-svc's RS256/EdDSA signing key: read from a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`,
//! RFC 5208 / RFC 5958, what `openssl genpkey` prints) or generated, with its public JWK.

use std::fmt;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::EncodingKey;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::LineEnding;
use rsa::traits::PublicKeyParts;

use super::Alg;
use super::jwk::{MIN_RSA_BITS, PublicJwk};
use crate::Secret;

/// Size of generated RSA keys, bits.
pub const RSA_KEY_BITS: usize = 2048;

/// Why a private key is not usable. Never shows key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateKeyError {
    #[error("not a PKCS#8 PEM RSA or Ed25519 private key (\"-----BEGIN PRIVATE KEY-----\")")]
    NotPkcs8,
    #[error("RSA key is {0} bits; at least {MIN_RSA_BITS} are required")]
    RsaTooShort(usize),
    #[error("HS256 has no private key")]
    Symmetric,
    #[error("could not encode the key")]
    Encoding,
}

/// A private signing key with its algorithm and public JWK. `Debug` shows the `kid` only.
#[derive(Clone)]
pub struct PrivateKey {
    alg: Alg,
    encoding: EncodingKey,
    public: PublicJwk,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey").field("alg", &self.alg).field("kid", &self.public.kid).finish()
    }
}

impl PrivateKey {
    /// Reads a PKCS#8 PEM private key: Ed25519 (EdDSA) or RSA of at least [`MIN_RSA_BITS`]
    /// bits (RS256). The algorithm follows from the key type.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PrivateKeyError> {
        let pem = pem.trim();
        if let Ok(key) = SigningKey::from_pkcs8_pem(pem) {
            return Self::ed25519(&key);
        }
        let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|_| PrivateKeyError::NotPkcs8)?;
        Self::rsa(&key)
    }

    /// Generates a new key of `alg` (RSA: [`RSA_KEY_BITS`] bits) and returns it with its
    /// PKCS#8 PEM, as `openssl genpkey` would print it. Errors for HS256.
    pub fn generate(alg: Alg) -> Result<(Self, Secret), PrivateKeyError> {
        let mut rng = rand::rngs::OsRng;
        match alg {
            Alg::HS256 => Err(PrivateKeyError::Symmetric),
            Alg::RS256 => {
                let key = RsaPrivateKey::new(&mut rng, RSA_KEY_BITS).map_err(|_| PrivateKeyError::Encoding)?;
                let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LineEnding::LF)
                    .map_err(|_| PrivateKeyError::Encoding)?;
                Ok((Self::rsa(&key)?, Secret::new(pem.as_str())))
            }
            Alg::EdDSA => {
                let key = SigningKey::generate(&mut rng);
                // PKCS#8 v1 (RFC 8410 section 7: the private key alone), as `openssl genpkey
                // -algorithm ed25519` writes it: OpenSSL 3.0 and Python's cryptography refuse the
                // v2 form with the public key that `SigningKey::to_pkcs8_pem` writes.
                let v1 = ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None };
                let pem = v1.to_pkcs8_pem(LineEnding::LF).map_err(|_| PrivateKeyError::Encoding)?;
                Ok((Self::ed25519(&key)?, Secret::new(pem.as_str())))
            }
        }
    }

    fn rsa(key: &RsaPrivateKey) -> Result<Self, PrivateKeyError> {
        let bits = key.n().bits();
        if bits < MIN_RSA_BITS {
            return Err(PrivateKeyError::RsaTooShort(bits));
        }
        let der = key.to_pkcs1_der().map_err(|_| PrivateKeyError::Encoding)?;
        Ok(Self {
            alg: Alg::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            public: PublicJwk::rsa(&key.n().to_bytes_be(), &key.e().to_bytes_be()),
        })
    }

    fn ed25519(key: &SigningKey) -> Result<Self, PrivateKeyError> {
        let der = key.to_pkcs8_der().map_err(|_| PrivateKeyError::Encoding)?;
        Ok(Self {
            alg: Alg::EdDSA,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public: PublicJwk::ed25519(key.verifying_key().as_bytes()),
        })
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key id: the public key's RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pkcs8_pem() {
        for alg in [Alg::RS256, Alg::EdDSA] {
            let (key, pem) = PrivateKey::generate(alg).unwrap();
            assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"), "{alg}");
            let read = PrivateKey::from_pkcs8_pem(pem.expose()).unwrap();
            assert_eq!(read.alg(), alg);
            assert_eq!(read.kid(), key.kid());
            assert_eq!(read.public_jwk(), key.public_jwk());
            assert!(!format!("{read:?}").contains("PRIVATE"));
        }
        assert_eq!(PrivateKey::generate(Alg::HS256).unwrap_err(), PrivateKeyError::Symmetric);
    }

    /// The generated Ed25519 key is PKCS#8 v1 (RFC 8410 section 7), the form `openssl genpkey`
    /// writes and OpenSSL 3.0 reads: SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING },
    /// 48 bytes, no public key attached.
    #[test]
    fn generated_ed25519_keys_are_pkcs8_v1() {
        use base64::Engine;
        let (_, pem) = PrivateKey::generate(Alg::EdDSA).unwrap();
        let body: String = pem.expose().lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        assert_eq!(der.len(), 48, "{der:02x?}");
        assert_eq!(&der[..5], &[0x30, 0x2e, 0x02, 0x01, 0x00], "version 0 (v1)");
    }

    #[test]
    fn short_rsa_keys_and_other_shapes_are_refused() {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
        let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LineEnding::LF).unwrap();
        assert_eq!(PrivateKey::from_pkcs8_pem(&pem).unwrap_err(), PrivateKeyError::RsaTooShort(1024));
        // PKCS#1 ("BEGIN RSA PRIVATE KEY") is not PKCS#8.
        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).unwrap();
        assert_eq!(PrivateKey::from_pkcs8_pem(&pkcs1).unwrap_err(), PrivateKeyError::NotPkcs8);
        assert_eq!(PrivateKey::from_pkcs8_pem("hunter2").unwrap_err(), PrivateKeyError::NotPkcs8);
    }
}
