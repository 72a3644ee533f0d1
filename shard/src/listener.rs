//! One `SO_REUSEPORT` listening socket per shard, all on the same address.
//!
//! The kernel spreads incoming connections across the listeners, so each shard accepts its own
//! connections without any hand-off. The sockets are created on the launching thread (so binding
//! errors are reported before any executor starts, and port 0 resolves once) and each shard turns
//! its own into a glommio listener with [`into_glommio`].

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, IntoRawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::ShardError;

/// Options for [`reuseport_listeners`].
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// listen(2) backlog.
    pub backlog: i32,
    /// For an IPv6 address: also accept IPv4 (IPV6_V6ONLY off).
    pub ipv6_binds_v4: bool,
    /// `TCP_DEFER_ACCEPT` seconds (0 = off): the kernel hands over a connection only once its
    /// first bytes arrived, so accept is followed by a read that succeeds at once instead of a
    /// wasted read and a readiness wait. For request/response protocols where the client speaks
    /// first (HTTP); not for protocols where the server speaks first.
    pub defer_accept_secs: u32,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            ipv6_binds_v4: true,
            defer_accept_secs: 0,
        }
    }
}

/// Binds `count` listeners with `SO_REUSEPORT` on `addr`. If `addr` has port 0, the first socket
/// picks a free port and the others bind to that same port.
pub fn reuseport_listeners(
    addr: SocketAddr,
    count: usize,
    opts: ListenOptions,
) -> Result<Vec<TcpListener>, ShardError> {
    let mut out: Vec<TcpListener> = Vec::with_capacity(count);
    let mut bind_addr = addr;
    for _ in 0..count {
        let l = bind_one(bind_addr, opts)?;
        if out.is_empty() {
            bind_addr = l
                .local_addr()
                .map_err(|e| ShardError::io(format!("local address of listener on {addr}"), e))?;
        }
        out.push(l);
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr, opts: ListenOptions) -> Result<TcpListener, ShardError> {
    let ctx = |what: &str| format!("{what} for {addr}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| ShardError::io(ctx("socket"), e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| ShardError::io(ctx("SO_REUSEADDR"), e))?;
    socket
        .set_reuse_port(true)
        .map_err(|e| ShardError::io(ctx("SO_REUSEPORT"), e))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(!opts.ipv6_binds_v4)
            .map_err(|e| ShardError::io(ctx("IPV6_V6ONLY"), e))?;
    }
    if opts.defer_accept_secs > 0 {
        let secs = opts.defer_accept_secs as libc::c_int;
        // SAFETY: setsockopt reads an int from a valid pointer of the given size.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&secs as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(ShardError::io(
                ctx("TCP_DEFER_ACCEPT"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| ShardError::io(ctx("O_NONBLOCK"), e))?;
    socket
        .bind(&addr.into())
        .map_err(|e| ShardError::io(format!("bind {addr}"), e))?;
    socket
        .listen(opts.backlog)
        .map_err(|e| ShardError::io(format!("listen on {addr}"), e))?;
    Ok(socket.into())
}

/// Converts a listener made by [`reuseport_listeners`] into a glommio listener. Call it on the
/// executor that will accept from it.
pub fn into_glommio(listener: TcpListener) -> glommio::net::TcpListener {
    let fd = listener.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket we own: into_raw_fd gave up std's ownership, so
    // glommio's listener is its only owner and closes it on drop.
    unsafe { glommio::net::TcpListener::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_resolves_once() {
        let ls = reuseport_listeners("127.0.0.1:0".parse().unwrap(), 3, ListenOptions::default())
            .unwrap();
        let ports: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
    }
}
