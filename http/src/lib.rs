//! The HTTP front shared by a node's client API and the auditor (SPEC.md
//! §18.2, §23): hyper (HTTP/1.1) on a single-threaded tokio runtime.
//!
//! The front only carries bytes: it reads a request within its limits and
//! hands a [`Request`] to the service's handler, which answers with an
//! [`Answer`]. What it guarantees, whatever the handler does:
//!
//! * **Header timeout**: a client that does not send its whole request head
//!   within [`Limits::header_timeout`] is disconnected.
//! * **Body timeout**: a body not received whole within
//!   [`Limits::body_timeout`] is answered with 408 and the connection closed;
//!   a stalled upload holds one connection, never the server.
//! * **Body limit**: a body over [`Limits::max_body`] (announced or sent) is
//!   answered with 413 without reading it whole.
//! * **Connection limit**: at most [`Limits::max_connections`] connections
//!   are served at once; further ones wait in the kernel's accept queue.
//! * **Graceful shutdown**: [`ShutdownHandle::shutdown`] stops accepting, lets
//!   requests in flight finish (up to [`Limits::grace`]), then returns.
//!
//! The handler runs on the runtime: a handler that blocks (disk writes)
//! must go through [`tokio::task::spawn_blocking`].
//!
//! **Logs** go through [`tracing`] (the binary installs the subscriber):
//! `info` when the front starts and stops serving, `warn` for each request
//! refused by a limit (408, 413, an unreadable body), `debug` for every
//! answered request with its method, path (without the query), status and
//! time in microseconds. The `Authorization` header and bodies are never
//! logged.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{watch, Semaphore};

pub use tokio;

/// The limits a front enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed for a request's head (request line and headers).
    pub header_timeout: Duration,
    /// Time allowed for a request's whole body, from the end of its head.
    pub body_timeout: Duration,
    /// Largest body accepted; larger ones get 413.
    pub max_body: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            max_body: 1 << 20,
            max_connections: 1024,
            grace: Duration::from_secs(5),
        }
    }
}

/// One request, read whole within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path and query, e.g. `/v1/status` or `/a?b=1`.
    pub url: String,
    /// The `Authorization` header, if any (and valid UTF-8).
    pub authorization: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// An HTTP answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The content type.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A `text/plain` answer.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// The future a handler returns.
pub type Reply = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// A service: answers one request.
pub type Handler = Arc<dyn Fn(Request) -> Reply + Send + Sync>;

/// A bound, not yet serving, front.
#[derive(Debug)]
pub struct Front {
    listener: TcpListener,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

/// Stops a running [`Front`] from another thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    /// Stops accepting; requests in flight finish within the grace period.
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl Front {
    /// Binds `addr`. The error names the address.
    pub fn bind(addr: SocketAddr) -> Result<Self, String> {
        let listener =
            TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("{addr}: no local address: {e}"))?;
        let (stop, _) = watch::channel(false);
        Ok(Self {
            listener,
            addr,
            stop,
        })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops [`Front::run`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.stop.clone())
    }

    /// Serves `handler` on this thread until [`ShutdownHandle::shutdown`].
    pub fn run(self, limits: Limits, handler: Handler) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("{}: cannot start the HTTP runtime: {e}", self.addr))?;
        runtime.block_on(self.serve(limits, handler))
    }

    async fn serve(self, limits: Limits, handler: Handler) -> Result<(), String> {
        let addr = self.addr;
        self.listener
            .set_nonblocking(true)
            .map_err(|e| format!("{addr}: {e}"))?;
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(|e| format!("{addr}: {e}"))?;
        let mut stop = self.stop.subscribe();
        let graceful = GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let limits = Arc::new(limits);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true);
        tracing::info!(%addr, max_connections = limits.max_connections, "serving HTTP");
        loop {
            if *stop.borrow() {
                break;
            }
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            let (stream, _) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of file descriptors or similar: back off.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let limits = limits.clone();
            let service = service_fn(move |req| {
                let handler = handler.clone();
                let limits = limits.clone();
                async move { Ok::<_, Infallible>(answer(req, &limits, &handler).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(permit);
            });
        }
        drop(listener);
        tracing::info!(%addr, "stopped accepting; finishing requests in flight");
        let finished = tokio::time::timeout(limits.grace, graceful.shutdown())
            .await
            .is_ok();
        tracing::info!(%addr, finished, "HTTP front stopped");
        Ok(())
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    limits: &Limits,
    handler: &Handler,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    // The path only: a query may carry what an operator does not want in
    // logs.
    let path = parts.uri.path().to_string();
    let refused = |status: u16, why: &'static str| {
        tracing::warn!(
            method = %method,
            path = %path,
            status,
            micros = started.elapsed().as_micros() as u64,
            "request refused: {why}"
        );
        close(respond(Answer::text(status, format!("{why}\n"))))
    };
    let announced = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body as u64) {
        return refused(413, "request body too large");
    }
    let body = match tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body).collect(),
    )
    .await
    {
        Err(_) => return refused(408, "request body timed out"),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return refused(413, "request body too large")
        }
        Ok(Err(_)) => return refused(400, "unreadable request body"),
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
    };
    let request = Request {
        method: method.clone(),
        url: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| parts.uri.path().to_string()),
        authorization: parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    let answer = handler(request).await;
    tracing::debug!(
        method = %method,
        path = %path,
        status = answer.status,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    respond(answer)
}

fn respond(answer: Answer) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(answer.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    response
}

/// Ends the connection after this answer (its body was not read whole).
fn close(mut response: hyper::Response<Full<Bytes>>) -> hyper::Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn start(limits: Limits) -> (SocketAddr, ShutdownHandle, std::thread::JoinHandle<()>) {
        let front = Front::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = front.local_addr();
        let stop = front.shutdown_handle();
        let handler: Handler = Arc::new(|r: Request| {
            Box::pin(async move {
                Answer::text(200, format!("{} {} {}", r.method, r.url, r.body.len()))
            })
        });
        let t = std::thread::spawn(move || front.run(limits, handler).unwrap());
        (addr, stop, t)
    }

    fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn limits_and_shutdown() {
        let limits = Limits {
            body_timeout: Duration::from_millis(300),
            max_body: 10,
            ..Limits::default()
        };
        let (addr, stop, t) = start(limits);
        let ok = exchange(
            addr,
            b"POST /x?y=1 HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        );
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("POST /x?y=1 3"),
            "{ok}"
        );
        let big = exchange(addr, b"POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
        assert!(big.starts_with("HTTP/1.1 413"), "{big}");
        let chunked = exchange(
            addr,
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n",
        );
        assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
        let t0 = Instant::now();
        let slow = exchange(addr, b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\na");
        assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
        assert!(t0.elapsed() < Duration::from_secs(3));
        stop.shutdown();
        t.join().unwrap();
        assert!(TcpStream::connect(addr).is_err());
    }
}
