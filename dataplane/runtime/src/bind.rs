//! Listening sockets: one `SO_REUSEPORT` socket per worker per address, so the
//! kernel spreads new connections across workers without a shared accept
//! queue or lock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use socket2::{Domain, Protocol, Socket, Type};

/// Envoy's default listen backlog (`tcp_backlog_size`).
const BACKLOG: i32 = 1024;

#[derive(Debug, thiserror::Error)]
#[error("listener {name}: cannot listen on {address}: {source}")]
pub struct BindError {
    pub name: String,
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// A bound socket on its way to a worker.
#[derive(Debug)]
pub(crate) struct BoundListener {
    pub(crate) name: String,
    pub(crate) socket: std::net::TcpListener,
    pub(crate) open: Arc<AtomicU64>,
}

fn one(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `count` sockets to `address`. Port 0 picks a free port once and
/// binds the rest to that same port. Returns the bound address too.
pub(crate) fn bind_reuseport(
    name: &str,
    address: SocketAddr,
    count: usize,
) -> Result<(SocketAddr, Vec<std::net::TcpListener>), BindError> {
    let err = |source| BindError {
        name: name.to_owned(),
        address,
        source,
    };
    let first = one(address).map_err(err)?;
    let local = first.local_addr().map_err(err)?;
    let mut socks = Vec::with_capacity(count);
    socks.push(first);
    for _ in 1..count {
        socks.push(one(local).map_err(err)?);
    }
    Ok((local, socks))
}
