//! A worker-local drain signal: idle keep-alive connections wait on it so a
//! drain closes them at once instead of at their idle timeout.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Wakers of pending waits in a slab: a wait takes a slot and gives it back
/// when dropped, so the table is bounded by the waits pending right now.
#[derive(Debug, Default)]
struct Slots {
    entries: Vec<Option<Waker>>,
    free: Vec<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    draining: Cell<bool>,
    waiters: RefCell<Slots>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Drain(Rc<Inner>);

impl Drain {
    pub(crate) fn start(&self) {
        self.0.draining.set(true);
        let wakers: Vec<Waker> = self
            .0
            .waiters
            .borrow_mut()
            .entries
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.0.draining.get()
    }

    /// Resolves once draining has started.
    pub(crate) fn wait(&self) -> Wait {
        Wait {
            drain: self.clone(),
            slot: None,
        }
    }
}

pub(crate) struct Wait {
    drain: Drain,
    slot: Option<usize>,
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.drain.0.draining.get() {
            return Poll::Ready(());
        }
        let mut slots = self.drain.0.waiters.borrow_mut();
        match self.slot {
            Some(i) => slots.entries[i] = Some(cx.waker().clone()),
            None => {
                let i = match slots.free.pop() {
                    Some(i) => {
                        slots.entries[i] = Some(cx.waker().clone());
                        i
                    }
                    None => {
                        slots.entries.push(Some(cx.waker().clone()));
                        slots.entries.len() - 1
                    }
                };
                drop(slots);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut slots = self.drain.0.waiters.borrow_mut();
            slots.entries[i] = None;
            slots.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_drain_wakes() {
        let d = Drain::default();
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut w = Box::pin(d.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(d.0.waiters.borrow().entries.len(), 1);
        let mut w = Box::pin(d.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        d.start();
        assert!(w.as_mut().poll(&mut cx).is_ready());
        assert!(d.is_draining());
    }

    fn futures_noop_waker() -> Waker {
        Waker::noop().clone()
    }
}
