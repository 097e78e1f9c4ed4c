//! Sync state of one type on one stream, as `sparctl proxy-status` shows it.

/// For one type on one proxy: what was sent, what was acknowledged, what was rejected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeStatus {
    /// `version_info` (delta: `system_version_info`) of the last response sent.
    pub sent_version: Option<String>,
    /// Nonce of the last response sent; only a request carrying it ACKs or NACKs.
    pub sent_nonce: Option<String>,
    /// Version the proxy last acknowledged.
    pub acked_version: Option<String>,
    /// The last rejection, kept until the proxy acknowledges a later response.
    pub nack: Option<Nack>,
}

/// A rejected response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    /// Version of the response that was rejected.
    pub version: String,
    /// The proxy's `error_detail.message`.
    pub error: String,
}

impl TypeStatus {
    /// True when the proxy has acknowledged the last response sent.
    pub fn synced(&self) -> bool {
        self.sent_version.is_some() && self.sent_version == self.acked_version
    }
}

/// How a request related to what was sent before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// First request for this type on the stream (or one with no nonce): always answered.
    Initial,
    /// Acknowledges the last response of this type.
    Ack,
    /// Rejects the last response of this type, with this error.
    Nack(String),
    /// Carries a nonce that is not the last one sent for this type: the client had not yet
    /// seen a newer response. State of the world ignores it (Envoy's protocol); delta still
    /// applies its subscription changes.
    Stale,
}

/// What the stream should do with a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome<R> {
    /// How the request was understood.
    pub kind: RequestKind,
    /// The response to send, if any.
    pub response: Option<R>,
}

/// Unique nonces for one stream: the stream's id, then a counter.
#[derive(Clone, Debug)]
pub(crate) struct Nonces {
    prefix: String,
    next: u64,
}

impl Nonces {
    pub(crate) fn new(stream_id: u64) -> Self {
        Nonces {
            prefix: format!("{stream_id:x}-"),
            next: 1,
        }
    }

    pub(crate) fn next(&mut self) -> String {
        let nonce = format!("{}{}", self.prefix, self.next);
        self.next += 1;
        nonce
    }
}

/// Classifies a request by its nonce and records an ACK or NACK in `status`.
///
/// `version_info` is what the client says it applied; for delta there is none, so the
/// version acknowledged is the one sent with the nonce.
pub(crate) fn classify(
    status: &mut TypeStatus,
    nonce: &str,
    error: Option<&str>,
    version_info: Option<&str>,
) -> RequestKind {
    // Nothing sent yet on this stream: a nonce can only be from an earlier stream.
    let Some(sent_nonce) = status.sent_nonce.as_deref() else {
        return RequestKind::Initial;
    };
    if nonce.is_empty() {
        return RequestKind::Initial;
    }
    if nonce != sent_nonce {
        return RequestKind::Stale;
    }
    match error {
        Some(error) => {
            let version = status.sent_version.clone().unwrap_or_default();
            status.nack = Some(Nack {
                version,
                error: error.to_owned(),
            });
            RequestKind::Nack(error.to_owned())
        }
        None => {
            status.acked_version = match version_info {
                Some(v) => Some(v.to_owned()),
                None => status.sent_version.clone(),
            };
            status.nack = None;
            RequestKind::Ack
        }
    }
}
