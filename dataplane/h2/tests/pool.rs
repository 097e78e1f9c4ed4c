//! The upstream pool over real loopback connections to an in-test HTTP/2 server that
//! advertises SETTINGS_MAX_CONCURRENT_STREAMS = 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::IntoPollIo;
use monoio::net::TcpStream;
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use spar_h2::{ClientSettings, FloodBudget, Lease, Pool, PoolError, PoolSettings, ServerSettings};
use support::*;

const DEADLINE: Duration = Duration::from_secs(10);
const CLUSTER: u64 = 7;

fn server() -> (SocketAddr, Rc<Seen>) {
    let settings = ServerSettings {
        max_concurrent_streams: 2,
        ..ServerSettings::default()
    };
    serve(settings, FloodBudget::default(), Handler::Ok)
}

async fn connect(addr: SocketAddr) -> std::io::Result<TcpStreamPoll> {
    TcpStream::connect(addr).await?.into_poll_io()
}

fn request(path: &str) -> http::Request<()> {
    http::Request::builder()
        .uri(format!("http://upstream.test{path}"))
        .body(())
        .unwrap()
}

/// Opens a stream whose request body stays open, so the stream stays active.
async fn open(
    pool: &Pool,
    addr: SocketAddr,
    path: &str,
) -> Result<(Lease, h2::client::ResponseFuture, h2::SendStream<Bytes>), PoolError> {
    let mut lease = pool
        .checkout(CLUSTER, addr, &ClientSettings::default(), || connect(addr))
        .await?;
    let (response, body) = lease.send_request(request(path), false).unwrap();
    Ok((lease, response, body))
}

/// Ends the request body and returns the response status.
async fn finish(
    (lease, response, mut body): (Lease, h2::client::ResponseFuture, h2::SendStream<Bytes>),
) -> u16 {
    body.send_data(Bytes::new(), true).unwrap();
    let res = monoio::time::timeout(DEADLINE, response)
        .await
        .expect("response in time")
        .expect("response");
    let status = res.status().as_u16();
    let mut recv = res.into_body();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.unwrap();
        let _ = recv.flow_control().release_capacity(chunk.len());
    }
    drop(lease);
    status
}

#[test]
fn concurrent_requests_beyond_the_peer_limit_open_more_connections() {
    run(async {
        let (addr, seen) = server();
        let pool = Pool::new(PoolSettings::default());
        let ids = Rc::new(RefCell::new(Vec::new()));
        let statuses = Rc::new(RefCell::new(Vec::new()));
        let streams = Rc::new(RefCell::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (pool, ids, streams) = (pool.clone(), ids.clone(), streams.clone());
            tasks.push(monoio::spawn(async move {
                let s = open(&pool, addr, &format!("/c{i}")).await.unwrap();
                ids.borrow_mut().push(s.0.connection_id());
                streams.borrow_mut().push(s);
            }));
        }
        for t in tasks {
            t.await;
        }
        // All five are in flight at once.
        assert_eq!(pool.stats().streams_active, 5);
        let mut distinct = ids.borrow().clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "connections used: {:?}", ids.borrow());
        assert_eq!(pool.stats().opened, 3);
        assert_eq!(seen.connections.get(), 3);
        let in_flight: Vec<_> = streams.borrow_mut().drain(..).collect();
        for s in in_flight {
            let status = finish(s).await;
            statuses.borrow_mut().push(status);
        }
        assert_eq!(*statuses.borrow(), vec![200; 5]);
        assert_eq!(pool.stats().streams_active, 0);
        // Freed streams are reused: no new connection.
        let s = open(&pool, addr, "/again").await.unwrap();
        assert_eq!(finish(s).await, 200);
        assert_eq!(pool.stats().opened, 3);
    });
}

#[test]
fn goaway_moves_new_requests_to_a_new_connection_without_failures() {
    run(async {
        let (addr, seen) = server();
        let pool = Pool::new(PoolSettings::default());
        // A slow request in flight on the first connection.
        let slow = open(&pool, addr, "/slow").await.unwrap();
        let first = slow.0.connection_id();
        // This one makes the server send GOAWAY on that connection.
        let goaway = open(&pool, addr, "/goaway").await.unwrap();
        assert_eq!(goaway.0.connection_id(), first);
        assert_eq!(finish(goaway).await, 200);
        eventually("the connection leaves the pool", DEADLINE, || {
            pool.connections() == 0
        })
        .await;
        // New requests go to a new connection and succeed.
        for i in 0..3 {
            let s = open(&pool, addr, &format!("/after{i}")).await.unwrap();
            assert_ne!(s.0.connection_id(), first);
            assert_eq!(finish(s).await, 200);
        }
        // The in-flight request on the old connection finishes normally.
        assert_eq!(finish(slow).await, 200);
        assert_eq!(pool.stats().opened, 2);
        assert_eq!(pool.stats().goaway, 1);
        eventually("the old connection closes", DEADLINE, || {
            pool.stats().closed == 1 && seen.closed.get() == 1
        })
        .await;
    });
}

#[test]
fn idle_connections_are_swept() {
    run(async {
        let (addr, seen) = server();
        let pool = Pool::new(PoolSettings {
            idle_timeout: Some(Duration::from_secs(60)),
            ..PoolSettings::default()
        });
        let busy = open(&pool, addr, "/busy").await.unwrap();
        let idle = open(&pool, addr, "/one").await.unwrap();
        let extra = open(&pool, addr, "/two").await.unwrap();
        assert_ne!(extra.0.connection_id(), busy.0.connection_id());
        assert_eq!(finish(idle).await, 200);
        assert_eq!(finish(extra).await, 200);
        // Not idle long enough yet.
        assert_eq!(pool.sweep(Instant::now()), 0);
        // An hour later: the connection without streams goes, the busy one stays.
        let later = Instant::now() + Duration::from_secs(3600);
        assert_eq!(pool.sweep(later), 1);
        assert_eq!(pool.connections(), 1);
        eventually("the idle connection closes", DEADLINE, || {
            pool.stats().closed == 1 && seen.closed.get() == 1
        })
        .await;
        assert_eq!(pool.stats().idle_closed, 1);
        assert_eq!(finish(busy).await, 200);
    });
}

#[test]
fn the_connection_cap_gives_overflow() {
    run(async {
        let (addr, _seen) = server();
        let pool = Pool::new(PoolSettings {
            max_connections_per_endpoint: 1,
            ..PoolSettings::default()
        });
        let a = open(&pool, addr, "/a").await.unwrap();
        let b = open(&pool, addr, "/b").await.unwrap();
        match open(&pool, addr, "/c").await {
            Err(PoolError::Overflow { max: 1 }) => {}
            other => panic!("expected overflow, got {:?}", other.map(|s| s.0)),
        }
        assert_eq!(pool.stats().overflow, 1);
        // Another cluster to the same address has its own connections.
        let other = pool
            .checkout(CLUSTER + 1, addr, &ClientSettings::default(), || {
                connect(addr)
            })
            .await
            .unwrap();
        assert_ne!(other.connection_id(), a.0.connection_id());
        drop(other);
        assert_eq!(finish(a).await, 200);
        assert_eq!(finish(b).await, 200);
    });
}

#[test]
fn drain_closes_connections_once_their_streams_end() {
    run(async {
        let (addr, seen) = server();
        let pool = Pool::new(PoolSettings::default());
        let busy = open(&pool, addr, "/busy").await.unwrap();
        assert_eq!(pool.drain(), 1);
        assert_eq!(pool.connections(), 0);
        assert_eq!(finish(busy).await, 200, "in-flight stream finishes");
        eventually("drained connection closes", DEADLINE, || {
            pool.stats().closed == 1 && seen.closed.get() == 1
        })
        .await;
    });
}

#[test]
fn connect_failure_is_reported() {
    run(async {
        let pool = Pool::new(PoolSettings::default());
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let err = pool
            .checkout(CLUSTER, addr, &ClientSettings::default(), || async {
                Err::<TcpStreamPoll, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, PoolError::Connect(_)), "{err}");
        assert_eq!(pool.stats().connect_failed, 1);
        assert_eq!(pool.stats().opened, 0);
    });
}

#[test]
fn a_cancelled_connect_does_not_block_the_endpoint() {
    run(async {
        let (addr, _seen) = server();
        let pool = Pool::new(PoolSettings::default());
        // The caller's timeout drops a checkout whose connect never finishes.
        let client = ClientSettings::default();
        let stuck = pool.checkout(CLUSTER, addr, &client, || {
            std::future::pending::<std::io::Result<TcpStreamPoll>>()
        });
        assert!(
            monoio::time::timeout(Duration::from_millis(50), stuck)
                .await
                .is_err()
        );
        // The next checkout connects instead of waiting for it forever.
        let next = monoio::time::timeout(DEADLINE, open(&pool, addr, "/next"))
            .await
            .expect("checkout not blocked")
            .unwrap();
        assert_eq!(finish(next).await, 200);
    });
}
