//! Who is calling: the bearer token of a CreateCertificate request, turned into the
//! service account it proves. Tokens spar-ca minted are verified here with the CA's token
//! key; any other token goes to the Kubernetes API server as a TokenReview for the
//! `istio-ca` audience, when one is configured.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use kube::{Client, Config};

use crate::authority::Ca;
use crate::policy::{Reason, Refusal};
use crate::spiffe::ServiceAccount;
use crate::token::AUDIENCE;

/// A TokenReview that has not answered in this time fails the request (the caller retries
/// with backoff, as Istio's agents do).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the Kubernetes API server whose a token is (`POST
/// /apis/authentication.k8s.io/v1/tokenreviews`).
#[derive(Clone)]
pub struct TokenReviewer {
    client: Client,
}

impl std::fmt::Debug for TokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewer").finish_non_exhaustive()
    }
}

impl TokenReviewer {
    /// A reviewer for the API server at `url` (`http://` or `https://`), or, without one,
    /// the cluster spar-ca runs in (in-cluster config, else the kubeconfig).
    pub async fn connect(url: Option<&str>) -> Result<TokenReviewer, kube::Error> {
        let mut config = match url {
            Some(url) => Config::new(url.parse().map_err(|e: http::uri::InvalidUri| {
                kube::Error::Service(format!("--kube-api-server {url:?}: {e}").into())
            })?),
            None => Config::infer()
                .await
                .map_err(|e| kube::Error::Service(e.to_string().into()))?,
        };
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        // kube retries 429/503/504 up to 15 times by default, for minutes: the caller of
        // CreateCertificate retries with its own backoff, so a busy API server answers
        // UNAVAILABLE at once instead of holding the call.
        config.default_retry = false;
        config.read_timeout = Some(REVIEW_TIMEOUT);
        Ok(TokenReviewer::new(Client::try_from(config)?))
    }

    pub fn new(client: Client) -> TokenReviewer {
        TokenReviewer { client }
    }

    /// The service account the API server says `token` belongs to, for the `istio-ca`
    /// audience.
    pub async fn review(&self, token: &str) -> Result<ServiceAccount, Refusal> {
        let request = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![AUDIENCE.to_owned()]),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer =
            tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &request))
                .await
                .map_err(|_| Refusal::new(Reason::AuthUnavailable, "TokenReview timed out"))?
                .map_err(|e| {
                    Refusal::new(Reason::AuthUnavailable, format!("TokenReview failed: {e}"))
                })?;
        let status = answer.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(Refusal::new(
                Reason::InvalidToken,
                format!(
                    "token not authenticated by Kubernetes: {}",
                    status.error.unwrap_or_default()
                ),
            ));
        }
        // An authenticator that ignores audiences answers without them: such a token is
        // only good for the API server itself.
        if !status
            .audiences
            .unwrap_or_default()
            .iter()
            .any(|a| a == AUDIENCE)
        {
            return Err(Refusal::new(
                Reason::WrongAudience,
                format!("token is not for the {AUDIENCE} audience"),
            ));
        }
        let username = status.user.and_then(|u| u.username).unwrap_or_default();
        ServiceAccount::from_username(&username)
            .map_err(|e| Refusal::new(Reason::InvalidToken, e.to_string()))
    }
}

/// How callers are authenticated: always by spar-ca's own tokens, and by Kubernetes
/// TokenReviews when a reviewer is given.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    kube: Option<TokenReviewer>,
}

impl Authenticator {
    /// spar-ca's own tokens only.
    pub fn local() -> Authenticator {
        Authenticator { kube: None }
    }

    /// spar-ca's own tokens, and Kubernetes service-account tokens.
    pub fn with_kube(reviewer: TokenReviewer) -> Authenticator {
        Authenticator {
            kube: Some(reviewer),
        }
    }

    /// The service account `token` proves. A token that names the CA's token key is
    /// judged by that key alone (a forgery is not passed on to Kubernetes).
    pub async fn authenticate(&self, ca: &Ca, token: &str) -> Result<ServiceAccount, Refusal> {
        match &self.kube {
            Some(kube) if !ca.token_key().claims_to_be_ours(token) => kube.review(token).await,
            _ => ca.verify_token(token).map_err(Refusal::from),
        }
    }
}
