//! Bearer tokens that spar-ca issues itself, for a mesh without Kubernetes: a compact JWS
//! (JWT) signed with ES256 by the CA's token key, naming one service account.
//!
//! ```text
//! header: {"alg":"ES256","typ":"JWT","kid":"<16 hex digits of SHA-256(public key)>"}
//! claims: {"iss":"spar-ca","sub":"system:serviceaccount:<ns>:<sa>","aud":"istio-ca","iat":N,"exp":N}
//! ```
//!
//! [`TokenKey::verify`] accepts a token only when its algorithm is ES256, its key id is this
//! key's, the signature verifies, the issuer is `spar-ca`, the audience includes `istio-ca`,
//! it has not expired, it was not issued in the future (beyond [`CLOCK_SKEW_SECS`]) and its
//! subject is a valid service account. Time is an argument (seconds since the Unix epoch):
//! no clock is read here. Signing needs randomness (ECDSA nonces), taken from ring's
//! system generator.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use crate::spiffe::ServiceAccount;

/// The audience Istio's agents ask for (`TOKEN_AUDIENCES`), and the one spar-ca requires.
pub const AUDIENCE: &str = "istio-ca";
/// The `iss` of the tokens spar-ca issues.
pub const ISSUER: &str = "spar-ca";
/// The longest token read: a spar-ca token is about 400 bytes, a Kubernetes one about
/// 1 KiB; anything much longer is not a token.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// How far in the future `iat` may be: clocks of the minting and the verifying host differ.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a compact ES256 JWT: {0}")]
    Malformed(&'static str),
    #[error("token was not issued by this CA's token key")]
    NotOurs,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token issued in the future")]
    NotYetValid,
    #[error("token issuer is not spar-ca")]
    WrongIssuer,
    #[error("token audience does not include istio-ca")]
    WrongAudience,
    #[error("token subject is not a service account: {0}")]
    BadSubject(String),
    #[error("token key: {0}")]
    Key(String),
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    iat: u64,
    exp: u64,
}

/// The CA's token key: an ECDSA P-256 key pair that signs and verifies tokens.
pub struct TokenKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("kid", &self.kid).finish()
    }
}

impl TokenKey {
    /// A new key, as PKCS#8 DER (to be stored, then loaded with [`TokenKey::from_pkcs8`]).
    pub fn generate_pkcs8() -> Result<Vec<u8>, TokenError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| TokenError::Key("generating an ECDSA P-256 key failed".into()))?;
        Ok(doc.as_ref().to_vec())
    }

    /// Loads a PKCS#8 ECDSA P-256 key.
    pub fn from_pkcs8(der: &[u8]) -> Result<TokenKey, TokenError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|e| TokenError::Key(format!("not a PKCS#8 ECDSA P-256 key: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, pair.public_key().as_ref());
        let kid = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(TokenKey { pair, kid })
    }

    /// The key id in this key's tokens.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// A token for `account`, issued at `now`, valid for `ttl_secs`.
    pub fn mint(
        &self,
        account: &ServiceAccount,
        now: u64,
        ttl_secs: u64,
    ) -> Result<String, TokenError> {
        let claims = Claims {
            iss: ISSUER.into(),
            sub: account.username(),
            aud: Audience::One(AUDIENCE.into()),
            iat: now,
            exp: now.saturating_add(ttl_secs),
        };
        self.encode(&claims)
    }

    fn encode(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = Header {
            alg: "ES256".into(),
            kid: self.kid.clone(),
        };
        let mut token = format!(
            "{}.{}",
            B64.encode(to_json(&header)),
            B64.encode(to_json(claims))
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| TokenError::Key("signing failed".into()))?;
        token.push('.');
        token.push_str(&B64.encode(sig.as_ref()));
        Ok(token)
    }

    /// Whether `token` claims to be signed by this key (its header names this key id).
    /// Says nothing about whether it is valid.
    pub fn claims_to_be_ours(&self, token: &str) -> bool {
        token
            .split('.')
            .next()
            .and_then(|h| decode_json::<Header>(h).ok())
            .is_some_and(|h| h.kid == self.kid)
    }

    /// The service account a valid token names; see the module doc for the checks.
    pub fn verify(&self, token: &str, now: u64) -> Result<ServiceAccount, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed("too long"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three dot-separated parts"));
        };
        let h: Header = decode_json(header)?;
        if h.alg != "ES256" {
            return Err(TokenError::Malformed("alg is not ES256"));
        }
        if h.kid != self.kid {
            return Err(TokenError::NotOurs);
        }
        let sig = B64
            .decode(sig)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let signed = &token[..header.len() + 1 + claims.len()];
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.pair.public_key().as_ref(),
        )
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| TokenError::BadSignature)?;
        let c: Claims = decode_json(claims)?;
        if c.iss != ISSUER {
            return Err(TokenError::WrongIssuer);
        }
        let audience_ok = match &c.aud {
            Audience::One(a) => a == AUDIENCE,
            Audience::Many(all) => all.iter().any(|a| a == AUDIENCE),
        };
        if !audience_ok {
            return Err(TokenError::WrongAudience);
        }
        if c.exp <= now {
            return Err(TokenError::Expired);
        }
        if c.iat > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(TokenError::NotYetValid);
        }
        ServiceAccount::from_username(&c.sub).map_err(|e| TokenError::BadSubject(e.to_string()))
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = B64
        .decode(part)
        .map_err(|_| TokenError::Malformed("part is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("part is not the expected JSON"))
}

/// JSON of the header or claims: serde_json cannot fail on these plain structs (strings
/// and integers only), so an empty object stands in for the impossible error.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests;
