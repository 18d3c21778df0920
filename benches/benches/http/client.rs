//! A small HTTP/1.1 keep-alive client: a fixed set of loopback connections, each with one
//! `POST /add` outstanding at a time, reading `Content-Length` responses. Every response must
//! be `200` with a decimal number as its body (the counter after the increment).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The one request every connection sends: JSON `{"by":1}`.
const REQUEST: &[u8] = b"POST /add HTTP/1.1\r\nHost: 127.0.0.1\r\n\
Content-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"by\":1}";

/// Longest response head and body this client accepts.
const BUFFER: usize = 4096;

/// One keep-alive connection and the bytes it has read but not yet used.
struct Connection {
    stream: TcpStream,
    buf: Box<[u8; BUFFER]>,
    start: usize,
    end: usize,
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Connection {
    async fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Box::new([0; BUFFER]),
            start: 0,
            end: 0,
        })
    }

    /// Reads more bytes after those held; an error at end of stream or when the buffer is full.
    async fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == BUFFER {
            return Err(bad("a response larger than the client's buffer".into()));
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// Sends one request and reads its response; returns the number in its body.
    async fn add(&mut self) -> io::Result<u64> {
        self.stream.write_all(REQUEST).await?;
        let head_end = loop {
            let held = &self.buf[self.start..self.end];
            if let Some(i) = held.windows(4).position(|w| w == b"\r\n\r\n") {
                break self.start + i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[self.start..head_end])
            .map_err(|_| bad("a response head that is not UTF-8".into()))?;
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        if !status.starts_with("HTTP/1.1 200") {
            return Err(bad(format!("the server answered `{status}`")));
        }
        let length = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .ok_or_else(|| bad("a response without Content-Length".into()))?;
        let body_start = head_end - self.start;
        while self.end - self.start < body_start + length {
            self.fill().await?;
        }
        let body_at = self.start + body_start;
        let body = std::str::from_utf8(&self.buf[body_at..body_at + length])
            .ok()
            .and_then(|b| b.trim().parse::<u64>().ok())
            .ok_or_else(|| bad("a body that is not a number".into()))?;
        self.start = body_at + length;
        Ok(body)
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) elapsed: Duration,
    pub(crate) answered: u64,
    /// The largest counter value any response carried.
    pub(crate) max_counter: u64,
}

/// `connections` keep-alive connections to one server, opened once and used for every run.
pub(crate) struct Client {
    connections: Vec<Connection>,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr, connections: usize) -> io::Result<Self> {
        let mut all = Vec::with_capacity(connections);
        for _ in 0..connections {
            all.push(Connection::open(addr).await?);
        }
        Ok(Client { connections: all })
    }

    /// Sends `requests` requests over all connections (each takes the next one as soon as its
    /// previous response is read), on tasks of the calling runtime; fails after `deadline`.
    pub(crate) async fn run(&mut self, requests: u64, deadline: Duration) -> io::Result<Run> {
        let left = Arc::new(AtomicI64::new(requests as i64));
        let start = Instant::now();
        let tasks: Vec<_> = self
            .connections
            .drain(..)
            .map(|mut c| {
                let left = left.clone();
                tokio::spawn(async move {
                    let mut answered = 0u64;
                    let mut max = 0u64;
                    let mut failure = None;
                    while left.fetch_sub(1, Ordering::Relaxed) > 0 {
                        match c.add().await {
                            Ok(v) => {
                                answered += 1;
                                max = max.max(v);
                            }
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                    (c, answered, max, failure)
                })
            })
            .collect();
        let joined = tokio::time::timeout(deadline, async {
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await.map_err(io::Error::other)?);
            }
            Ok::<_, io::Error>(out)
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the run passed its deadline"))??;
        let elapsed = start.elapsed();
        let mut run = Run {
            elapsed,
            answered: 0,
            max_counter: 0,
        };
        let mut failure = None;
        for (c, answered, max, error) in joined {
            self.connections.push(c);
            run.answered += answered;
            run.max_counter = run.max_counter.max(max);
            failure = failure.or(error);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(run),
        }
    }
}
