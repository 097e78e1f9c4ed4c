//! Arbitrary bytes after the client preface, read by an h2 server built with spar-h2's
//! settings (behind its flood guard) over an in-memory pipe, polled by a tiny executor
//! until the server is done or stops making progress. Every request that comes out goes
//! through the head conversions both ways, and gets an answer built by them. Must never
//! panic.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use spar_h2::{
    FloodBudget, Scheme, ServerConnection, ServerSettings, h2_request, h2_response, request_head,
    response_head, trailers_from_map, trailers_to_map,
};
use spar_http::{ForwardOptions, Limits};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Polls without progress before giving up: the server waits for more input.
const IDLE_ROUNDS: u32 = 64;

fuzz_target!(|data: &[u8]| {
    let mut input = spar_h2::guard::PREFACE.to_vec();
    input.extend_from_slice(data);
    let (mut client, server_io) = tokio::io::duplex(16 * 1024);
    let settings = ServerSettings {
        max_concurrent_streams: 8,
        max_header_list_kb: 8,
        ..ServerSettings::default()
    };
    let mut server = pin!(serve(server_io, settings));

    let mut cx = Context::from_waker(Waker::noop());
    let mut written = 0;
    let mut shut = false;
    let mut idle = 0;
    let mut sink = vec![0u8; 16 * 1024];
    while idle < IDLE_ROUNDS {
        let mut progress = false;
        if written < input.len() {
            if let Poll::Ready(Ok(n)) =
                std::pin::Pin::new(&mut client).poll_write(&mut cx, &input[written..])
            {
                written += n;
                progress |= n > 0;
            }
        } else if !shut {
            let _ = std::pin::Pin::new(&mut client).poll_shutdown(&mut cx);
            shut = true;
            progress = true;
        }
        let mut buf = ReadBuf::new(&mut sink);
        if let Poll::Ready(Ok(())) = std::pin::Pin::new(&mut client).poll_read(&mut cx, &mut buf) {
            progress |= !buf.filled().is_empty();
        }
        if server.as_mut().poll(&mut cx).is_ready() {
            break;
        }
        idle = if progress { 0 } else { idle + 1 };
    }
});

async fn serve(io: tokio::io::DuplexStream, settings: ServerSettings) {
    let Ok(mut conn) = ServerConnection::handshake(io, &settings, FloodBudget::default()).await
    else {
        return;
    };
    let limits = Limits::default();
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        let (parts, body) = req.into_parts();
        let end = body.is_end_stream();
        let status = match request_head(&parts, end, &limits) {
            Ok(converted) => {
                let scheme = converted.scheme.unwrap_or(Scheme::Http);
                if let Ok(out) = h2_request(&converted.head, scheme, &ForwardOptions::default()) {
                    let trailers = trailers_from_map(out.headers());
                    let _ = trailers_to_map(&trailers);
                }
                200
            }
            Err(e) => e.status(),
        };
        let mut res = http::Response::new(());
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
        if let Some(v) = parts.headers.get("x-echo") {
            res.headers_mut().insert("x-echo", v.clone());
        }
        let (res_parts, ()) = res.into_parts();
        let reply = response_head(&res_parts, true, &spar_http::Method::Get, &limits)
            .ok()
            .and_then(|head| h2_response(&head, &[], &[]).ok());
        if let Some(reply) = reply {
            let _ = respond.send_response(reply, true);
        }
    }
}
