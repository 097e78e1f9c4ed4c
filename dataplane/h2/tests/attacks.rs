//! Known HTTP/2 attacks against a server built from spar-h2's settings: each test plays
//! the attacker with hand-written frames and asserts on what the server sends back (GOAWAY
//! and its code, RST_STREAM and its code, the connection closing) or on how much the
//! server read and wrote. Deadlines are generous and only there to fail instead of hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use std::time::Duration;

use spar_h2::{FloodBudget, FloodReason, ServerSettings};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(10);

/// A budget that never trips: what h2 does on its own.
fn unguarded() -> FloodBudget {
    FloodBudget {
        window: Duration::from_secs(3600),
        ping: u32::MAX,
        settings: u32::MAX,
        rst_stream: u32::MAX,
        empty_data: u32::MAX,
    }
}

/// A budget whose window is long enough that machine speed never matters.
fn guarded() -> FloodBudget {
    FloodBudget {
        window: Duration::from_secs(3600),
        ping: 100,
        settings: 20,
        rst_stream: 50,
        empty_data: 20,
    }
}

/// CVE-2023-44487 in one burst: h2's own `max_pending_accept_reset_streams` (20) sees
/// streams reset before the acceptor got to them and ends the connection.
#[test]
fn rapid_reset_burst_is_refused_by_h2() {
    run(async {
        let (addr, seen) = serve(ServerSettings::default(), unguarded(), Handler::Ok);
        let mut raw = Raw::connect(addr).await;
        raw.handshake().await;
        let mut burst = Vec::new();
        for i in 0..1000u32 {
            let id = 1 + 2 * i;
            burst.extend(headers(id, END_HEADERS | END_STREAM, &request_block("/r")));
            burst.extend(rst(id, CANCEL));
        }
        let _ = raw.send(&burst).await;
        let mut log = Vec::new();
        let goaway = raw.until_goaway(DEADLINE, &mut log).await.expect("GOAWAY");
        assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM);
        assert!(raw.closed_within(DEADLINE).await, "connection closed");
        assert!(
            seen.accepted.get() < 1000,
            "work bounded: {}",
            seen.accepted.get()
        );
    });
}

/// Rapid reset paced so that every stream is accepted before its reset arrives (what a
/// proxy that forwards at once sees): h2 alone would not count those. The flood guard
/// counts RST_STREAM frames and ends the connection.
#[test]
fn rapid_reset_paced_is_refused_by_the_guard() {
    run(async {
        let budget = guarded();
        let (addr, seen) = serve(ServerSettings::default(), budget.clone(), Handler::Ok);
        let mut raw = Raw::connect(addr).await;
        raw.handshake().await;
        let mut sent = 0u32;
        for i in 0..1000u32 {
            let id = 1 + 2 * i;
            if raw
                .send(&headers(id, END_HEADERS, &request_block("/r")))
                .await
                .is_err()
            {
                break;
            }
            // The server accepts the stream before its reset arrives.
            let deadline = std::time::Instant::now() + DEADLINE;
            while seen.accepted.get() <= i as usize && seen.closed.get() == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "stream {id} not accepted"
                );
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            if seen.closed.get() > 0 || raw.send(&rst(id, CANCEL)).await.is_err() {
                break;
            }
            sent += 1;
        }
        let mut log = Vec::new();
        let goaway = raw.until_goaway(DEADLINE, &mut log).await.expect("GOAWAY");
        assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM);
        eventually("server saw the flood", DEADLINE, || {
            seen.flood.get() == Some(FloodReason::RstStream)
        })
        .await;
        let accepted = seen.accepted.get();
        assert!(
            accepted <= budget.rst_stream as usize + 1,
            "accepted {accepted} streams after sending {sent} pairs"
        );
    });
}

/// Endless CONTINUATION frames after a HEADERS without END_HEADERS: h2 counts them and
/// sends GOAWAY ENHANCE_YOUR_CALM; the server reads a bounded number of bytes.
#[test]
fn continuation_flood_is_cut_off() {
    run(async {
        let (addr, seen) = serve(ServerSettings::default(), unguarded(), Handler::Ok);
        let mut raw = Raw::connect(addr).await;
        raw.handshake().await;
        raw.send(&headers(1, 0, &request_block("/c")))
            .await
            .unwrap();
        let filler = literal("x-fill", &[b'a'; 1000]);
        let cont = frame(CONTINUATION, 0, 1, &filler);
        let mut attempted = 0usize;
        for _ in 0..10_000 {
            let write = monoio::time::timeout(Duration::from_secs(2), raw.io.write_all(&cont));
            match write.await {
                Ok(Ok(())) => attempted += cont.len(),
                _ => break,
            }
        }
        let mut log = Vec::new();
        let goaway = raw.until_goaway(DEADLINE, &mut log).await.expect("GOAWAY");
        assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM);
        assert_eq!(goaway.goaway_debug(), "too_many_continuations");
        eventually("connection closed", DEADLINE, || seen.closed.get() == 1).await;
        let read = seen.bytes_read.get();
        assert!(
            read < 1024 * 1024,
            "server read {read} of {attempted} bytes"
        );
        assert_eq!(seen.accepted.get(), 0);
    });
}

/// HPACK bomb: one 4 KB entry in the dynamic table, then requests made of references to
/// it. Over the header list limit the stream is refused (431, never accepted) and the
/// connection lives on; over four times the limit (16,000 references: 64 MB decoded from
/// 16 KB) h2 ends the connection with ENHANCE_YOUR_CALM without building the list.
#[test]
fn hpack_bomb_is_refused_at_the_header_list_limit() {
    run(async {
        let (addr, seen) = serve(ServerSettings::default(), unguarded(), Handler::Ok);
        let mut raw = Raw::connect(addr).await;
        raw.handshake().await;
        let big = vec![b'b'; 4000];
        // Stream 1: a legitimate request that puts the entry in the table (index 62).
        let mut block = request_block("/seed");
        block.extend(literal_indexed("x-bomb", &big));
        raw.send(&headers(1, END_HEADERS | END_STREAM, &block))
            .await
            .unwrap();
        // Stream 3: 20 references, 80 KB decoded: over 60 KiB, under 4x.
        let mut block = request_block("/over");
        for _ in 0..20 {
            block.extend(indexed(62));
        }
        raw.send(&headers(3, END_HEADERS | END_STREAM, &block))
            .await
            .unwrap();
        // Stream 5: a normal request, which must still be served.
        raw.send(&headers(
            5,
            END_HEADERS | END_STREAM,
            &request_block("/after"),
        ))
        .await
        .unwrap();
        let mut answered = Vec::new();
        while !(answered.contains(&1) && answered.contains(&3) && answered.contains(&5)) {
            let f = raw.next(DEADLINE).await.expect("responses on 1, 3 and 5");
            assert_ne!(f.kind, GOAWAY, "connection ended early");
            if f.kind == HEADERS || f.kind == RST_STREAM {
                answered.push(f.stream);
            }
        }
        assert_eq!(
            *seen.paths.borrow(),
            vec!["/seed".to_owned(), "/after".to_owned()]
        );

        // Stream 7: the bomb itself, spread over a HEADERS and CONTINUATIONs of 16 KB.
        let mut block = request_block("/bomb");
        block.extend(std::iter::repeat_n(0xbe, 16_000 - block.len()));
        raw.send(&headers(7, END_HEADERS | END_STREAM, &block))
            .await
            .unwrap();
        let mut log = Vec::new();
        let goaway = raw.until_goaway(DEADLINE, &mut log).await.expect("GOAWAY");
        assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM);
        assert_eq!(goaway.goaway_debug(), "header_list_way_too_large");
        assert!(!seen.paths.borrow().contains(&"/bomb".to_owned()));
    });
}

/// More streams than `max_concurrent_streams`: the extra ones get RST_STREAM
/// REFUSED_STREAM; the others are untouched.
#[test]
fn streams_over_the_limit_are_refused() {
    run(async {
        let settings = ServerSettings {
            max_concurrent_streams: 3,
            ..ServerSettings::default()
        };
        let (addr, seen) = serve(settings, unguarded(), Handler::Hold);
        let mut raw = Raw::connect(addr).await;
        raw.handshake().await;
        for i in 0..6u32 {
            let block = request_block(&format!("/s{i}"));
            raw.send(&headers(1 + 2 * i, END_HEADERS | END_STREAM, &block))
                .await
                .unwrap();
        }
        let mut refused = Vec::new();
        while refused.len() < 3 {
            let f = raw.next(DEADLINE).await.expect("RST_STREAM frames");
            assert_ne!(f.kind, GOAWAY);
            if f.kind == RST_STREAM {
                assert_eq!(f.error_code(), REFUSED_STREAM, "stream {}", f.stream);
                refused.push(f.stream);
            }
        }
        refused.sort_unstable();
        assert_eq!(refused, vec![7, 9, 11]);
        eventually("three streams held", DEADLINE, || seen.accepted.get() == 3).await;
    });
}

/// A client that never opens its window for a 10 MiB response: the server hands h2 no
/// more than the window and `max_send_buffer_size` allow, the sender waits, the caller's
/// timeout fires and resets the stream.
#[test]
fn zero_window_stall_stays_bounded_and_times_out() {
    run(async {
        let settings = ServerSettings::default();
        let max_buffer = settings.max_send_buffer_size as usize;
        let len = 10 * 1024 * 1024;
        let handler = Handler::BigBody {
            len,
            timeout: Duration::from_millis(500),
        };
        let (addr, seen) = serve(settings, unguarded(), handler);
        let mut raw = Raw::connect(addr).await;
        raw.handshake().await;
        raw.send(&headers(
            1,
            END_HEADERS | END_STREAM,
            &request_block("/big"),
        ))
        .await
        .unwrap();
        let mut data = 0usize;
        let reset = loop {
            let f = raw.next(DEADLINE).await.expect("DATA then RST_STREAM");
            match f.kind {
                DATA => data += f.payload.len(),
                RST_STREAM => break f,
                _ => {}
            }
        };
        assert_eq!(reset.error_code(), CANCEL);
        assert!(data <= 65_535, "{data} DATA bytes beyond the window");
        let unsent = seen.unsent.get().expect("handler finished");
        assert!(
            unsent >= len - 65_535 - max_buffer,
            "h2 was handed {} bytes",
            len - unsent
        );
    });
}

/// Floods whose replies the attacker never reads, over a pipe with 64 KiB of buffer each
/// way. h2 keeps one pending ACK and stops reading while it cannot write: what the server
/// wrote stays within the pipe, and what it read stops growing.
fn flood_unread(frame_bytes: Vec<u8>) {
    run(async {
        const PIPE: usize = 64 * 1024;
        let (mut client, seen) =
            serve_duplex(PIPE, ServerSettings::default(), unguarded(), Handler::Ok);
        let mut hello = spar_h2::guard::PREFACE.to_vec();
        hello.extend(settings(&[]));
        hello.extend(frame(SETTINGS, ACK, 0, &[]));
        client.write_all(&hello).await.unwrap();
        let batch: Vec<u8> = frame_bytes.repeat(1000);
        let total = 100 * batch.len();
        let mut written = 0;
        for _ in 0..100 {
            match monoio::time::timeout(Duration::from_secs(1), client.write_all(&batch)).await {
                Ok(Ok(())) => written += batch.len(),
                _ => break,
            }
        }
        assert!(written < total, "the server kept reading: {written} bytes");
        let out = seen.bytes_written.get() as usize;
        assert!(
            out <= 2 * PIPE,
            "server wrote {out} bytes into a {PIPE} byte pipe"
        );
        let read = seen.bytes_read.get() as usize;
        assert!(read <= written + hello.len(), "read {read}");
        // Once the attacker reads, the connection is still an HTTP/2 connection.
        let mut buf = vec![0u8; 9];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf[3], SETTINGS);
    });
}

#[test]
fn ping_flood_unread_is_bounded_by_h2() {
    flood_unread(ping(7));
}

#[test]
fn settings_flood_unread_is_bounded_by_h2() {
    flood_unread(settings(&[]));
}

/// Floods whose replies the attacker does read cost work, not memory: the guard ends
/// them with GOAWAY ENHANCE_YOUR_CALM and names the reason.
async fn flood_read(frames: Vec<u8>, prelude: Vec<u8>, reason: FloodReason) {
    let (addr, seen) = serve(ServerSettings::default(), guarded(), Handler::Hold);
    let mut raw = Raw::connect(addr).await;
    raw.handshake().await;
    raw.send(&prelude).await.unwrap();
    let _ = raw.send(&frames.repeat(1000)).await;
    let mut log = Vec::new();
    let goaway = raw.until_goaway(DEADLINE, &mut log).await.expect("GOAWAY");
    assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM);
    assert!(raw.closed_within(DEADLINE).await, "connection closed");
    eventually("flood reason", DEADLINE, || {
        seen.flood.get() == Some(reason)
    })
    .await;
    let acks = log
        .iter()
        .filter(|f| f.kind == PING || f.kind == SETTINGS)
        .count();
    assert!(acks <= 101, "{acks} ACKs for a budget of 100");
}

#[test]
fn ping_flood_is_ended_by_the_guard() {
    run(flood_read(ping(1), Vec::new(), FloodReason::Ping));
}

#[test]
fn settings_flood_is_ended_by_the_guard() {
    run(flood_read(settings(&[]), Vec::new(), FloodReason::Settings));
}

#[test]
fn empty_data_flood_is_ended_by_the_guard() {
    let open = headers(1, END_HEADERS, &request_block("/upload"));
    run(flood_read(
        frame(DATA, 0, 1, &[]),
        open,
        FloodReason::EmptyData,
    ));
}

/// Upper-case names and connection-specific fields are malformed (RFC 9113 8.2): h2
/// refuses the request and our handler never sees it.
#[test]
fn malformed_fields_never_reach_the_handler() {
    run(async {
        let (addr, seen) = serve(ServerSettings::default(), unguarded(), Handler::Ok);
        let mut raw = Raw::connect(addr).await;
        raw.handshake().await;
        let mut block = request_block("/conn");
        block.extend(literal("connection", b"close"));
        raw.send(&headers(1, END_HEADERS | END_STREAM, &block))
            .await
            .unwrap();
        let f = verdict(&mut raw).await;
        assert!(
            (f.kind == RST_STREAM && f.error_code() == PROTOCOL_ERROR)
                || (f.kind == GOAWAY && f.error_code() == PROTOCOL_ERROR),
            "{f:?}"
        );
        let mut raw = Raw::connect(addr).await;
        raw.handshake().await;
        let mut block = request_block("/upper");
        block.extend(literal("X-Upper", b"1"));
        raw.send(&headers(1, END_HEADERS | END_STREAM, &block))
            .await
            .unwrap();
        let f = verdict(&mut raw).await;
        assert!(f.kind == RST_STREAM || f.kind == GOAWAY, "{f:?}");
        assert_ne!(f.error_code(), NO_ERROR);
        assert_eq!(seen.accepted.get(), 0);
    });
}

/// The first HEADERS, RST_STREAM or GOAWAY frame (window updates and pings skipped).
async fn verdict(raw: &mut Raw) -> Frame {
    loop {
        let f = raw.next(DEADLINE).await.expect("a reply");
        if matches!(f.kind, HEADERS | RST_STREAM | GOAWAY) {
            return f;
        }
    }
}
