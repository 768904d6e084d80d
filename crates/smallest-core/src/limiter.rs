//! The account's concurrent-TTS slots, first come first served, for any executor.
//!
//! API.md §8.4: one concurrent TTS request by default per account, shared by sync, SSE
//! and WebSocket TTS. A call that needs a slot waits for one instead of provoking a
//! 429. [`TtsLimiter::acquire`] is a plain [`Future`] woken through its [`Waker`]: it
//! needs no runtime, so tokio, smol, a hand-written executor and a blocking thread
//! (which parks until woken) all use the same queue. No clock, no thread, no I/O.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::limits::Permit;

/// A held TTS slot; dropping it frees the slot for the next waiter. The same
/// [`Permit`] every [`Limits`](crate::limits::Limits) implementation hands out.
pub type TtsPermit = Permit;

/// The account's TTS slots. Clones share them: hand one limiter to every client of the
/// same account.
#[derive(Clone)]
pub struct TtsLimiter {
    shared: Arc<Mutex<Queue>>,
    size: usize,
}

/// Tickets keep the queue fair: only the front waiter may take a free slot.
struct Queue {
    free: usize,
    next_ticket: u64,
    waiters: VecDeque<(u64, Option<Waker>)>,
}

impl Queue {
    /// Wakes the front waiter when a slot is free for it.
    fn wake_front(&mut self) {
        if self.free > 0
            && let Some((_, waker)) = self.waiters.front_mut()
            && let Some(waker) = waker.take()
        {
            waker.wake();
        }
    }
}

impl TtsLimiter {
    /// A limiter with `concurrency` slots (at least 1).
    pub fn new(concurrency: usize) -> Self {
        let size = concurrency.max(1);
        TtsLimiter {
            shared: Arc::new(Mutex::new(Queue {
                free: size,
                next_ticket: 0,
                waiters: VecDeque::new(),
            })),
            size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of slots.
    pub fn concurrency(&self) -> usize {
        self.size
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.lock().free
    }

    /// Calls waiting for a slot right now.
    pub fn waiting(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Waits for a slot, behind every earlier caller. Dropping the future gives its
    /// place in the queue back; the slot is held until the [`TtsPermit`] is dropped.
    pub fn acquire(&self) -> Acquire {
        Acquire {
            limiter: self.clone(),
            ticket: None,
        }
    }

    /// Gives a slot back (a dropped [`Permit`] of this limiter).
    pub(crate) fn release(&self) {
        let mut queue = self.lock();
        queue.free += 1;
        queue.wake_front();
    }

    /// A slot now, if one is free and nobody is waiting.
    pub fn try_acquire(&self) -> Option<TtsPermit> {
        let mut queue = self.lock();
        if queue.free > 0 && queue.waiters.is_empty() {
            queue.free -= 1;
            Some(Permit::local(self.clone()))
        } else {
            None
        }
    }
}

impl fmt::Debug for TtsLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = self.lock();
        f.debug_struct("TtsLimiter")
            .field("concurrency", &self.size)
            .field("available", &queue.free)
            .field("waiting", &queue.waiters.len())
            .finish()
    }
}

/// The future of [`TtsLimiter::acquire`].
#[must_use = "a slot is only taken when the future is awaited"]
pub struct Acquire {
    limiter: TtsLimiter,
    ticket: Option<u64>,
}

impl Future for Acquire {
    type Output = TtsPermit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TtsPermit> {
        let this = &mut *self;
        let mut queue = this.limiter.lock();
        let ticket = match this.ticket {
            Some(ticket) => ticket,
            None => {
                if queue.free > 0 && queue.waiters.is_empty() {
                    queue.free -= 1;
                    drop(queue);
                    return Poll::Ready(Permit::local(this.limiter.clone()));
                }
                let ticket = queue.next_ticket;
                queue.next_ticket += 1;
                queue.waiters.push_back((ticket, None));
                this.ticket = Some(ticket);
                ticket
            }
        };
        let front = queue.waiters.front().map(|(t, _)| *t);
        if front == Some(ticket) && queue.free > 0 {
            queue.free -= 1;
            queue.waiters.pop_front();
            // Another slot may be free for the next waiter.
            queue.wake_front();
            drop(queue);
            this.ticket = None;
            return Poll::Ready(Permit::local(this.limiter.clone()));
        }
        if let Some((_, waker)) = queue.waiters.iter_mut().find(|(t, _)| *t == ticket) {
            *waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let mut queue = self.limiter.lock();
            queue.waiters.retain(|(t, _)| *t != ticket);
            queue.wake_front();
        }
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("queued", &self.ticket.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut Acquire, waker: &Waker) -> Poll<TtsPermit> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn slots_go_in_order_and_cancelled_waiters_give_their_place_back() {
        let limiter = TtsLimiter::new(1);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let first = limiter.try_acquire().expect("free");
        let mut a = limiter.acquire();
        let mut b = limiter.acquire();
        let mut c = limiter.acquire();
        assert!(poll(&mut a, &waker).is_pending());
        assert!(poll(&mut b, &waker).is_pending());
        assert!(poll(&mut c, &waker).is_pending());
        assert_eq!(limiter.waiting(), 3);
        drop(a); // cancelled: b is next
        drop(first);
        assert!(count.0.load(Ordering::SeqCst) >= 1);
        assert!(poll(&mut c, &waker).is_pending(), "c is behind b");
        let held = match poll(&mut b, &waker) {
            Poll::Ready(p) => p,
            Poll::Pending => panic!("b is first"),
        };
        assert_eq!(limiter.available(), 0);
        drop(held);
        assert!(poll(&mut c, &waker).is_ready());
        assert_eq!(limiter.available(), 1);
        assert_eq!(limiter.waiting(), 0);
    }
}
