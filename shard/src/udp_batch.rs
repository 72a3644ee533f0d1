//! Batched datagram I/O on a non-blocking UDP socket: `recvmmsg` and `sendmmsg`.
//!
//! Why: a UDP request/response server doing one `recvmsg` and one `sendmsg` per datagram pays the
//! syscall entry/exit and socket locking once per datagram. `recvmmsg` takes up to
//! [`MAX_BATCH`] datagrams in one call and `sendmmsg` sends the answers in one call. Both are
//! used with `MSG_DONTWAIT`; the caller waits for readiness (glommio) only when the socket is empty
//! or full, so a busy socket never goes through io_uring.
//!
//! The buffers are allocated once per socket; a batch does no allocation.

use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Most datagrams read or written by one syscall.
pub const MAX_BATCH: usize = 32;

/// Receive buffers for up to [`MAX_BATCH`] datagrams of at most `slot_len` bytes each.
pub struct RecvBatch {
    slot_len: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Datagrams filled by the last [`RecvBatch::recv`].
    count: usize,
}

impl RecvBatch {
    /// Room for `slots` (1..=[`MAX_BATCH`]) datagrams of `slot_len` bytes. A longer datagram is
    /// truncated to `slot_len`: make `slot_len` one more than the longest accepted datagram so
    /// that truncation shows as an over-long datagram.
    pub fn new(slots: usize, slot_len: usize) -> RecvBatch {
        let slots = slots.clamp(1, MAX_BATCH);
        assert!(slot_len > 0, "zero-length receive slot");
        RecvBatch {
            slot_len,
            bufs: vec![0; slots * slot_len],
            // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C data for which all-zero
            // bytes are valid (null pointers, zero lengths).
            addrs: vec![unsafe { std::mem::zeroed() }; slots],
            // SAFETY: as above.
            iovs: vec![unsafe { std::mem::zeroed() }; slots],
            // SAFETY: as above.
            msgs: vec![unsafe { std::mem::zeroed() }; slots],
            count: 0,
        }
    }

    /// One non-blocking `recvmmsg`: `Ok(0)` when no datagram is waiting, else how many were read
    /// (see [`RecvBatch::get`]).
    pub fn recv(&mut self, fd: RawFd) -> std::io::Result<usize> {
        self.count = 0;
        let slots = self.msgs.len();
        // The pointers are set on every call: they point into this struct's heap buffers, which
        // do not move, but setting them here keeps the invariant local and obvious.
        for i in 0..slots {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * self.slot_len..].as_mut_ptr().cast(),
                iov_len: self.slot_len,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: `msgs` holds `slots` headers, each pointing at its own address storage and one
        // iovec that covers its own `slot_len` bytes of `bufs`; all stay valid for the call.
        // MSG_DONTWAIT: never blocks the executor; no timeout pointer.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        self.count = n as usize;
        assert!(self.count <= slots, "recvmmsg returned more than asked");
        Ok(self.count)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`] and its source, or `None` if `i` is out of
    /// range or the source is not an IP address (impossible on an IP socket).
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        let len = (self.msgs[i].msg_len as usize).min(self.slot_len);
        let namelen = self.msgs[i].msg_hdr.msg_namelen;
        // SAFETY: the kernel wrote an address of `namelen` bytes into this storage.
        let addr = unsafe { socket2::SockAddr::new(self.addrs[i], namelen) };
        let from = addr.as_socket()?;
        Some((&self.bufs[i * self.slot_len..i * self.slot_len + len], from))
    }
}

/// Answers queued for one `sendmmsg`.
#[derive(Default)]
pub struct SendBatch {
    queue: Vec<(Vec<u8>, socket2::SockAddr)>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

/// What [`SendBatch::flush`] left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Every queued datagram was sent or dropped (a send error loses that one answer, as UDP may).
    All,
    /// The socket's send buffer is full; the rest is still queued (wait for writability, e.g. by
    /// sending [`SendBatch::pop_front`] through an awaiting send, then flush again).
    WouldBlock,
}

impl SendBatch {
    /// Queues `data` for `to`.
    pub fn push(&mut self, data: Vec<u8>, to: SocketAddr) {
        self.queue.push((data, socket2::SockAddr::from(to)));
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Removes and returns the oldest queued datagram.
    pub fn pop_front(&mut self) -> Option<(Vec<u8>, SocketAddr)> {
        if self.queue.is_empty() {
            return None;
        }
        let (data, to) = self.queue.remove(0);
        to.as_socket().map(|a| (data, a))
    }

    /// Sends the queue with non-blocking `sendmmsg` calls of up to [`MAX_BATCH`] datagrams.
    pub fn flush(&mut self, fd: RawFd) -> Flushed {
        let mut done = 0usize;
        // Bounded: every iteration sends or drops at least one datagram, or returns.
        while done < self.queue.len() {
            let n = (self.queue.len() - done).min(MAX_BATCH);
            self.iovs.clear();
            self.msgs.clear();
            for (data, _) in &self.queue[done..done + n] {
                self.iovs.push(libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                });
            }
            for (k, (_, to)) in self.queue[done..done + n].iter().enumerate() {
                // SAFETY: all-zero bytes are a valid mmsghdr (null pointers, zero lengths).
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
                m.msg_hdr.msg_namelen = to.len();
                m.msg_hdr.msg_iov = &mut self.iovs[k];
                m.msg_hdr.msg_iovlen = 1;
                self.msgs.push(m);
            }
            // SAFETY: `msgs` holds `n` headers pointing at addresses and iovecs (over the queued
            // data) that stay alive and unmoved for the call; the kernel only reads them.
            // MSG_DONTWAIT: never blocks the executor.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if sent > 0 {
                done += sent as usize;
                continue;
            }
            let e = std::io::Error::last_os_error();
            if sent == 0 || e.kind() == std::io::ErrorKind::WouldBlock {
                self.queue.drain(..done);
                return Flushed::WouldBlock;
            }
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // This datagram cannot be sent (e.g. no route to its address): drop it.
            done += 1;
        }
        self.queue.clear();
        Flushed::All
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn batches_round_trip_on_loopback() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut rb = RecvBatch::new(4, 9);
        assert_eq!(rb.recv(server.as_raw_fd()).unwrap(), 0);
        let to = server.local_addr().unwrap();
        for m in [
            &b"one"[..],
            b"two",
            b"three",
            b"0123456789abc",
            b"five",
            b"six",
        ] {
            client.send_to(m, to).unwrap();
        }
        // Loopback delivers synchronously: all six are queued.
        let mut got = Vec::new();
        let mut sb = SendBatch::default();
        for _ in 0..10 {
            let n = rb.recv(server.as_raw_fd()).unwrap();
            if n == 0 {
                break;
            }
            assert!(rb.get(n).is_none());
            for i in 0..n {
                let (data, from) = rb.get(i).unwrap();
                assert_eq!(from, client.local_addr().unwrap());
                got.push(data.to_vec());
                sb.push(data.to_vec(), from);
            }
        }
        // The 13-byte datagram was truncated to the 9-byte slot.
        assert_eq!(
            got,
            vec![
                b"one".to_vec(),
                b"two".to_vec(),
                b"three".to_vec(),
                b"012345678".to_vec(),
                b"five".to_vec(),
                b"six".to_vec()
            ]
        );
        assert_eq!(sb.len(), 6);
        assert_eq!(sb.flush(server.as_raw_fd()), Flushed::All);
        assert!(sb.is_empty());
        let mut buf = [0u8; 64];
        for want in &got {
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &want[..]);
        }
    }
}
