//! `hostshim::net` as an ordinary Linux process: std's non-blocking sockets on
//! `127.0.0.1`.
//!
//! Owns the sockets and the host's rules (the port offset, loopback only). It must keep
//! the observable behaviour of the target backend (results and errors of each call, the
//! socket limit, a close that still delivers what was sent) so an agent tested on the
//! host behaves the same in a partition; it must not depend on anything but std (no
//! libc: `poll` sleeps briefly instead of waiting on the sockets).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::{Addressing, Cidr, Limits, NetError, Stats, put};

/// Added to every local port: ports below 1024 need root on the host.
const PORT_OFFSET_VAR: &str = "PLINTH_NET_PORT_OFFSET";
/// A Linux process has no NIC of its own: a fixed, locally administered MAC.
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The interface the host backend serves on.
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// The longest `poll` sleeps without news: std cannot wait on several sockets, so it
/// looks again this often.
const TICK: Duration = Duration::from_millis(1);
/// How long a closed stream may take to be finished by its peer (as on the target).
const LINGER: Duration = Duration::from_secs(30);

pub struct Stack {
    limits: Limits,
    offset: u16,
    listeners: Vec<Option<TcpListener>>,
    streams: Vec<Option<TcpStream>>,
    /// Closed streams (our side shut down) whose peer has not finished yet: reading
    /// until it does, so closing never discards what was sent (closing a socket with
    /// unread data makes Linux reset the connection).
    closing: Vec<(TcpStream, Instant)>,
    udps: Vec<Option<UdpSocket>>,
    /// A call made progress since the last poll: do not sleep.
    busy: bool,
}

impl Stack {
    pub fn up(_addressing: Addressing, limits: Limits) -> Result<Stack, NetError> {
        Ok(Stack {
            limits,
            offset: port_offset(),
            listeners: Vec::new(),
            streams: Vec::new(),
            closing: Vec::new(),
            udps: Vec::new(),
            busy: false,
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        HOST_MAC
    }

    pub fn address(&self) -> Option<Cidr> {
        Cidr::new(LOOPBACK, 8)
    }

    pub fn gateway(&self) -> Option<Ipv4Addr> {
        None
    }

    pub fn stats(&self) -> Stats {
        Stats::default()
    }

    pub fn poll(&mut self, max_wait_ns: u64) {
        self.linger();
        if core::mem::take(&mut self.busy) {
            return;
        }
        std::thread::sleep(TICK.min(Duration::from_nanos(max_wait_ns)));
        self.linger();
    }

    /// Reads closing streams until their peers finish (or give up), then lets them go.
    fn linger(&mut self) {
        let mut sink = [0u8; 4096];
        self.closing.retain_mut(|(stream, since)| {
            if since.elapsed() > LINGER {
                return false;
            }
            loop {
                match stream.read(&mut sink) {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
                }
            }
        });
    }

    fn tcp_in_use(&self) -> usize {
        count(&self.listeners) + count(&self.streams) + self.closing.len()
    }

    fn local(&self, port: u16) -> Result<SocketAddrV4, NetError> {
        if port == 0 {
            return Err(NetError::InvalidPort);
        }
        let port = port.checked_add(self.offset).ok_or(NetError::InvalidPort)?;
        Ok(SocketAddrV4::new(LOOPBACK, port))
    }

    pub fn tcp_listen(&mut self, port: u16) -> Result<usize, NetError> {
        let at = self.local(port)?;
        if self.tcp_in_use() >= self.limits.tcp_sockets {
            return Err(NetError::NoSockets);
        }
        let listener = TcpListener::bind(at).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(|_| NetError::Io)?;
        Ok(put(&mut self.listeners, listener))
    }

    pub fn close_listener(&mut self, listener: usize) {
        if let Some(slot) = self.listeners.get_mut(listener) {
            *slot = None;
        }
    }

    pub fn accept(&mut self, listener: usize) -> Option<usize> {
        // Connections beyond the limit wait in the host's backlog.
        if self.tcp_in_use() >= self.limits.tcp_sockets {
            return None;
        }
        let (stream, _) = self.listeners.get(listener)?.as_ref()?.accept().ok()?;
        // A stream that cannot be made non-blocking would stall the agent: drop it.
        stream.set_nonblocking(true).ok()?;
        // Small writes go out at once, as on the target (where Nagle is off too).
        let _ = stream.set_nodelay(true);
        self.busy = true;
        Some(put(&mut self.streams, stream))
    }

    fn stream(&mut self, stream: usize) -> Result<&mut TcpStream, NetError> {
        self.streams
            .get_mut(stream)
            .and_then(Option::as_mut)
            .ok_or(NetError::BadHandle)
    }

    pub fn peer(&self, stream: usize) -> Option<SocketAddrV4> {
        match self.streams.get(stream)?.as_ref()?.peer_addr().ok()? {
            SocketAddr::V4(a) => Some(a),
            SocketAddr::V6(_) => None,
        }
    }

    pub fn recv(&mut self, stream: usize, buf: &mut [u8]) -> Result<usize, NetError> {
        let s = self.stream(stream)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let n = io_result(s.read(buf))?;
        self.busy |= n > 0;
        Ok(n)
    }

    pub fn send(&mut self, stream: usize, data: &[u8]) -> Result<usize, NetError> {
        let s = self.stream(stream)?;
        if data.is_empty() {
            return Ok(0);
        }
        match io_result(s.write(data))? {
            // A socket that takes nothing of a non-empty write is not open.
            0 => Err(NetError::Closed),
            n => {
                self.busy = true;
                Ok(n)
            }
        }
    }

    pub fn close(&mut self, stream: usize) {
        if let Some(s) = self.streams.get_mut(stream).and_then(Option::take) {
            // Fails only if the connection is gone already: then there is nothing to
            // linger for.
            if s.shutdown(Shutdown::Write).is_ok() {
                self.closing.push((s, Instant::now()));
            }
        }
    }

    pub fn udp_bind(&mut self, port: u16) -> Result<usize, NetError> {
        let at = self.local(port)?;
        if count(&self.udps) >= self.limits.udp_sockets {
            return Err(NetError::NoSockets);
        }
        let udp = UdpSocket::bind(at).map_err(bind_error)?;
        udp.set_nonblocking(true).map_err(|_| NetError::Io)?;
        Ok(put(&mut self.udps, udp))
    }

    fn udp(&self, udp: usize) -> Result<&UdpSocket, NetError> {
        self.udps
            .get(udp)
            .and_then(Option::as_ref)
            .ok_or(NetError::BadHandle)
    }

    pub fn send_to(&mut self, udp: usize, data: &[u8], to: SocketAddrV4) -> Result<(), NetError> {
        let socket = self.udp(udp)?;
        if to.port() == 0 || to.ip().is_unspecified() || to.ip().is_broadcast() {
            return Err(NetError::InvalidPort);
        }
        if data.len() > self.limits.udp_buffer {
            return Err(NetError::TooLong);
        }
        match socket.send_to(data, to) {
            Ok(_) => {
                self.busy = true;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(NetError::WouldBlock),
            // An unreachable destination or a refusal from an earlier datagram: UDP
            // promises no delivery, and the target backend reports neither.
            Err(_) => Ok(()),
        }
    }

    pub fn recv_from(
        &mut self,
        udp: usize,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), NetError> {
        let socket = self.udp(udp)?;
        loop {
            match socket.recv_from(buf) {
                Ok((n, SocketAddr::V4(from))) => {
                    self.busy = true;
                    return Ok((n, from));
                }
                // Not on a socket bound to an IPv4 address; skip it if it ever happens.
                Ok((_, SocketAddr::V6(_))) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(NetError::WouldBlock);
                }
                // A port-unreachable from an earlier send, or an interrupted call: not a
                // datagram, and not a reason to stop receiving.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Err(NetError::Io),
            }
        }
    }

    pub fn close_udp(&mut self, udp: usize) {
        if let Some(slot) = self.udps.get_mut(udp) {
            *slot = None;
        }
    }
}

fn count<T>(slots: &[Option<T>]) -> usize {
    slots.iter().filter(|s| s.is_some()).count()
}

/// A read or write's result as the target reports it: `WouldBlock`, or `Closed` for a
/// connection that is gone.
fn io_result(r: io::Result<usize>) -> Result<usize, NetError> {
    match r {
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Err(NetError::WouldBlock)
        }
        Err(_) => Err(NetError::Closed),
    }
}

fn bind_error(e: io::Error) -> NetError {
    match e.kind() {
        io::ErrorKind::AddrInUse => NetError::PortInUse,
        _ => NetError::Io,
    }
}

/// `$PLINTH_NET_PORT_OFFSET`, or 0 (with a warning if it is not a port number).
fn port_offset() -> u16 {
    let Ok(text) = std::env::var(PORT_OFFSET_VAR) else {
        return 0;
    };
    match crate::config::parse_number(text.trim()).and_then(|n| u16::try_from(n).ok()) {
        Some(offset) => offset,
        None => {
            crate::host::stderr_line(
                "[hostshim]",
                &format!("{PORT_OFFSET_VAR}={text:?} is not a port offset; using 0"),
            );
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::super::{Addressing, Limits, Net, NetError};

    /// A port range nobody else uses for this test: tests run in parallel, and so may
    /// other processes.
    fn listen_anywhere(net: &mut Net) -> (super::super::Listener, u16) {
        for port in (20000..60000)
            .step_by(97)
            .skip(std::process::id() as usize % 300)
        {
            match net.tcp_listen(port) {
                Ok(l) => return (l, port),
                Err(NetError::PortInUse) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no free port");
    }

    /// Polls until `f` gives something, for at most 10 s.
    fn until<T>(net: &mut Net, mut f: impl FnMut(&mut Net) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(t) = f(net) {
                return t;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "timed out");
            net.poll(10_000_000);
        }
    }

    #[test]
    fn a_listener_accepts_a_std_stream_and_echoes() {
        let mut net = Net::up(Addressing::Dhcp).unwrap();
        let (listener, port) = listen_anywhere(&mut net);
        assert!(net.accept(&listener).is_none());

        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let stream = until(&mut net, |n| n.accept(&listener));
        assert!(net.peer(&stream).is_some());
        let mut buf = [0u8; 64];
        assert_eq!(net.recv(&stream, &mut buf), Err(NetError::WouldBlock));

        client.write_all(b"hello, echo").unwrap();
        let n = until(&mut net, |n| n.recv(&stream, &mut buf).ok());
        assert_eq!(&buf[..n], b"hello, echo");
        assert_eq!(net.send(&stream, &buf[..n]), Ok(n));
        let mut back = [0u8; 11];
        client.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello, echo");

        // The peer finishing is Ok(0); our close still delivers what was queued.
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(until(&mut net, |n| n.recv(&stream, &mut buf).ok()), 0);
        assert_eq!(net.send(&stream, b"bye"), Ok(3));
        net.close(stream);
        net.poll(0);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"bye");
    }

    #[test]
    fn limits_ports_and_handles() {
        let mut net = Net::up_with(
            Addressing::Dhcp,
            Limits {
                tcp_sockets: 2,
                ..Limits::default()
            },
        )
        .unwrap();
        assert_eq!(net.tcp_listen(0).err(), Some(NetError::InvalidPort));
        let (listener, port) = listen_anywhere(&mut net);
        assert_eq!(net.tcp_listen(port).err(), Some(NetError::PortInUse));

        // One listener and one connection fill a limit of two: the next connection
        // waits (in the host's backlog) until a stream is closed.
        let a = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _b = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let first = until(&mut net, |n| n.accept(&listener));
        for _ in 0..20 {
            net.poll(1_000_000);
            assert!(net.accept(&listener).is_none());
        }
        net.close(first);
        // `a` is still open, so its stream lingers (and counts) until it finishes.
        drop(a);
        let second = until(&mut net, |n| n.accept(&listener));

        // A handle of another Net is refused, not confused with one of this one.
        let mut other = Net::up(Addressing::Dhcp).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(other.recv(&second, &mut buf), Err(NetError::BadHandle));
        assert_eq!(other.send(&second, b"x"), Err(NetError::BadHandle));
    }

    #[test]
    fn a_vanished_peer_is_closed_not_fatal() {
        let mut net = Net::up(Addressing::Dhcp).unwrap();
        let (listener, port) = listen_anywhere(&mut net);
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let stream = until(&mut net, |n| n.accept(&listener));
        // Data the client never read makes its close a reset.
        assert_eq!(net.send(&stream, b"unread"), Ok(6));
        std::thread::sleep(Duration::from_millis(50));
        drop(client);
        let mut buf = [0u8; 8];
        let end = until(&mut net, |n| match n.recv(&stream, &mut buf) {
            Err(NetError::WouldBlock) => None,
            other => Some(other),
        });
        assert!(matches!(end, Ok(0) | Err(NetError::Closed)), "{end:?}");
        // Sending into it fails, in time, with Closed (never a signal or a panic).
        until(&mut net, |n| match n.send(&stream, &[0u8; 4096]) {
            Err(NetError::Closed) => Some(()),
            _ => None,
        });
        net.close(stream);
    }

    #[test]
    fn udp_round_trip() {
        let mut net = Net::up(Addressing::Dhcp).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer_at = match peer.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let udp = (20001..60000)
            .step_by(89)
            .find_map(|p| net.udp_bind(p).ok().map(|u| (u, p)));
        let (udp, port) = udp.expect("a free UDP port");
        net.send_to(&udp, b"ping", peer_at).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"ping"[..], port));
        peer.send_to(b"pong", from).unwrap();
        let (n, from) = until(&mut net, |n| n.recv_from(&udp, &mut buf).ok());
        assert_eq!((&buf[..n], from), (&b"pong"[..], peer_at));
        assert_eq!(
            net.send_to(&udp, &[0; 9000], peer_at),
            Err(NetError::TooLong)
        );
        net.close_udp(udp);
    }
}
