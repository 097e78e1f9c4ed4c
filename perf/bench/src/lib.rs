//! spar-bench: an HTTP/1.1 load generator and a fast echo upstream.
//!
//! `load` drives a target over keep-alive (or one connection per request)
//! either closed loop, as fast as each connection can go, or open loop at a
//! fixed rate with wrk2's coordinated-omission correction: latency counts from
//! when a request *should* have been sent, so a stalled server shows up in the
//! histogram instead of just slowing the load down. Threads are monoio
//! runtimes (io_uring, or epoll as a fallback) that share nothing per request;
//! their HdrHistograms are merged at the end.
//!
//! `echo` is the upstream the tests and demos run against: keep-alive,
//! pipelining, request bodies discarded with proper framing.
//!
//! Not here: HTTP/2, TLS, request bodies other than a fixed size, response
//! content checks beyond framing and status, and anything the proxy uses at
//! run time (this crate is a tool; nothing in the data plane depends on it).
//!
//! `--json` keys (latencies in microseconds): `url`, `mode` (`closed`|`open`),
//! `rate`, `io`, `threads`, `connections`, `new_conn`, `duration_s`,
//! `requests`, `ok`, `throughput_rps`, `bytes_read`, `bytes_written`,
//! `latency_us` {`min`, `mean`, `stdev`, `p50`, `p90`, `p99`, `p99_9`, `max`},
//! `errors` {`connect`, `read`, `write`, `timeout`, `parse`, `status` {`1xx`,
//! `3xx`, `4xx`, `5xx`, `other`}}, `errors_total`.

pub mod cli;
pub mod echo;
pub mod h1;
pub mod load;
pub mod rbuf;
pub mod report;
pub mod sys;

pub use echo::{EchoConfig, EchoServer};
pub use load::{LoadConfig, Target};
pub use report::Report;
pub use sys::Io;
