//! A small HTTP/1.1 server loop on glommio, with an httparse fast path.
//!
//! Why not hyper: on this machine hyper-on-glommio measured 73k req/s against 80k for this kind of
//! loop (`reference/stack-notes.md` §2), hyper needs an unsafe Send wrapper for its timer, and
//! without that timer it has no header-read timeout. This loop is bounded everywhere: request size
//! (`max_request_bytes`), header count (`max_headers`), concurrent connections per shard
//! (`max_connections`), idle time (`idle_timeout`) and write time (`write_timeout`).
//!
//! Keep-alive follows HTTP/1.1 rules (1.1 keeps the connection unless `Connection: close`; 1.0 only
//! with `Connection: keep-alive`). Pipelined requests are answered in order, their responses
//! batched into one write.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request head (request line + headers) accepted; bigger gets 431 and a close.
    pub max_request_bytes: usize,
    /// Most headers accepted; more gets 431 and a close.
    pub max_headers: usize,
    /// A connection with no complete request for this long is closed.
    pub idle_timeout: Duration,
    /// A response that cannot be written within this time closes the connection.
    pub write_timeout: Duration,
    /// Most connections served at once by one shard; further accepts wait.
    pub max_connections: usize,
    /// Which HTTP implementation serves connections.
    pub engine: Engine,
}

/// The HTTP implementation behind [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The httparse loop in this module (the default: it measured faster, see the crate docs).
    Httparse,
    /// hyper 1.x through [`crate::hyper_glue`].
    Hyper,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_bytes: 8192,
            max_headers: 32,
            idle_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(15),
            max_connections: 16_384,
            engine: Engine::Httparse,
        }
    }
}

/// Request method. Only GET and HEAD are served; others are answered 405 by the loop itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

impl Method {
    /// The method's name on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// One parsed request. Header names are lower-cased.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1, [`HTTP_09`] for a two-word HTTP/0.9 `GET`.
    pub minor_version: u8,
    /// The target (its first `target_len` bytes), then header names and values, back to back in
    /// one buffer (two allocations per request whatever the header count); see
    /// [`Request::target`], [`Request::header`] and [`Request::headers`].
    header_bytes: Vec<u8>,
    target_len: usize,
    header_spans: Vec<HeaderSpan>,
    /// The connection's remote address.
    pub peer: SocketAddr,
}

/// Where one header's name and value are in `header_bytes`.
#[derive(Debug, Clone, Copy)]
struct HeaderSpan {
    name: (u32, u32),
    value: (u32, u32),
}

impl Request {
    /// Builds a request (used by the parsers; header names are matched case-insensitively).
    pub fn new<'h>(
        method: Method,
        target: &[u8],
        minor_version: u8,
        peer: SocketAddr,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Request {
        let mut header_bytes = Vec::with_capacity(target.len() + 256);
        header_bytes.extend_from_slice(target);
        let headers = headers.into_iter();
        let mut header_spans = Vec::with_capacity(headers.size_hint().0);
        for (n, v) in headers {
            let ns = header_bytes.len() as u32;
            header_bytes.extend_from_slice(n);
            let vs = header_bytes.len() as u32;
            header_bytes.extend_from_slice(v);
            header_spans.push(HeaderSpan {
                name: (ns, vs),
                value: (vs, header_bytes.len() as u32),
            });
        }
        Request {
            method,
            minor_version,
            header_bytes,
            target_len: target.len(),
            header_spans,
            peer,
        }
    }

    /// The request target as sent: path plus optional `?query`, still percent-encoded.
    pub fn target(&self) -> &[u8] {
        &self.header_bytes[..self.target_len]
    }

    /// All headers as (name, value), names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.header_spans.iter().map(|h| {
            (
                &self.header_bytes[h.name.0 as usize..h.name.1 as usize],
                &self.header_bytes[h.value.0 as usize..h.value.1 as usize],
            )
        })
    }

    /// The first header named `name` (any case), if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The target up to `?`.
    pub fn path(&self) -> &[u8] {
        let t = self.target();
        match t.iter().position(|&b| b == b'?') {
            Some(i) => &t[..i],
            None => t,
        }
    }

    /// The part after `?` (empty if none).
    pub fn query(&self) -> &[u8] {
        let t = self.target();
        match t.iter().position(|&b| b == b'?') {
            Some(i) => &t[i + 1..],
            None => &[],
        }
    }
}

/// A response to write.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: Cow<'static, str>,
    /// Extra headers besides Content-Length and Connection.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    pub body: Vec<u8>,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    /// A response with a `Content-Type` header.
    pub fn new(
        status: u16,
        reason: impl Into<Cow<'static, str>>,
        content_type: impl Into<Cow<'static, str>>,
        body: Vec<u8>,
    ) -> Self {
        Response {
            status,
            reason: reason.into(),
            headers: {
                // Room for the usual extra headers without a reallocation.
                let mut h = Vec::with_capacity(3);
                h.push((Cow::Borrowed("Content-Type"), content_type.into()));
                h
            },
            body,
            close: false,
        }
    }

    /// Adds a header.
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Serialises status line and headers, then the body unless `head_only`.
    pub fn write_to(
        &self,
        out: &mut Vec<u8>,
        minor_version: u8,
        keep_alive: bool,
        head_only: bool,
    ) {
        if minor_version == HTTP_09 {
            // HTTP/0.9: the body alone, then the connection closes.
            out.extend_from_slice(&self.body);
            return;
        }
        out.extend_from_slice(if minor_version == 0 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        push_u64(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Length: ");
        push_u64(out, self.body.len() as u64);
        out.extend_from_slice(b"\r\n");
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if minor_version == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// What the application does with a request.
pub trait Handler: 'static {
    /// Answers one request. Must not block the executor.
    fn handle(&self, req: Request) -> impl Future<Output = Response>;
}

/// Accepts connections from `listener` forever, serving each on this executor with `handler`.
/// Returns only if accepting fails for a reason other than a transient one.
///
/// Accepting uses `accept4(SOCK_NONBLOCK)` directly while connections are waiting: it returns the
/// peer address with the socket, sparing glommio's accept path three `fcntl`s and a `getpeername`
/// per connection (measured: 10 syscalls per new-connection request down to 4). Only when the
/// backlog is empty does it wait in glommio's (io_uring) accept.
///
/// `listener` is one made by [`crate::listener::reuseport_listeners`] (non-blocking), moved into
/// the shard that calls this.
pub async fn serve<H: Handler>(
    listener: std::net::TcpListener,
    handler: Rc<H>,
    limits: HttpLimits,
) -> std::io::Error {
    let conns = Rc::new(Semaphore::new(limits.max_connections as u64));
    let conns_shared = Rc::new(ShardConns {
        idle: crate::idle::IdleWatch::start(limits.idle_timeout),
        ahead: ReadAhead::default(),
        scratch: RefCell::new(vec![0u8; SCRATCH_BYTES].into_boxed_slice()),
    });
    let lfd = listener.as_raw_fd();
    // The fd stays the same: glommio's listener is only used to wait when the backlog is empty.
    let listener: TcpListener = crate::listener::into_glommio(listener);
    loop {
        let permit = match conns.clone().acquire_static_permit(1).await {
            Ok(p) => p,
            Err(e) => return std::io::Error::other(e.to_string()),
        };
        let accepted = match accept_nonblocking(lfd) {
            Ok(Some((fd, peer))) => {
                // SAFETY: `fd` was just returned by accept4 and is owned by nobody else.
                Ok(Accepted::Raw(unsafe { OwnedFd::from_raw_fd(fd) }, peer))
            }
            Ok(None) => listener
                .accept()
                .await
                .map(Accepted::Glommio)
                .map_err(std::io::Error::from),
            Err(e) => Err(e),
        };
        let accepted = match accepted {
            Ok(x) => x,
            Err(io) => {
                match io.raw_os_error() {
                    // Transient: the peer went away, or we are out of fds for a moment.
                    Some(libc::ECONNABORTED)
                    | Some(libc::EMFILE)
                    | Some(libc::ENFILE)
                    | Some(libc::EINTR)
                    | Some(libc::EPROTO)
                    | Some(libc::ENOBUFS)
                    | Some(libc::ENOMEM) => {
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    _ => return io,
                }
            }
        };
        let handler = handler.clone();
        let shared = conns_shared.clone();
        glommio::spawn_local(async move {
            let _permit = permit;
            match (accepted, limits.engine) {
                (Accepted::Raw(fd, peer), Engine::Httparse) => {
                    let _ = serve_raw(Conn::Fd(fd), peer, handler, limits, &shared).await;
                }
                (Accepted::Glommio(stream), Engine::Httparse) => {
                    // Accepted while the shard was idle: the same fast path on glommio's socket
                    // (measured: ~18 % of connections at 8 concurrent clients came this way, and
                    // the general loop cost them a separate FIN segment and the client's ACK).
                    let Ok(peer) = stream.peer_addr() else { return };
                    let _ = serve_raw(Conn::Stream(stream), peer, handler, limits, &shared).await;
                }
                (accepted, Engine::Hyper) => {
                    let (stream, peer) = match accepted {
                        // SAFETY: the fd is ours (accept4) and handed over to glommio whole.
                        Accepted::Raw(fd, peer) => (
                            unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) },
                            Ok(peer),
                        ),
                        Accepted::Glommio(s) => {
                            let p = s.peer_addr();
                            (s, p)
                        }
                    };
                    let Ok(peer) = peer else { return };
                    // Boxed, so that hyper's large connection state is not part of every connection's task.
                    Box::pin(crate::hyper_glue::serve_connection_hyper(
                        stream, peer, handler, limits,
                    ))
                    .await
                }
            }
        })
        .detach();
    }
}

/// A socket [`serve_raw`] works on through its fd: owned directly (our `accept4`) or by the
/// glommio stream that accepted it (when the backlog was empty).
enum Conn {
    Fd(OwnedFd),
    Stream(TcpStream),
}

impl Conn {
    fn raw(&self) -> std::os::fd::RawFd {
        match self {
            Conn::Fd(fd) => fd.as_raw_fd(),
            Conn::Stream(s) => s.as_raw_fd(),
        }
    }

    fn into_stream(self) -> TcpStream {
        match self {
            // SAFETY: the fd is ours (accept4) and handed over to glommio whole.
            Conn::Fd(fd) => unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) },
            Conn::Stream(s) => s,
        }
    }
}

/// A connection from our `accept4` fast path, or from glommio's accept.
enum Accepted {
    Raw(OwnedFd, SocketAddr),
    Glommio(TcpStream),
}

/// Serves a freshly accepted connection. The common tracker case (the request already arrived,
/// thanks to `TCP_DEFER_ACCEPT`, it asks to close, and the response fits the socket buffer) is
/// served with plain non-blocking `recv`/`send` and `close`: 4 syscalls per connection including
/// the accept, no io_uring poll registration, no timers. Anything else (a partial request,
/// keep-alive, a full socket buffer) continues on a glommio stream.
///
/// The response is sent with `MSG_MORE`, so the kernel holds it until the `close` right after,
/// which puts the FIN on the same segment: one segment (response + FIN) instead of two. On
/// loopback the sender pays for the receiver's processing of each segment, and the client's
/// immediate ACK of a lone data segment (new connections start in quick-ACK mode) was sent from
/// our context too; with the FIN on board the client delays its ACK and sends it with its own
/// FIN. Measured: server CPU per new-connection announce 1.00x -> 0.80x opentracker's (same run).
async fn serve_raw<H: Handler>(
    conn: Conn,
    peer: SocketAddr,
    handler: Rc<H>,
    limits: HttpLimits,
    shared: &ShardConns,
) -> ConnectionEnd {
    let raw = conn.raw();
    let first = {
        // Read and parse in the shard's scratch buffer, not one in this future: the task of every connection is
        // allocated and its future copied into it, and a 2 KiB array here made each 2 KiB bigger.
        let mut scratch = shared.scratch.borrow_mut();
        let want = scratch.len().min(limits.max_request_bytes);
        let buf = &mut scratch[..want];
        // SAFETY: `buf` is valid for writes of its length; MSG_DONTWAIT: non-blocking.
        let n = unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        match n {
            0 => return ConnectionEnd::PeerClosed,
            n if n > 0 => match parse_one(&buf[..n as usize], limits.max_headers, peer) {
                Parsed::Complete(req, used, false) if used == n as usize => First::Answer(req),
                _ => {
                    // Sized for the general loop's first reads at once (one allocation, not two).
                    let mut bytes = Vec::with_capacity(want);
                    bytes.extend_from_slice(&buf[..n as usize]);
                    First::Continue(bytes)
                }
            },
            _ => {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                    return ConnectionEnd::IoError;
                }
                First::Continue(Vec::with_capacity(want))
            }
        }
    };
    let mut heap = match first {
        First::Continue(bytes) => bytes,
        First::Answer(req) => {
            let head_only = req.method == Method::Head;
            let minor = req.minor_version;
            let resp = handler.handle(req).await;
            let mut out = Vec::with_capacity(160 + resp.body.len());
            resp.write_to(&mut out, minor, false, head_only);
            // SAFETY: `out` is valid for reads of its length. MSG_MORE: hold the segment until
            // the close below adds the FIN to it (see the function's docs).
            let sent = unsafe {
                libc::send(
                    raw,
                    out.as_ptr().cast(),
                    out.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_MORE,
                )
            };
            let already = match sent {
                s if s >= 0 && s as usize == out.len() => return ConnectionEnd::Closed,
                s if s >= 0 => s as usize,
                _ => {
                    if std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                        return ConnectionEnd::IoError;
                    }
                    0
                }
            };
            let mut stream = conn.into_stream();
            let _ = stream.set_write_timeout(Some(limits.write_timeout));
            return match stream.write_all(&out[already..]).await {
                Ok(()) => ConnectionEnd::Closed,
                Err(_) => ConnectionEnd::IoError,
            };
        }
    };
    let stream = conn.into_stream();
    let filled = heap.len();
    heap.resize(SCRATCH_BYTES.min(limits.max_request_bytes).max(filled), 0);
    // Boxed: the general loop's state (its own handler future, buffers) is allocated only for connections that
    // need it, not carried in every connection's task.
    Box::pin(serve_connection_from(
        stream, peer, handler, limits, heap, filled, shared,
    ))
    .await
}

/// What [`serve_raw`]'s first read found.
enum First {
    /// One whole request that asks to close: answered on the fast path.
    Answer(Request),
    /// Anything else: these bytes (maybe none), then the general loop.
    Continue(Vec<u8>),
}

/// Size of each shard's scratch buffer for a new connection's first read (most requests fit).
const SCRATCH_BYTES: usize = 2048;

/// One `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)`: `Ok(None)` when no connection is waiting.
fn accept_nonblocking(
    listener_fd: std::os::fd::RawFd,
) -> std::io::Result<Option<(std::os::fd::RawFd, SocketAddr)>> {
    // SAFETY: sockaddr_storage is plain data, large enough for any address accept4 writes.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: the pointers describe `storage` and `len`, valid for the call; the listener fd is
    // non-blocking (set by the listener module), so this never blocks the executor.
    let fd = unsafe {
        libc::accept4(
            listener_fd,
            (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    // SAFETY: accept4 filled `storage` with an address of `len` bytes.
    let addr = unsafe { socket2::SockAddr::new(storage, len) };
    match addr.as_socket() {
        Some(a) => Ok(Some((fd, a))),
        None => {
            // SAFETY: we own `fd` and drop it here.
            unsafe { libc::close(fd) };
            Err(std::io::Error::other("accepted a non-IP connection"))
        }
    }
}

/// Why a connection ended (for tests and logs; the loop itself just closes).
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectionEnd {
    PeerClosed,
    Idle,
    Malformed,
    Closed,
    IoError,
}

/// Serves one connection until it closes, times out or misbehaves, starting with `filled` bytes
/// of `buf` already read. `peer` is its remote address.
///
/// No `TCP_NODELAY` and no `shutdown`: each batch of responses goes out in one write, so Nagle
/// never holds a response back (the previous one is acknowledged by the next request), and a
/// plain close sends the FIN; each would be one more syscall per connection.
async fn serve_connection_from<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Rc<H>,
    limits: HttpLimits,
    mut buf: Vec<u8>,
    mut filled: usize,
    shared: &ShardConns,
) -> ConnectionEnd {
    let mut stream = stream;
    // Idle time is watched by the shard's sweeper (`idle.rs`), not a timer per read; the guard is declared after
    // the stream, so it is dropped (unregistered) before the stream closes the socket.
    let guard = shared.idle.register(stream.as_raw_fd());
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let mut out = Vec::with_capacity(1024);
    loop {
        // Answer every complete request in the buffer (pipelining), then flush once.
        let mut start = 0usize;
        let mut close = false;
        let mut malformed = false;
        loop {
            match parse_one(&buf[start..filled], limits.max_headers, peer) {
                Parsed::Complete(req, used, keep_alive) => {
                    start += used;
                    let head_only = req.method == Method::Head;
                    let minor = req.minor_version;
                    let resp = handler.handle(req).await;
                    let keep = keep_alive && !resp.close;
                    resp.write_to(&mut out, minor, keep, head_only);
                    if !keep {
                        close = true;
                        break;
                    }
                }
                Parsed::Partial => break,
                Parsed::Error(resp) => {
                    resp.write_to(&mut out, 1, false, false);
                    close = true;
                    malformed = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return ConnectionEnd::IoError;
            }
            out.clear();
        }
        if close {
            if start < filled || malformed {
                // Unread request bytes: a plain close would send RST and could destroy the
                // response before the client reads it.
                lingering_close(&mut stream).await;
            }
            return if malformed {
                ConnectionEnd::Malformed
            } else {
                ConnectionEnd::Closed
            };
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() && buf.len() < limits.max_request_bytes {
            buf.resize(limits.max_request_bytes, 0);
        }
        if filled == buf.len() {
            let resp = Response::new(
                431,
                "Request Header Fields Too Large",
                "text/plain",
                b"request too large\n".to_vec(),
            );
            resp.write_to(&mut out, 1, false, false);
            let _ = stream.write_all(&out).await;
            lingering_close(&mut stream).await;
            return ConnectionEnd::Malformed;
        }
        match read_next(&mut stream, &mut buf[filled..], &shared.ahead).await {
            Ok(0) if guard.timed_out() => return ConnectionEnd::Idle,
            Ok(0) => return ConnectionEnd::PeerClosed,
            Ok(n) => {
                filled += n;
                guard.touch();
            }
            Err(_) if guard.timed_out() => return ConnectionEnd::Idle,
            Err(_) => return ConnectionEnd::IoError,
        }
    }
}

/// Reads a keep-alive connection's next bytes. On a busy shard it first lets the shard answer its other ready
/// connections (a yield), then tries a plain non-blocking `recv`; otherwise, or if nothing has arrived yet, it reads
/// through glommio's stream (which waits on an io_uring poll).
///
/// Why: glommio's read arms an io_uring poll after every read. When the next request arrives, that poll's
/// completion is raised from the *client's* CPU while this shard is busy, which costs this core an interrupt and a
/// task-work run, on top of the poll's submission: ~12 % of a busy keep-alive shard's CPU (perf, `wrk -c64`). On a
/// busy shard the next request is usually there by the time the yield comes back, and reading it is one syscall.
/// On a quiet shard the try mostly fails (a wasted syscall per request), so [`ReadAhead`] learns which case holds.
/// Yielded tasks keep the run queue non-empty, so glommio looks at its rings when its preempt timer fires
/// ([`crate::pool::PREEMPT_TIMER`]) as well as when the queue runs dry.
async fn read_next(
    stream: &mut TcpStream,
    buf: &mut [u8],
    ahead: &ReadAhead,
) -> std::io::Result<usize> {
    if ahead.should_try() {
        futures_lite::future::yield_now().await;
        let got = recv_now(stream.as_raw_fd(), buf);
        ahead.record(got.is_some());
        if let Some(r) = got {
            return r;
        }
    }
    stream.read(buf).await
}

/// One non-blocking `recv`: `None` if nothing is there yet.
fn recv_now(fd: std::os::fd::RawFd, buf: &mut [u8]) -> Option<std::io::Result<usize>> {
    loop {
        // SAFETY: `buf` is valid for writes of its length; MSG_DONTWAIT: never blocks the executor.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Some(Ok(n as usize));
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::WouldBlock => return None,
            std::io::ErrorKind::Interrupted => continue,
            _ => return Some(Err(e)),
        }
    }
}

/// Whether keep-alive reads on one listener of one shard should yield and try a plain `recv` first
/// ([`read_next`]). A try that finds data saves an io_uring poll, its completion and an interrupt (~2 µs here); one
/// that does not costs a syscall (~0.3 µs), so trying pays while at least about one try in eight finds data: a hit
/// adds [`ReadAhead::HIT`] to the score, a miss takes one off, and reads try while the score is not negative.
/// Below that, one read in [`ReadAhead::PROBE_EVERY`] still tries, so a shard that gets busy again is noticed.
#[derive(Debug, Default)]
struct ReadAhead {
    /// Kept within `-LIMIT..=LIMIT`.
    score: Cell<i16>,
    /// Reads since the last probe while the score is negative.
    skipped: Cell<u8>,
}

impl ReadAhead {
    const HIT: i16 = 7;
    const LIMIT: i16 = 64;
    const PROBE_EVERY: u8 = 16;

    fn should_try(&self) -> bool {
        if self.score.get() >= 0 {
            return true;
        }
        let n = (self.skipped.get() + 1) % Self::PROBE_EVERY;
        self.skipped.set(n);
        n == 0
    }

    fn record(&self, found_data: bool) {
        let s = self.score.get();
        self.score.set(if found_data {
            (s + Self::HIT).min(Self::LIMIT)
        } else {
            (s - 1).max(-Self::LIMIT)
        });
    }
}

/// What the connections of one listener on one shard share.
struct ShardConns {
    idle: Rc<crate::idle::IdleWatch>,
    ahead: ReadAhead,
    /// A new connection's first read ([`serve_raw`]); borrowed only between awaits.
    scratch: RefCell<Box<[u8]>>,
}

/// Sends FIN, then reads and discards what the client still sends (at most 64 KiB, at most 2 s)
/// so that closing does not reset the connection before the client has read our response.
async fn lingering_close(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write).await;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0u8; 4096];
    let mut total = 0usize;
    while total < 64 * 1024 {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// `minor_version` value marking an HTTP/0.9 request (bttrack answers a two-word `GET path` line
/// with the bare body).
pub const HTTP_09: u8 = 9;

/// A two-word `GET <path>` request line (no version): HTTP/0.9, GET only, no headers.
fn parse_http09(data: &[u8], peer: SocketAddr) -> Option<Parsed> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    let line = data[..nl].strip_suffix(b"\r").unwrap_or(&data[..nl]);
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let (method, target) = (words.next()?, words.next()?);
    if words.next().is_some() || method != b"GET" || !target.starts_with(b"/") {
        return None;
    }
    let req = Request::new(Method::Get, target, HTTP_09, peer, std::iter::empty());
    Some(Parsed::Complete(req, nl + 1, false))
}

enum Parsed {
    /// A request, the bytes it used, and whether the connection may be kept.
    Complete(Request, usize, bool),
    Partial,
    /// A response to send before closing.
    Error(Response),
}

fn bad(status: u16, reason: &'static str, body: &str) -> Parsed {
    Parsed::Error(Response::new(
        status,
        reason,
        "text/plain",
        body.as_bytes().to_vec(),
    ))
}

/// Header slots [`parse_one`] keeps on the stack (limits above this use a heap array).
const STACK_HEADERS: usize = 64;

/// Parses one request from the front of `data`. Pure: no I/O, so it is easy to test and fuzz.
fn parse_one(data: &[u8], max_headers: usize, peer: SocketAddr) -> Parsed {
    if data.is_empty() {
        return Parsed::Partial;
    }
    // The usual limit fits on the stack: no allocation per request.
    let mut on_stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut on_heap = Vec::new();
    let headers: &mut [httparse::Header<'_>] = if max_headers <= STACK_HEADERS {
        &mut on_stack[..max_headers]
    } else {
        on_heap.resize(max_headers, httparse::EMPTY_HEADER);
        &mut on_heap
    };
    let mut req = httparse::Request::new(headers);
    let parsed = req.parse(data);
    if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
        // A two-word HTTP/0.9 line is never a complete HTTP/1.x head, so it is only looked for
        // here, off the common path.
        if let Some(p) = parse_http09(data, peer) {
            return p;
        }
    }
    let used = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return bad(431, "Request Header Fields Too Large", "too many headers\n")
        }
        Err(e) => {
            return bad(
                400,
                "Bad Request",
                &format!("malformed HTTP request: {e}\n"),
            )
        }
    };
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => {
            return bad(
                405,
                "Method Not Allowed",
                "only GET and HEAD are supported\n",
            )
        }
    };
    let minor_version = req.version.unwrap_or(1);
    let target = req.path.unwrap_or("/").as_bytes();
    let mut keep_alive = minor_version >= 1;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if v.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")) {
                keep_alive = false;
            } else if v.windows(10).any(|w| w.eq_ignore_ascii_case(b"keep-alive")) {
                keep_alive = true;
            }
        }
        if (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
        {
            // A GET with a body would desynchronise pipelining; refuse it.
            return bad(400, "Bad Request", "request bodies are not accepted\n");
        }
    }
    let headers = req.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    Parsed::Complete(
        Request::new(method, target, minor_version, peer, headers),
        used,
        keep_alive,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn parses_pipelined_requests() {
        let data = b"GET /announce?a=1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.0\r\n\r\n";
        let Parsed::Complete(r, used, ka) = parse_one(data, 8, peer()) else {
            panic!("first request not parsed")
        };
        assert_eq!(r.path(), b"/announce");
        assert_eq!(r.query(), b"a=1");
        assert_eq!(r.header("host"), Some(&b"x"[..]));
        assert!(ka);
        let Parsed::Complete(r2, _, ka2) = parse_one(&data[used..], 8, peer()) else {
            panic!("second request not parsed")
        };
        assert_eq!(r2.method, Method::Head);
        assert!(!ka2);
    }

    #[test]
    fn rejects_bad_input_with_status() {
        let status = |d: &[u8]| match parse_one(d, 2, peer()) {
            Parsed::Error(r) => r.status,
            Parsed::Partial => 0,
            Parsed::Complete(..) => 200,
        };
        assert_eq!(status(b"POST / HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n"),
            431
        );
        assert_eq!(status(b"\x00\x01garbage\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\n"), 0);
    }

    #[test]
    fn parser_never_panics_on_random_bytes() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = b"GET /announce?a=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        for _ in 0..20_000 {
            let mut v = base.to_vec();
            for _ in 0..(next() % 6) {
                let i = (next() as usize) % v.len();
                v[i] = next() as u8;
            }
            let cut = (next() as usize) % (v.len() + 1);
            let _ = parse_one(&v[..cut], 8, peer());
        }
    }

    #[test]
    fn http09_get_is_answered_with_the_bare_body() {
        let Parsed::Complete(r, used, ka) = parse_one(b"GET /scrape\r\n", 8, peer()) else {
            panic!("HTTP/0.9 GET not parsed")
        };
        assert_eq!(
            (r.path(), used, ka, r.minor_version),
            (&b"/scrape"[..], 13, false, HTTP_09)
        );
        let mut out = Vec::new();
        Response::new(200, "OK", "text/plain", b"body".to_vec())
            .write_to(&mut out, HTTP_09, false, false);
        assert_eq!(out, b"body");
        assert!(matches!(
            parse_one(b"HEAD /x\r\n", 8, peer()),
            Parsed::Error(_)
        ));
    }

    #[test]
    fn connection_header_is_matched_in_any_case() {
        let ka = |d: &[u8]| match parse_one(d, 8, peer()) {
            Parsed::Complete(_, _, ka) => ka,
            _ => panic!("not parsed"),
        };
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        // A two-word line followed by headers is still HTTP/0.9 (bttrack answers the body).
        let Parsed::Complete(r, used, false) = parse_one(b"GET /x\r\nHost: y\r\n\r\n", 8, peer())
        else {
            panic!("HTTP/0.9 GET not parsed")
        };
        assert_eq!((r.minor_version, used), (HTTP_09, 8));
    }

    #[test]
    fn read_ahead_tries_while_one_try_in_eight_finds_data() {
        let ahead = ReadAhead::default();
        assert!(ahead.should_try(), "a new listener tries first");
        // One hit in eight tries keeps trying (7 up, 7 down).
        for _ in 0..100 {
            ahead.record(true);
            for _ in 0..7 {
                assert!(ahead.should_try());
                ahead.record(false);
            }
        }
        assert!(ahead.should_try());
        // Misses only: the score goes negative and stays at the floor.
        for _ in 0..200 {
            ahead.record(false);
        }
        assert_eq!(ahead.score.get(), -ReadAhead::LIMIT);
        // Then only one read in PROBE_EVERY tries.
        let tries = (0..160).filter(|_| ahead.should_try()).count();
        assert_eq!(tries, 160 / usize::from(ReadAhead::PROBE_EVERY));
        // A busy shard again: the probes' hits bring the score back within LIMIT / HIT + 1 probes.
        let mut probes = 0;
        while ahead.score.get() < 0 {
            if ahead.should_try() {
                ahead.record(true);
                probes += 1;
            }
        }
        assert!(probes <= (ReadAhead::LIMIT / ReadAhead::HIT + 1) as usize);
        assert!(ahead.should_try());
    }

    #[test]
    fn writes_head_without_body() {
        let r = Response::new(200, "OK", "text/plain", b"hello".to_vec());
        let mut out = Vec::new();
        r.write_to(&mut out, 1, true, true);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n".to_vec()
        );
    }
}
