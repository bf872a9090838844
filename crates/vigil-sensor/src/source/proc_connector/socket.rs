//! The `NETLINK_CONNECTOR` socket subscribed to process events.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::message::{
    CN_IDX_PROC, PROC_CN_MCAST_IGNORE, PROC_CN_MCAST_LISTEN, ProcEvent, mcast_request,
    parse_datagram,
};
use crate::SensorError;
use crate::source::{StopSignal, Wake, wait_readable};

/// Receive buffer asked for (`SO_RCVBUFFORCE`, CAP_NET_ADMIN): room for bursts of execs
/// before the kernel reports `ENOBUFS` and drops events.
const RECV_BUFFER_BYTES: libc::c_int = 8 * 1024 * 1024;
/// How long to wait for the kernel to acknowledge the subscription.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// A netlink socket bound to the `CN_IDX_PROC` group and subscribed with
/// `PROC_CN_MCAST_LISTEN`; unsubscribes on drop.
#[derive(Debug)]
pub(crate) struct ProcConnectorSocket {
    fd: OwnedFd,
    port_id: u32,
}

fn step_error(step: &'static str) -> SensorError {
    SensorError::ProcConnector {
        step,
        source: io::Error::last_os_error(),
    }
}

fn netlink_addr(groups: u32) -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain integers; all-zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_pid = 0;
    addr.nl_groups = groups;
    addr
}

const ADDR_LEN: libc::socklen_t = size_of::<libc::sockaddr_nl>() as libc::socklen_t;

impl ProcConnectorSocket {
    /// Opens, binds and subscribes, and waits for the kernel's acknowledgement, so events of
    /// every exec after this returns are delivered.
    pub(crate) fn open(stop: &StopSignal) -> Result<Self, SensorError> {
        // SAFETY: socket(2) takes no pointers; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_CONNECTOR,
            )
        };
        if raw < 0 {
            return Err(step_error("open the NETLINK_CONNECTOR socket"));
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let size = RECV_BUFFER_BYTES;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: passes a live c_int and its exact size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const size).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }

        // nl_pid 0: the kernel picks a unique port, so several sensors can coexist.
        let addr = netlink_addr(CN_IDX_PROC);
        // SAFETY: `addr` is a valid sockaddr_nl and ADDR_LEN its size.
        let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), ADDR_LEN) };
        if rc != 0 {
            return Err(step_error("bind to the CN_IDX_PROC group"));
        }
        let mut bound = netlink_addr(0);
        let mut len = ADDR_LEN;
        // SAFETY: `bound` is writable for `len` bytes, and `len` is a live socklen_t.
        let rc = unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut bound).cast(), &mut len) };
        if rc != 0 {
            return Err(step_error("read the bound netlink port"));
        }

        let socket = Self {
            fd,
            port_id: bound.nl_pid,
        };
        socket
            .send_op(PROC_CN_MCAST_LISTEN)
            .map_err(|source| SensorError::ProcConnector {
                step: "subscribe (PROC_CN_MCAST_LISTEN)",
                source,
            })?;
        socket.await_ack(stop)?;
        Ok(socket)
    }

    fn send_op(&self, op: u32) -> io::Result<()> {
        // Our port id goes in `ack`, so our answer is told from other listeners' answers.
        let request = mcast_request(op, self.port_id, self.port_id);
        let kernel = netlink_addr(0);
        // SAFETY: sends `request.len()` initialised bytes to a valid sockaddr_nl.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
                (&raw const kernel).cast(),
                ADDR_LEN,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for the `PROC_EVENT_NONE` answering our LISTEN; a refusal (e.g. EPERM) fails.
    /// Events that arrive meanwhile predate `open` returning and are not needed.
    fn await_ack(&self, stop: &StopSignal) -> Result<(), SensorError> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut buf = vec![0u8; 8192];
        let fail = |source| SensorError::ProcConnector {
            step: "confirm the subscription",
            source,
        };
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            match wait_readable(Some(self.as_fd()), stop, ms) {
                Ok(Wake::Ready) => {}
                Ok(Wake::Timeout) => break,
                Ok(Wake::Stop) => return Err(fail(io::ErrorKind::Interrupted.into())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(e)),
            }
            loop {
                match self.recv(&mut buf) {
                    Ok(n) => {
                        for event in parse_datagram(&buf[..n]) {
                            if let ProcEvent::Ack { ack, err } = event {
                                if ack != self.port_id.wrapping_add(1) {
                                    continue;
                                }
                                if err == 0 {
                                    return Ok(());
                                }
                                let errno = i32::try_from(err).unwrap_or(libc::EINVAL);
                                return Err(fail(io::Error::from_raw_os_error(errno)));
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // An overrun while waiting only lost events from before we started.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                    Err(e) => return Err(fail(e)),
                }
            }
        }
        Err(fail(io::ErrorKind::TimedOut.into()))
    }

    /// One datagram, without blocking (`WouldBlock` when none is queued).
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

impl AsFd for ProcConnectorSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ProcConnectorSocket {
    fn drop(&mut self) {
        // The kernel counts listeners; tell it we are gone before closing.
        let _ = self.send_op(PROC_CN_MCAST_IGNORE);
    }
}
