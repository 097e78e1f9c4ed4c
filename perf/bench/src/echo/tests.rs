use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::*;

fn start(echo_path: bool, io: Io) -> EchoServer {
    let cfg = EchoConfig {
        body_size: 5,
        echo_path,
        io,
        ..EchoConfig::default()
    };
    match EchoServer::start(&cfg) {
        Ok(s) => s,
        Err(e) => panic!("echo server did not start: {e}"),
    }
}

fn connect(s: &EchoServer) -> TcpStream {
    let c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// Reads until the peer closes.
fn read_to_close(c: &mut TcpStream) -> String {
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Reads exactly `n` bytes.
fn read_n(c: &mut TcpStream, n: usize) -> String {
    let mut out = vec![0; n];
    c.read_exact(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\neeeee";

#[test]
fn pipelined_requests_with_bodies_answer_in_order() {
    for io in [Io::Uring, Io::Epoll] {
        let s = start(false, io);
        let mut c = connect(&s);
        // Four requests in one write: plain, content-length body, chunked body
        // with a trailer, HEAD. The bodies must be skipped, not parsed as heads.
        c.write_all(
            b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\n\
              POST /2 HTTP/1.1\r\ncontent-length: 18\r\n\r\nGET /bogus HTTP/1.1\
              POST /3 HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
              4\r\nGET \r\n0\r\nx-t: 1\r\n\r\n\
              HEAD /4 HTTP/1.1\r\n\r\n",
        )
        .unwrap();
        let head_only = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        let expect = format!("{OK}{OK}{OK}{head_only}");
        assert_eq!(read_n(&mut c, expect.len()), expect, "{io:?}");
        // Still in sync: one more request on the same connection.
        c.write_all(b"GET /5 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_n(&mut c, OK.len()), OK, "{io:?}");
    }
}

#[test]
fn body_split_across_reads_keeps_sync() {
    let s = start(false, Io::Uring);
    let mut c = connect(&s);
    c.write_all(b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc")
        .unwrap();
    assert_eq!(read_n(&mut c, OK.len()), OK);
    std::thread::sleep(Duration::from_millis(20));
    c.write_all(b"defghij").unwrap();
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_n(&mut c, OK.len()), OK);
}

#[test]
fn connection_close_and_http10_are_honoured() {
    let s = start(false, Io::Uring);
    let mut c = connect(&s);
    c.write_all(b"GET / HTTP/1.1\r\nconnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_to_close(&mut c),
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\neeeee"
    );

    let mut c = connect(&s);
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(read_to_close(&mut c).contains("connection: close\r\n"));
}

#[test]
fn echo_path_header_only_when_asked() {
    let s = start(true, Io::Uring);
    let mut c = connect(&s);
    c.write_all(b"GET /some/path?q=1 HTTP/1.1\r\nconnection: close\r\n\r\n")
        .unwrap();
    let r = read_to_close(&mut c);
    assert!(r.contains("\r\nx-echo-path: /some/path?q=1\r\n"), "{r}");

    let s = start(false, Io::Uring);
    let mut c = connect(&s);
    c.write_all(b"GET /p HTTP/1.1\r\nconnection: close\r\n\r\n")
        .unwrap();
    assert!(!read_to_close(&mut c).contains("x-echo-path"));
}

#[test]
fn garbage_gets_400_and_close() {
    let s = start(false, Io::Uring);
    let mut c = connect(&s);
    c.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    assert!(read_to_close(&mut c).starts_with("HTTP/1.1 400 "));
}

#[test]
fn threads_share_one_port() {
    let cfg = EchoConfig {
        threads: 3,
        body_size: 5,
        ..EchoConfig::default()
    };
    let s = EchoServer::start(&cfg).unwrap();
    assert_ne!(s.addr().port(), 0);
    for _ in 0..6 {
        let mut c = connect(&s);
        c.write_all(b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n")
            .unwrap();
        assert!(read_to_close(&mut c).ends_with("eeeee"));
    }
}
