//! A downstream connection from accept to its protocol: the filter chain is picked (after
//! peeking at a ClientHello or the first plaintext bytes when the listener's chains need
//! them), TLS is terminated when the chain says so, and the chain's network filter runs:
//! the HTTP connection manager (HTTP/1.1, or HTTP/2 by ALPN or prior knowledge) or the
//! TCP proxy (which also carries TLS passthrough: the peeked bytes go upstream first).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::net::TcpStream;
use spar_config::{Codec, ConnectionInfo, Listener, ListenerKind};
use spar_telemetry::ListenerStats;
use spar_tls::{Peek, peek};
use tracing::debug;

use crate::io::READ_BUF;
use crate::stream::{Prefixed, Stream};
use crate::worker::{ConnGuard, KindStats, Local, Worker};

/// What TLS said about the peer of a downstream connection, for authorization.
#[derive(Debug, Default)]
pub(crate) struct PeerIdentity {
    /// The client certificate's first URI SAN (a SPIFFE identity), when one was shown.
    pub(crate) principal: Option<String>,
    /// The server name the client asked for.
    pub(crate) sni: Option<String>,
}

/// The HTTP/2 connection preface (RFC 9113 3.4).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(crate) async fn serve(
    ctx: Rc<Worker>,
    local: Rc<Local>,
    index: usize,
    stream: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
) {
    let listener = &local.snapshot.listeners[index];
    let lstats = local.listeners[index].0.clone();
    let port = match listener.address.port() {
        0 => stream.local_addr().map_or(0, |a| a.port()),
        p => p,
    };
    let mut stream = Stream::Plain(stream);
    let mut first = BytesMut::new();
    let mut peeked_sni = None;
    let chain = if listener.inspect.tls || listener.inspect.http {
        let timeout = listener.inspect_timeout;
        match inspect(&mut stream, &mut first, listener, port, timeout).await {
            Inspected::Chain(c, sni) => {
                peeked_sni = sni;
                c
            }
            Inspected::TimedOut(c) => {
                lstats.downstream_pre_cx_timeout.inc();
                match c {
                    Some(c) if listener.continue_on_inspect_timeout => Some(c),
                    _ => return,
                }
            }
            Inspected::Closed => return,
        }
    } else {
        listener.select(&ConnectionInfo {
            destination_port: port,
            transport_protocol: "raw_buffer",
            ..ConnectionInfo::default()
        })
    };
    let Some(ci) = chain else {
        lstats.no_filter_chain_match.inc();
        debug!(listener = %listener.name, %peer, "no filter chain matched");
        return;
    };
    let chain = &listener.chains[ci];
    let mut alpn_h2 = false;
    // TLS passed through: the server name the ClientHello asked for is all RBAC can know.
    // (Terminated TLS replaces it below with what rustls read.)
    let mut peer_id = peeked_sni.filter(|_| chain.tls.is_none()).map(|sni| {
        Rc::new(PeerIdentity {
            principal: None,
            sni: Some(sni),
        })
    });
    if let Some(tls) = &chain.tls {
        let Some(s) = handshake(stream, first, tls, listener, &lstats).await else {
            return;
        };
        let session = s.get_ref().1;
        alpn_h2 = session.alpn_protocol() == Some(b"h2");
        // Read on every handshake, RBAC or not: an HTTP connection moves to the newest
        // config between requests, and that config may bring RBAC filters.
        peer_id = Some(Rc::new(PeerIdentity {
            principal: session
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(spar_tls::first_uri_san),
            sni: session.server_name().map(str::to_owned),
        }));
        stream = Stream::Server(Box::new(s));
        first = BytesMut::new();
    }
    if !chain.rbac.is_empty() {
        let local_addr = stream
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], port)));
        let verdict = crate::authz::connection(
            &chain.rbac,
            &lstats.rbac,
            &listener.name,
            peer,
            local_addr,
            peer_id.as_deref(),
        );
        if let Err(delay) = verdict {
            if let Some(delay) = delay {
                monoio::time::sleep(delay).await;
            }
            return;
        }
    }
    match (&chain.kind, &local.listeners[index].1[ci]) {
        (ListenerKind::Http(settings), KindStats::Http(_)) => {
            let h2 = match settings.codec {
                Codec::Http1 => false,
                Codec::Http2 => true,
                Codec::Auto if stream.is_tls() => alpn_h2,
                Codec::Auto => match sniff_preface(&mut stream, &mut first).await {
                    Some(h2) => h2,
                    None => return,
                },
            };
            if h2 {
                let Ok(stream) = stream.into_poll(first.freeze()) else {
                    return;
                };
                crate::http2::serve(&ctx, local.clone(), index, ci, stream, peer, peer_id).await;
            } else {
                let at = crate::http1::At {
                    index,
                    chain: ci,
                    peer,
                    peer_id,
                };
                crate::http1::serve(&ctx, local.clone(), at, stream, first).await;
            }
        }
        (ListenerKind::Tcp(settings), KindStats::Tcp(stats)) => {
            crate::tcp::serve(&ctx, &local, settings, stats, stream, first.freeze()).await;
        }
        _ => {} // Local::new builds the stats from the same chain kinds
    }
    drop(guard);
}

enum Inspected {
    /// The chain picked, and the server name a ClientHello asked for (RBAC's
    /// `connection.sni` on chains that pass TLS through rather than terminate it).
    Chain(Option<usize>, Option<String>),
    /// The bytes did not come in time; the chain the bytes so far would pick.
    TimedOut(Option<usize>),
    Closed,
}

/// Reads the connection's first bytes into `first` until a chain can be picked: a whole
/// ClientHello, or enough plaintext to tell HTTP/1.x from HTTP/2 (or neither).
async fn inspect(
    stream: &mut Stream,
    first: &mut BytesMut,
    listener: &Listener,
    port: u16,
    timeout: Option<Duration>,
) -> Inspected {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        if let Some((chain, sni)) = decide(first, listener, port) {
            return Inspected::Chain(chain, sni);
        }
        let read = stream.read_some(first, READ_BUF);
        let n = match deadline {
            None => read.await,
            Some(d) => match monoio::time::timeout_at(d.into(), read).await {
                Ok(r) => r,
                Err(_) => {
                    let info = partial_info(first, port);
                    return Inspected::TimedOut(listener.select(&info));
                }
            },
        };
        match n {
            Ok(0) | Err(_) => return Inspected::Closed,
            Ok(_) => {}
        }
    }
}

/// The chain for the bytes read so far (with the ClientHello's server name, if TLS), or
/// `None` when more bytes are needed.
fn decide(first: &[u8], listener: &Listener, port: u16) -> Option<(Option<usize>, Option<String>)> {
    if first.is_empty() {
        return None;
    }
    match peek(first) {
        Peek::NeedMore => None,
        Peek::Hello(hello) => {
            let alpn: Vec<&[u8]> = hello.alpn.iter().map(Vec::as_slice).collect();
            let chain = listener.select(&ConnectionInfo {
                destination_port: port,
                server_name: hello.sni.as_deref(),
                transport_protocol: "tls",
                application_protocols: alpn,
            });
            Some((chain, hello.sni))
        }
        // A broken ClientHello: no chain for TLS; the connection is closed and counted.
        Peek::Invalid(_) => Some((None, None)),
        Peek::NotTls => {
            if listener.inspect.http {
                let proto = http_protocol(first)?;
                let chain = listener.select(&ConnectionInfo {
                    destination_port: port,
                    transport_protocol: "raw_buffer",
                    application_protocols: proto.into_iter().collect(),
                    ..ConnectionInfo::default()
                });
                Some((chain, None))
            } else {
                let chain = listener.select(&ConnectionInfo {
                    destination_port: port,
                    transport_protocol: "raw_buffer",
                    ..ConnectionInfo::default()
                });
                Some((chain, None))
            }
        }
    }
}

/// What a timed-out inspection knows: plaintext with no protocol.
fn partial_info(_first: &[u8], port: u16) -> ConnectionInfo<'static> {
    ConnectionInfo {
        destination_port: port,
        transport_protocol: "raw_buffer",
        ..ConnectionInfo::default()
    }
}

/// Envoy's HTTP inspector: `h2c` for the HTTP/2 preface, `http/1.1` or `http/1.0` for a
/// request line, `None` inside (the outer `Option`: more bytes needed) for anything else.
fn http_protocol(first: &[u8]) -> Option<Option<&'static [u8]>> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Some(b"h2c".as_slice()));
    }
    let Some(end) = memchr::memchr(b'\n', first) else {
        // A request line is short; past 8 KiB without one it is not HTTP.
        return (first.len() > 8192).then_some(None);
    };
    let line = first[..end].strip_suffix(b"\r").unwrap_or(&first[..end]);
    let method_ok = line
        .iter()
        .take_while(|b| **b != b' ')
        .all(|b| b.is_ascii_uppercase() || *b == b'-');
    Some(if !method_ok {
        None
    } else if line.ends_with(b" HTTP/1.1") {
        Some(b"http/1.1".as_slice())
    } else if line.ends_with(b" HTTP/1.0") {
        Some(b"http/1.0".as_slice())
    } else {
        None
    })
}

/// On a plaintext `AUTO` connection: true when it opens with the HTTP/2 preface. Reads
/// into `first` only as far as needed to tell; `None` when the peer closed first.
async fn sniff_preface(stream: &mut Stream, first: &mut BytesMut) -> Option<bool> {
    loop {
        let n = first.len().min(H2_PREFACE.len());
        if first[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        if !first.is_empty() && !H2_PREFACE.starts_with(first) {
            return Some(false);
        }
        match stream.read_some(first, READ_BUF).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Terminates TLS on `stream`, with the bytes already read replayed to rustls. Bounded by
/// the listener's inspection timeout, so a client that stalls mid-handshake cannot hold the
/// connection forever.
async fn handshake(
    stream: Stream,
    first: BytesMut,
    tls: &spar_config::DownstreamTls,
    listener: &Listener,
    stats: &ListenerStats,
) -> Option<crate::stream::ServerTls> {
    let Stream::Plain(tcp) = stream else {
        return None;
    };
    let Ok(poll) = tcp.try_into_poll_io() else {
        return None;
    };
    let io = Prefixed::new(poll, Bytes::from(first));
    let accept = tokio_rustls::TlsAcceptor::from(tls.config.clone()).accept(io);
    let done = match listener.inspect_timeout {
        None => Ok(accept.await),
        Some(t) => monoio::time::timeout(t, accept).await,
    };
    match done {
        Ok(Ok(s)) => {
            stats.ssl_handshake.inc();
            Some(s)
        }
        Ok(Err(e)) => {
            stats.ssl_connection_error.inc();
            debug!(listener = %listener.name, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            stats.ssl_connection_error.inc();
            debug!(listener = %listener.name, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::http_protocol;

    #[test]
    fn http_inspector_tells_protocols_apart() {
        assert_eq!(
            http_protocol(b"GET / HTTP/1.1\r\n"),
            Some(Some(b"http/1.1".as_slice()))
        );
        assert_eq!(
            http_protocol(b"POST /x HTTP/1.0\r\n"),
            Some(Some(b"http/1.0".as_slice()))
        );
        assert_eq!(
            http_protocol(super::H2_PREFACE),
            Some(Some(b"h2c".as_slice()))
        );
        assert_eq!(http_protocol(b"PRI * HT"), None);
        assert_eq!(http_protocol(b"GET / HT"), None);
        assert_eq!(http_protocol(b"SSH-2.0-OpenSSH\r\n"), Some(None));
        assert_eq!(http_protocol(b"get / HTTP/1.1\r\n"), Some(None));
    }
}
