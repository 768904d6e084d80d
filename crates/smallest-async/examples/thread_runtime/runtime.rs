//! A complete `smallest_async::Runtime` for an executor that has no reactor and no
//! timers of its own — here `futures::executor`: every TCP connection gets a reader
//! thread and a writer thread that turn blocking `std::net` I/O into futures-io, and one
//! thread keeps the timers. About 150 lines, and nothing of smallest-async's internals:
//! only the two methods of the trait.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use smallest_async::{AsyncIo, AsyncTimer, BoxFuture, Runtime};

/// Thread-per-connection I/O and one timer thread.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ThreadRuntime;

impl Runtime for ThreadRuntime {
    fn connect(&self, host: &str, port: u16) -> BoxFuture<io::Result<Box<dyn AsyncIo>>> {
        let (done, result) = oneshot::channel();
        let host = host.to_owned();
        // A blocking connect, on its own thread, so the executor's thread never blocks.
        std::thread::spawn(move || {
            let _ =
                done.send(TcpStream::connect((host.as_str(), port)).and_then(ThreadStream::new));
        });
        Box::pin(async move {
            let stream = result
                .await
                .map_err(|_| io::Error::other("the connecting thread ended"))??;
            Ok(Box::new(stream) as Box<dyn AsyncIo>)
        })
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(ThreadTimer { deadline })
    }
}

/// A TCP stream whose reads and writes run on two threads of its own.
struct ThreadStream {
    tcp: TcpStream,
    incoming: mpsc::Receiver<io::Result<Vec<u8>>>,
    outgoing: Option<mpsc::Sender<Vec<u8>>>,
    /// What was read and not yet handed out.
    buffered: Vec<u8>,
}

impl ThreadStream {
    fn new(tcp: TcpStream) -> io::Result<Self> {
        tcp.set_nodelay(true)?;
        // Bounded channels: a slow reader or writer pushes back, memory stays flat.
        let (mut to_reader, incoming) = mpsc::channel(4);
        let (outgoing, mut to_writer) = mpsc::channel::<Vec<u8>>(8);
        let mut read_half = tcp.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = vec![0; 16 * 1024];
            loop {
                let chunk = match read_half.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => Ok(buf[..n].to_vec()),
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if futures::executor::block_on(to_reader.send(chunk)).is_err() || failed {
                    break;
                }
            }
        });
        let mut write_half = tcp.try_clone()?;
        std::thread::spawn(move || {
            while let Some(bytes) = futures::executor::block_on(to_writer.next()) {
                if write_half.write_all(&bytes).is_err() {
                    break;
                }
            }
            let _ = write_half.shutdown(Shutdown::Write);
        });
        Ok(ThreadStream {
            tcp,
            incoming,
            outgoing: Some(outgoing),
            buffered: Vec::new(),
        })
    }
}

impl futures::io::AsyncRead for ThreadStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.buffered.is_empty() {
            match std::task::ready!(self.incoming.poll_next_unpin(cx)) {
                None => return Poll::Ready(Ok(0)),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(bytes)) => self.buffered = bytes,
            }
        }
        let n = buf.len().min(self.buffered.len());
        buf[..n].copy_from_slice(&self.buffered[..n]);
        self.buffered.drain(..n);
        Poll::Ready(Ok(n))
    }
}

impl futures::io::AsyncWrite for ThreadStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(outgoing) = self.outgoing.as_mut() else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        if std::task::ready!(outgoing.poll_ready(cx)).is_err() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        match outgoing.start_send(buf.to_vec()) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Queued bytes are the writer thread's; back-pressure comes from the channel.
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The writer thread writes what is queued, then shuts the write half.
        self.outgoing = None;
        Poll::Ready(Ok(()))
    }
}

impl Drop for ThreadStream {
    fn drop(&mut self) {
        // Ends the reader thread (its blocking read returns).
        let _ = self.tcp.shutdown(Shutdown::Read);
    }
}

/// A deadline the timer thread wakes.
#[derive(Debug)]
struct ThreadTimer {
    deadline: Instant,
}

impl AsyncTimer for ThreadTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.deadline = deadline;
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        timers().add(self.deadline, cx.waker().clone());
        Poll::Pending
    }
}

/// The wakers waiting for a deadline, earliest first, and the thread that wakes them.
struct Timers {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
}

struct Entry(Instant, Waker);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl Timers {
    fn add(&self, at: Instant, waker: Waker) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        heap.push(Reverse(Entry(at, waker)));
        self.changed.notify_one();
    }

    fn run(&self) {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            while heap.peek().is_some_and(|Reverse(e)| e.0 <= now) {
                if let Some(Reverse(Entry(_, waker))) = heap.pop() {
                    waker.wake();
                }
            }
            heap = match heap.peek().map(|Reverse(e)| e.0) {
                None => self.changed.wait(heap).unwrap_or_else(|e| e.into_inner()),
                Some(next) => {
                    self.changed
                        .wait_timeout(heap, next.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

fn timers() -> &'static Arc<Timers> {
    static TIMERS: OnceLock<Arc<Timers>> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let timers = Arc::new(Timers {
            heap: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        });
        let thread = timers.clone();
        std::thread::spawn(move || thread.run());
        timers
    })
}
