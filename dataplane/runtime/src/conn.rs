//! A downstream connection: dispatch on the listener's kind.

use std::net::SocketAddr;
use std::rc::Rc;

use monoio::net::TcpStream;
use spar_config::ListenerKind;

use crate::worker::{ConnGuard, KindStats, Local, Worker};

pub(crate) async fn serve(
    ctx: Rc<Worker>,
    local: Rc<Local>,
    index: usize,
    stream: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
) {
    let listener = &local.snapshot.listeners[index];
    match (&listener.kind, &local.listeners[index].1) {
        (ListenerKind::Http(_), KindStats::Http(_)) => {
            crate::http1::serve(&ctx, local.clone(), index, stream, peer).await;
        }
        (ListenerKind::Tcp(settings), KindStats::Tcp(stats)) => {
            crate::tcp::serve(&ctx, &local, settings, stats, stream).await;
        }
        _ => {} // Local::new builds the stats from the same listener kind
    }
    drop(guard);
}
