//! hyper 1.x on glommio, written once: the I/O adapter and a server loop with the same
//! [`Handler`] as the httparse loop in [`crate::http`], so the two can be measured against each
//! other in the same run (`bench/src/bin/tracker_load.rs engines`).
//!
//! Differences from the httparse loop: hyper writes its own reason phrases (a custom one such as
//! bttrack's `Not Authorized` becomes `OK`/`Bad Request`), and without a hyper timer (which needs an
//! unsafe `Send` wrapper around glommio's timer) it has no header-read timeout: idle connections
//! are bounded only by the connection limit.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use http_body_util::Full;

use crate::http::{Handler, HttpLimits, Method, Request, Response};

/// glommio's `TcpStream` as hyper I/O.
pub struct GlommioIo(pub TcpStream);

/// Most bytes zeroed and read per `poll_read` (hyper hands over uninitialised memory; glommio
/// needs an initialised slice, so we zero only what we read into, not hyper's whole buffer).
const READ_CHUNK: usize = 8192;

impl hyper::rt::Read for GlommioIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: we only write initialised bytes into the slice (zeros, then the read data) and
        // advance by exactly what was read.
        let uninit = unsafe { buf.as_mut() };
        let n = uninit.len().min(READ_CHUNK);
        for b in &mut uninit[..n] {
            b.write(0);
        }
        // SAFETY: the first `n` bytes were just initialised.
        let init: &mut [u8] =
            unsafe { std::slice::from_raw_parts_mut(uninit.as_mut_ptr().cast::<u8>(), n) };
        match Pin::new(&mut self.0).poll_read(cx, init) {
            Poll::Ready(Ok(read)) => {
                // SAFETY: `read` <= n bytes are initialised and filled.
                unsafe { buf.advance(read) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for GlommioIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

fn to_request(
    req: &hyper::Request<hyper::body::Incoming>,
    peer: std::net::SocketAddr,
) -> Option<Request> {
    let method = match *req.method() {
        hyper::Method::GET => Method::Get,
        hyper::Method::HEAD => Method::Head,
        _ => return None,
    };
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .as_bytes();
    let minor_version = u8::from(req.version() != hyper::Version::HTTP_10);
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    Some(Request::new(method, target, minor_version, peer, headers))
}

fn to_hyper(resp: Response) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder().status(resp.status);
    for (n, v) in &resp.headers {
        b = b.header(n.as_ref(), v.as_ref());
    }
    if resp.close {
        b = b.header("connection", "close");
    }
    b.body(Full::new(Bytes::from(resp.body)))
        .unwrap_or_else(|_| {
            let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"bad response")));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

/// Serves one connection with hyper's HTTP/1.1 server.
pub async fn serve_connection_hyper<H: Handler>(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    handler: Rc<H>,
    limits: HttpLimits,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        async move {
            let resp = match to_request(&req, peer) {
                Some(r) => handler.handle(r).await,
                None => Response::new(
                    405,
                    "Method Not Allowed",
                    "text/plain",
                    b"only GET and HEAD are supported\n".to_vec(),
                ),
            };
            Ok::<_, std::convert::Infallible>(to_hyper(resp))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(limits.max_request_bytes.max(8192))
        .serve_connection(GlommioIo(stream), service)
        .await;
}
