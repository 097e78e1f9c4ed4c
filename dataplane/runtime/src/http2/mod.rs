//! HTTP/2 downstream connections (work in progress in this change).

use std::net::SocketAddr;
use std::rc::Rc;

use crate::stream::Stream;
use crate::worker::{Local, Worker};

pub(crate) async fn serve(
    _ctx: &Rc<Worker>,
    _local: Rc<Local>,
    _index: usize,
    _chain: usize,
    _stream: Stream,
    _peer: SocketAddr,
) {
}
