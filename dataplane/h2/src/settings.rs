//! HTTP/2 connection settings as plain data, and the h2 builders made from them.
//!
//! What it does: [`ServerSettings`] (downstream connections) and [`ClientSettings`]
//! (upstream connections) mirror Envoy's `envoy.config.core.v3.Http2ProtocolOptions` plus
//! the HCM's `max_request_headers_kb`, with bounded defaults; [`ServerSettings::validate`]
//! and [`ClientSettings::validate`] check Envoy's ranges; [`server_builder`] and
//! [`client_builder`] turn them into `h2::server::Builder` / `h2::client::Builder`, never
//! panicking (h2 asserts on some out-of-range values, so the builders clamp what
//! `validate` would refuse).
//!
//! What it does not do: read config (the config compiler fills these structs), or enforce
//! the limits that h2 has no knob for (see [`crate::guard`]).

use std::time::Duration;

/// Largest window and largest stream count HTTP/2 allows (RFC 9113 6.9.1: 2^31-1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// Smallest window Envoy accepts: the protocol's initial 65,535 bytes.
pub const MIN_WINDOW: u32 = 65_535;
/// Smallest and largest SETTINGS_MAX_FRAME_SIZE (RFC 9113 6.5.2), in bytes.
pub const MIN_FRAME_SIZE: u32 = 16_384;
/// See [`MIN_FRAME_SIZE`].
pub const MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// Largest `max_request_headers_kb` Envoy accepts: 8,192 KiB.
pub const MAX_HEADER_LIST_KB: u32 = 8_192;

/// Default stream window: 1 MiB. Envoy's default is 256 MiB, which lets one peer that
/// stops reading make the proxy buffer 256 MiB per stream. 1 MiB keeps a single stream
/// at 1 GiB/s over a 1 ms in-mesh round trip (window / RTT), which is above what one
/// worker forwards, while bounding what a stalled stream can pin.
pub const DEFAULT_STREAM_WINDOW: u32 = 1024 * 1024;
/// Default connection window: 4 MiB, so four streams can run at full stream window at
/// once and a whole connection never holds more than 4 MiB of unread request (or
/// response) bytes. Gateways facing the internet may lower both (Envoy's edge guidance is
/// 64 KiB / 1 MiB).
pub const DEFAULT_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// Settings for HTTP/2 connections the proxy accepts (downstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise. Envoy's range 1..=2^31-1. Default 100:
    /// Envoy's edge recommendation, and what most servers advertise; a stream over it is
    /// refused with RST_STREAM(REFUSED_STREAM).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE, bytes. Range 65,535..=2^31-1. Default
    /// [`DEFAULT_STREAM_WINDOW`].
    pub initial_stream_window_size: u32,
    /// Connection-level receive window, bytes. Range 65,535..=2^31-1. Default
    /// [`DEFAULT_CONNECTION_WINDOW`].
    pub initial_connection_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE, bytes. Range 16,384..=2^24-1. Default 16,384 (the
    /// protocol's default: bigger frames only add head-of-line blocking between streams).
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE, from the HCM's `max_request_headers_kb`, KiB.
    /// Range 1..=8192. Default 60 (Envoy's). Over it h2 answers 431; over four times it,
    /// h2 closes the connection with ENHANCE_YOUR_CALM.
    pub max_header_list_kb: u32,
    /// SETTINGS_HEADER_TABLE_SIZE, bytes: the HPACK dynamic table the peer may fill in our
    /// memory. Default 4,096 (the protocol's default, Envoy's `hpack_table_size`).
    pub header_table_size: u32,
    /// Streams the peer reset before we accepted them, at most, before the connection is
    /// closed with ENHANCE_YOUR_CALM (the rapid reset attack, CVE-2023-44487). Default
    /// 20 (h2's).
    pub max_pending_accept_reset_streams: usize,
    /// Streams we reset because of the peer's protocol errors, at most, before the
    /// connection is closed with ENHANCE_YOUR_CALM. Default 1,024 (h2's).
    pub max_local_error_reset_streams: usize,
    /// Bytes h2 buffers per stream on the send side before `poll_capacity` stops granting
    /// more (see [`crate::send_data`]). Default 256 KiB: a quarter of the stream window,
    /// enough to keep the socket busy while the next chunk is read from the upstream.
    pub max_send_buffer_size: u32,
    /// Locally reset streams whose state is kept to ignore the peer's late frames. Default
    /// 50 (h2's).
    pub max_concurrent_reset_streams: usize,
    /// How long that state is kept. Default 1 s (h2's).
    pub reset_stream_duration: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            max_concurrent_streams: 100,
            initial_stream_window_size: DEFAULT_STREAM_WINDOW,
            initial_connection_window_size: DEFAULT_CONNECTION_WINDOW,
            max_frame_size: MIN_FRAME_SIZE,
            max_header_list_kb: 60,
            header_table_size: 4096,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            max_send_buffer_size: 256 * 1024,
            max_concurrent_reset_streams: 50,
            reset_stream_duration: Duration::from_secs(1),
        }
    }
}

impl ServerSettings {
    /// The first value outside Envoy's ranges, as a message naming the field; Ok when all
    /// are in range.
    pub fn validate(&self) -> Result<(), String> {
        check_streams(self.max_concurrent_streams)?;
        check_windows(
            self.initial_stream_window_size,
            self.initial_connection_window_size,
        )?;
        check_frame_size(self.max_frame_size)?;
        check_header_list(self.max_header_list_kb)?;
        check_reset_duration(self.reset_stream_duration)
    }

    /// The header list limit in bytes.
    pub fn max_header_list_bytes(&self) -> u32 {
        header_list_bytes(self.max_header_list_kb)
    }
}

/// Settings for HTTP/2 connections the proxy opens (upstream), per cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Streams the pool opens on one connection, at most; the peer's own
    /// SETTINGS_MAX_CONCURRENT_STREAMS lowers it further. Envoy's range 1..=2^31-1 and
    /// default 2^31-1 (the peer decides).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE for responses, bytes. Range 65,535..=2^31-1. Default
    /// [`DEFAULT_STREAM_WINDOW`].
    pub initial_stream_window_size: u32,
    /// Connection-level receive window, bytes. Default [`DEFAULT_CONNECTION_WINDOW`].
    pub initial_connection_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE, bytes. Default 16,384.
    pub max_frame_size: u32,
    /// Largest response header list accepted, KiB. Default 60.
    pub max_header_list_kb: u32,
    /// HPACK dynamic table for responses, bytes. Default 4,096.
    pub header_table_size: u32,
    /// Streams we reset because of the upstream's protocol errors, at most, before the
    /// connection is closed. Default 1,024.
    pub max_local_error_reset_streams: usize,
    /// Bytes h2 buffers per stream on the send side. Default 256 KiB.
    pub max_send_buffer_size: u32,
    /// Locally reset streams whose state is kept. Default 50.
    pub max_concurrent_reset_streams: usize,
    /// How long that state is kept. Default 1 s.
    pub reset_stream_duration: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            max_concurrent_streams: MAX_WINDOW,
            initial_stream_window_size: DEFAULT_STREAM_WINDOW,
            initial_connection_window_size: DEFAULT_CONNECTION_WINDOW,
            max_frame_size: MIN_FRAME_SIZE,
            max_header_list_kb: 60,
            header_table_size: 4096,
            max_local_error_reset_streams: 1024,
            max_send_buffer_size: 256 * 1024,
            max_concurrent_reset_streams: 50,
            reset_stream_duration: Duration::from_secs(1),
        }
    }
}

impl ClientSettings {
    /// The first value outside Envoy's ranges, as a message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        check_streams(self.max_concurrent_streams)?;
        check_windows(
            self.initial_stream_window_size,
            self.initial_connection_window_size,
        )?;
        check_frame_size(self.max_frame_size)?;
        check_header_list(self.max_header_list_kb)?;
        check_reset_duration(self.reset_stream_duration)
    }

    /// The header list limit in bytes.
    pub fn max_header_list_bytes(&self) -> u32 {
        header_list_bytes(self.max_header_list_kb)
    }
}

/// An `h2::server::Builder` with `s` applied. Out-of-range values are clamped into range
/// (validate first to refuse them instead). Extended CONNECT stays disabled and push is
/// never used by a server.
pub fn server_builder(s: &ServerSettings) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(s.max_concurrent_streams.clamp(1, MAX_WINDOW))
        .initial_window_size(window(s.initial_stream_window_size))
        .initial_connection_window_size(window(s.initial_connection_window_size))
        .max_frame_size(s.max_frame_size.clamp(MIN_FRAME_SIZE, MAX_FRAME_SIZE))
        .max_header_list_size(s.max_header_list_bytes())
        .header_table_size(s.header_table_size)
        .max_pending_accept_reset_streams(s.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(s.max_local_error_reset_streams))
        .max_send_buffer_size(s.max_send_buffer_size as usize)
        .max_concurrent_reset_streams(s.max_concurrent_reset_streams)
        .reset_stream_duration(s.reset_stream_duration);
    b
}

/// An `h2::client::Builder` with `s` applied, push disabled. Clamps like
/// [`server_builder`]. The stream cap is the pool's business (`max_concurrent_streams` is
/// not sent: it would only limit pushed streams, which are disabled).
pub fn client_builder(s: &ClientSettings) -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.enable_push(false)
        .initial_window_size(window(s.initial_stream_window_size))
        .initial_connection_window_size(window(s.initial_connection_window_size))
        .max_frame_size(s.max_frame_size.clamp(MIN_FRAME_SIZE, MAX_FRAME_SIZE))
        .max_header_list_size(s.max_header_list_bytes())
        .header_table_size(s.header_table_size)
        .max_local_error_reset_streams(Some(s.max_local_error_reset_streams))
        .max_send_buffer_size(s.max_send_buffer_size as usize)
        .max_concurrent_reset_streams(s.max_concurrent_reset_streams)
        .reset_stream_duration(s.reset_stream_duration);
    b
}

fn window(size: u32) -> u32 {
    size.clamp(MIN_WINDOW, MAX_WINDOW)
}

fn header_list_bytes(kb: u32) -> u32 {
    kb.clamp(1, MAX_HEADER_LIST_KB) * 1024
}

fn check_streams(n: u32) -> Result<(), String> {
    if (1..=MAX_WINDOW).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "max_concurrent_streams {n} is outside 1..={MAX_WINDOW}"
        ))
    }
}

fn check_windows(stream: u32, connection: u32) -> Result<(), String> {
    for (name, v) in [
        ("initial_stream_window_size", stream),
        ("initial_connection_window_size", connection),
    ] {
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&v) {
            return Err(format!("{name} {v} is outside {MIN_WINDOW}..={MAX_WINDOW}"));
        }
    }
    Ok(())
}

fn check_frame_size(n: u32) -> Result<(), String> {
    if (MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "max_frame_size {n} is outside {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE}"
        ))
    }
}

fn check_header_list(kb: u32) -> Result<(), String> {
    if (1..=MAX_HEADER_LIST_KB).contains(&kb) {
        Ok(())
    } else {
        Err(format!(
            "max_request_headers_kb {kb} is outside 1..={MAX_HEADER_LIST_KB}"
        ))
    }
}

/// h2 keeps reset streams for this long; an hour would keep attacker state that long.
fn check_reset_duration(d: Duration) -> Result<(), String> {
    if d <= Duration::from_secs(60) {
        Ok(())
    } else {
        Err(format!(
            "reset_stream_duration {} s is over 60 s",
            d.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ServerSettings::default().validate(), Ok(()));
        assert_eq!(ClientSettings::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_values_are_named() {
        type Edit = fn(&mut ServerSettings);
        let cases: [(Edit, &str); 8] = [
            (|s| s.max_concurrent_streams = 0, "max_concurrent_streams 0"),
            (
                |s| s.max_concurrent_streams = MAX_WINDOW + 1,
                "max_concurrent_streams 2147483648",
            ),
            (
                |s| s.initial_stream_window_size = 65_534,
                "initial_stream_window_size 65534",
            ),
            (
                |s| s.initial_connection_window_size = u32::MAX,
                "initial_connection_window_size 4294967295",
            ),
            (|s| s.max_frame_size = 16_383, "max_frame_size 16383"),
            (|s| s.max_frame_size = 1 << 24, "max_frame_size 16777216"),
            (|s| s.max_header_list_kb = 0, "max_request_headers_kb 0"),
            (
                |s| s.reset_stream_duration = Duration::from_secs(61),
                "reset_stream_duration 61 s",
            ),
        ];
        for (edit, want) in cases {
            let mut s = ServerSettings::default();
            edit(&mut s);
            let err = s.validate().err().unwrap_or_default();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
        let c = ClientSettings {
            initial_stream_window_size: 1,
            ..ClientSettings::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn limits_at_the_edges_are_accepted() {
        let s = ServerSettings {
            max_concurrent_streams: 1,
            initial_stream_window_size: MIN_WINDOW,
            initial_connection_window_size: MAX_WINDOW,
            max_frame_size: MAX_FRAME_SIZE,
            max_header_list_kb: MAX_HEADER_LIST_KB,
            ..ServerSettings::default()
        };
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.max_header_list_bytes(), 8192 * 1024);
    }

    #[test]
    fn builders_clamp_instead_of_panicking() {
        let s = ServerSettings {
            max_concurrent_streams: 0,
            initial_stream_window_size: 0,
            initial_connection_window_size: u32::MAX,
            max_frame_size: 0,
            max_header_list_kb: u32::MAX,
            ..ServerSettings::default()
        };
        let _ = server_builder(&s);
        let c = ClientSettings {
            max_frame_size: u32::MAX,
            max_header_list_kb: 0,
            ..ClientSettings::default()
        };
        let _ = client_builder(&c);
    }
}
