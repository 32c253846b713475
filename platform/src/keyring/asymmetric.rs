//! Keyrings of the RS256/EdDSA modes: auth-svc's (signs with its private key, publishes every
//! public key it holds) and the gateway's (verifies with the keys of auth-svc's JWKS only).

use jsonwebtoken::DecodingKey;

use super::jwk::{JwkError, Jwks, PublicJwk};
use super::{Key, Keyring, PrivateKey};

impl Keyring {
    /// auth-svc's keyring in RS256/EdDSA mode: `signer` signs; `others` (previous and pending
    /// keys, any algorithm) verify and are published. Duplicates of a key id are dropped.
    /// Errors when a key of `others` is unusable ([`PublicJwk::verifier`]).
    pub fn signing(signer: &PrivateKey, others: &[PublicJwk]) -> Result<Self, JwkError> {
        let public = signer.public_jwk().clone();
        let (_, decoding) = public.verifier()?;
        let mut ring = Self {
            keys: vec![Key {
                kid: public.kid.clone(),
                alg: signer.alg(),
                encoding: Some(signer.encoding().clone()),
                decoding,
                public: Some(public),
            }],
        };
        for jwk in others {
            ring.push_public(jwk)?;
        }
        Ok(ring)
    }

    /// A verify-only keyring of every key in `jwks` (the gateway's in RS256/EdDSA mode). Each
    /// key stays pinned to its `alg`. Errors: an empty set (nothing to verify with) or an
    /// unusable key ([`PublicJwk::verifier`]).
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, JwkError> {
        let mut ring = Self { keys: Vec::with_capacity(jwks.keys.len()) };
        for jwk in &jwks.keys {
            ring.push_public(jwk)?;
        }
        if ring.keys.is_empty() {
            return Err(JwkError::NotJwks);
        }
        Ok(ring)
    }

    fn push_public(&mut self, jwk: &PublicJwk) -> Result<(), JwkError> {
        let (alg, decoding): (_, DecodingKey) = jwk.verifier()?;
        if !self.contains(&jwk.kid) {
            self.keys.push(Key { kid: jwk.kid.clone(), alg, encoding: None, decoding, public: Some(jwk.clone()) });
        }
        Ok(())
    }

    /// The public keys to publish (RFC 7517 §5), signing key first; empty for HS256.
    pub fn jwks(&self) -> Jwks {
        Jwks { keys: self.keys.iter().filter_map(|k| k.public.clone()).collect() }
    }
}

/// The SubjectPublicKeyInfo DER and PEM of an RSA JWK: what an attacker would try as an HMAC
/// secret in an algorithm-confusion forgery. Test support.
#[cfg(test)]
pub(crate) fn rsa_public_der_and_pem(jwk: &PublicJwk) -> (Vec<u8>, String) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let decode = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref().unwrap()).unwrap();
    let key = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&decode(&jwk.n)),
        rsa::BigUint::from_bytes_be(&decode(&jwk.e)),
    )
    .unwrap();
    assert!(key.n().bits() >= 2048);
    (key.to_public_key_der().unwrap().into_vec(), key.to_public_key_pem(LineEnding::LF).unwrap())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    use super::*;
    use crate::keyring::header::tests::with_header;
    use crate::keyring::{Alg, Claims, Rejection, TokenRules};

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> Claims {
        Claims::new(7, "alice", "a@example.com", now(), 600)
    }

    fn sign(alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims(), key).unwrap()
    }

    #[test]
    fn tokens_verify_with_the_published_keys_only() {
        for alg in [Alg::RS256, Alg::EdDSA] {
            let (key, _) = PrivateKey::generate(alg).unwrap();
            let signer = Keyring::signing(&key, &[]).unwrap();
            assert!(signer.can_sign());
            let token = signer.issue(&claims()).unwrap();
            let gateway = Keyring::from_jwks(&signer.jwks()).unwrap();
            assert!(!gateway.can_sign());
            assert!(gateway.issue(&claims()).is_err());
            assert_eq!(gateway.alg(), alg);
            assert_eq!(gateway.verify_str(&token, &TokenRules::default()).unwrap().user_id, 7, "{alg}");
        }
    }

    #[test]
    fn previous_keys_of_another_algorithm_stay_published_and_pinned() {
        let (old, _) = PrivateKey::generate(Alg::RS256).unwrap();
        let (new, _) = PrivateKey::generate(Alg::EdDSA).unwrap();
        let old_token = Keyring::signing(&old, &[]).unwrap().issue(&claims()).unwrap();
        let ring = Keyring::signing(&new, &[old.public_jwk().clone(), new.public_jwk().clone()]).unwrap();
        assert_eq!(ring.jwks().keys.len(), 2);
        assert_eq!(ring.jwks().keys[0].kid, new.kid());
        let gateway = Keyring::from_jwks(&ring.jwks()).unwrap();
        assert!(gateway.verify_str(&old_token, &TokenRules::default()).is_ok());
        assert!(gateway.verify_str(&ring.issue(&claims()).unwrap(), &TokenRules::default()).is_ok());
    }

    /// RFC 8725 §2.1: HS256 "signed" with the RSA public key (PEM, DER, raw modulus) as the
    /// HMAC secret, naming the RSA key: refused before any HMAC is computed.
    #[test]
    fn public_key_as_hmac_secret_is_the_wrong_algorithm() {
        let (key, _) = PrivateKey::generate(Alg::RS256).unwrap();
        let gateway = Keyring::from_jwks(&Keyring::signing(&key, &[]).unwrap().jwks()).unwrap();
        let (der, pem) = rsa_public_der_and_pem(key.public_jwk());
        let n = key.public_jwk().n.clone().unwrap();
        for secret in [pem.as_bytes(), &der, n.as_bytes()] {
            let forged = sign(Algorithm::HS256, key.kid(), &EncodingKey::from_secret(secret));
            assert_eq!(gateway.verify_str(&forged, &TokenRules::default()), Err(Rejection::WrongAlgorithm));
        }
        // An EdDSA token naming the RSA key, and the reverse: refused the same way.
        let (ed, _) = PrivateKey::generate(Alg::EdDSA).unwrap();
        let forged = sign(Algorithm::EdDSA, key.kid(), ed.encoding());
        assert_eq!(gateway.verify_str(&forged, &TokenRules::default()), Err(Rejection::WrongAlgorithm));
    }

    #[test]
    fn another_key_with_the_same_kid_and_unsigned_tokens_are_refused() {
        for alg in [Alg::RS256, Alg::EdDSA] {
            let (key, _) = PrivateKey::generate(alg).unwrap();
            let (other, _) = PrivateKey::generate(alg).unwrap();
            let gateway = Keyring::from_jwks(&Keyring::signing(&key, &[]).unwrap().jwks()).unwrap();
            let forged = sign(alg.jwt(), key.kid(), other.encoding());
            assert_eq!(gateway.verify_str(&forged, &TokenRules::default()), Err(Rejection::BadSignature), "{alg}");
            let none = with_header(&format!(r#"{{"alg":"none","kid":"{}"}}"#, key.kid()));
            assert_eq!(gateway.verify_str(&none, &TokenRules::default()), Err(Rejection::WrongAlgorithm));
            // A correctly signed token whose header adds a key URL: refused for the header.
            let mut header = Header::new(alg.jwt());
            header.kid = Some(key.kid().to_owned());
            header.jku = Some("https://evil.example/jwks.json".into());
            let with_jku = jsonwebtoken::encode(&header, &claims(), key.encoding()).unwrap();
            assert_eq!(gateway.verify_str(&with_jku, &TokenRules::default()), Err(Rejection::UnsupportedHeader));
        }
    }

    #[test]
    fn empty_or_bad_key_sets_build_no_keyring() {
        assert!(Keyring::from_jwks(&Jwks::default()).is_err());
        let (key, _) = PrivateKey::generate(Alg::EdDSA).unwrap();
        let mut jwk = key.public_jwk().clone();
        jwk.kid = "chosen-by-attacker".into();
        assert!(Keyring::from_jwks(&Jwks { keys: vec![jwk] }).is_err());
        // HS256 keyrings publish nothing.
        let hs = Keyring::new(&crate::Secret::new("k".repeat(40)), None).unwrap();
        assert_eq!(hs.jwks(), Jwks::default());
    }
}
