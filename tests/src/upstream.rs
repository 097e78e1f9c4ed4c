//! Scripted upstreams: a thread per connection running the test's closure,
//! recording every request head it saw, so a test can prove what was (and
//! was not) forwarded.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct Seen {
    pub connections: AtomicUsize,
    pub heads: Mutex<Vec<String>>,
}

impl Seen {
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// An upstream on 127.0.0.1 that runs `handler` for each connection.
#[derive(Debug)]
pub struct Scripted {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    pub fn start<F>(handler: F) -> Scripted
    where
        F: Fn(Conn) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                seen2.connections.fetch_add(1, Ordering::Relaxed);
                let (h, s) = (handler.clone(), seen2.clone());
                std::thread::spawn(move || {
                    h(Conn {
                        stream,
                        buf: Vec::new(),
                        seen: s,
                    })
                });
            }
        });
        Scripted { addr, seen, stop }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

/// One upstream connection as the handler sees it.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    pub buf: Vec<u8>,
    seen: Arc<Seen>,
}

impl Conn {
    /// Reads the next request head (recorded in `Seen`); None at EOF.
    pub fn read_head(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i + 4]).into_owned();
                self.buf.drain(..i + 4);
                self.seen.heads.lock().unwrap().push(head.clone());
                return Some(head);
            }
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads exactly `n` body bytes (after a head).
    pub fn read_exact_body(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// Reads a chunked body, returning the de-chunked bytes.
    pub fn read_chunked_body(&mut self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                while !self.read_line()?.is_empty() {}
                return Some(body);
            }
            body.extend(self.read_exact_body(size)?);
            self.read_exact_body(2)?;
        }
    }

    fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn write(&mut self, bytes: &[u8]) -> bool {
        use std::io::Write;
        self.stream.write_all(bytes).is_ok()
    }
}

/// Value of header `name` in a raw head, case-insensitive.
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}
