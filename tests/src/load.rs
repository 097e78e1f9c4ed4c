//! A client sending requests in a loop while a test changes the config under it: each
//! request on a new connection (so each takes the newest config), bodies and failures
//! kept, so a test can show that a change moved traffic and failed no request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::http;

/// The running loop; [`Load::finish`] stops it.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    bodies: Arc<Mutex<Vec<String>>>,
    failures: Arc<Mutex<Vec<String>>>,
    sent: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    /// Starts sending `GET /` to `addr`.
    pub fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let (s, b, f, n) = (stop.clone(), bodies.clone(), failures.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                n.fetch_add(1, Ordering::Relaxed);
                let outcome = match http::get(addr, "/") {
                    Ok(r) if r.status == 200 => Ok(r.body_text()),
                    Ok(r) => Err(format!("{} {}", r.status, r.body_text())),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(body) => lock(&b).push(body),
                    Err(failure) => lock(&f).push(failure),
                }
            }
        });
        Load {
            stop,
            bodies,
            failures,
            sent,
            thread: Some(thread),
        }
    }

    /// The body of the latest successful request.
    pub fn last(&self) -> Option<String> {
        lock(&self.bodies).last().cloned()
    }

    /// Successful requests so far.
    pub fn count(&self) -> usize {
        lock(&self.bodies).len()
    }

    /// Stops the loop; returns (requests sent, failures).
    pub fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let failures = lock(&self.failures).clone();
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
