//! The management plane: the HTTP API the operator and the `plinth` tool drive the
//! runtime through.
//!
//! `Server` owns the API's TCP sockets (added to the network stack's socket set) and who
//! holds them: each carries one client (`conn`), deadlines for heads and bodies come from
//! `plinth-http`, and when the table runs short of listening sockets, or one peer holds
//! too many, `plinth_http::admission` picks the connection to reset — so slow, idle or
//! flooding clients cannot lock the operator out. `routes` maps paths to answers and
//! `partitions` glues the command set to the partition table. The JSON answers are
//! `plinth_control::views`, filled here from the runtime's state and written by their
//! `to_json`, so the `plinth` tool reads the same types the runtime writes.
//!
//! It calls down only — into `net` for sockets, `partition`, `block`, `drivers`,
//! `catalog` and `memory` for what it reports — and nothing calls into it but the idle
//! loop. It must not parse HTTP (`plinth-http` does) or touch the NIC.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use log::warn;
use plinth_http::admission::{self, Occupant, Policy};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::wire::IpAddress;

use crate::net;

mod conn;
mod network;
mod partitions;
mod policies;
mod profile;
mod routes;
mod usage;

use conn::Conn;

/// Facts fixed at boot that the handlers report.
pub struct Context {
    pub memory_bytes: u64,
    pub cpus: u32,
    /// Whether the benchmark streams are offered (`bench` on the command line).
    pub bench: bool,
}

/// TCP sockets the API keeps. A SYN that finds none listening is refused with RST
/// (smoltcp answers that way), so load cannot grow memory: 16 × 128 KiB of buffers.
pub const API_SOCKETS: usize = 16;

/// Who gives way when the table is short: a peer may hold half the sockets, and two stay
/// listening, so a new client always finds one (a burst of more SYNs than that within
/// one poll round is the only thing refused).
const ADMISSION: Policy = Policy {
    per_peer: API_SOCKETS / 2,
    spare: 2,
};

/// Per-connection TCP buffers. Big enough for a full window of bulk transfer (the
/// throughput benchmark) with window scaling.
const TCP_BUFFER: usize = 64 * 1024;
/// A peer that stops acknowledging for this long loses its connection.
const TCP_TIMEOUT: Duration = Duration::from_secs(60);

/// After our FIN, how long a peer may take to close its side (or acknowledge) before the
/// connection is reset: a peer that never closes must not keep a slot (FIN-WAIT-2 has no
/// timer of its own in TCP, and Linux bounds it the same way with `tcp_fin_timeout`).
const CLOSING_TIMEOUT_MS: u64 = 10_000;

/// Connections reset to make room (admission), for `/metrics`.
static EVICTED: AtomicU64 = AtomicU64::new(0);

/// Connections the admission policy has reset since boot.
pub fn evicted() -> u64 {
    EVICTED.load(Ordering::Relaxed)
}

/// One API socket and the client it holds.
struct Slot {
    handle: SocketHandle,
    conn: Option<Conn>,
    /// When our side closed, while the peer has not finished closing.
    closing_since: Option<u64>,
}

/// The API's sockets and their clients.
pub struct Server {
    port: u16,
    slots: Vec<Slot>,
}

/// Puts an API socket (back) into the listening state with the API's TCP options.
fn listen(socket: &mut tcp::Socket, port: u16) -> Result<(), tcp::ListenError> {
    socket.set_timeout(Some(TCP_TIMEOUT));
    socket.set_nagle_enabled(false);
    socket.listen(port)
}

impl Server {
    /// Adds the API's sockets to `stack`'s set, listening on `port`.
    pub fn new(stack: &mut net::Stack, port: u16) -> Server {
        let sockets = stack.sockets();
        let mut slots = Vec::with_capacity(API_SOCKETS);
        for _ in 0..API_SOCKETS {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
                tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            );
            if let Err(e) = listen(&mut socket, port) {
                warn!("api: cannot listen on port {port}: {e}");
            }
            slots.push(Slot {
                handle: sockets.add(socket),
                conn: None,
                closing_since: None,
            });
        }
        log::info!("api: listening on TCP port {port}");
        Server { port, slots }
    }

    /// Moves bytes between the API sockets and their clients, then makes room if the
    /// table is short (see [`ADMISSION`]). Returns whether anything moved.
    fn serve(
        &mut self,
        sockets: &mut SocketSet<'static>,
        now_ms: u64,
        ctx: &Context,
        nic: &net::NicInfo,
    ) -> bool {
        let mut moved = false;
        for slot in &mut self.slots {
            let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
            if !socket.is_open() {
                // Closed (by us or the peer, reset, or timed out), or in TIME-WAIT, which
                // smoltcp counts as not open: listen again for the next one at once.
                slot.conn = None;
                slot.closing_since = None;
                let _ = listen(socket, self.port);
                continue;
            }
            let we_closed = matches!(
                socket.state(),
                tcp::State::FinWait1
                    | tcp::State::FinWait2
                    | tcp::State::Closing
                    | tcp::State::LastAck
            );
            match (we_closed, slot.closing_since) {
                (false, _) => slot.closing_since = None,
                (true, None) => slot.closing_since = Some(now_ms),
                (true, Some(since)) if now_ms.saturating_sub(since) > CLOSING_TIMEOUT_MS => {
                    socket.abort();
                    moved = true;
                    continue;
                }
                (true, Some(_)) => {}
            }
            if !socket.is_active() {
                continue; // still listening
            }
            let conn = slot.conn.get_or_insert_with(|| {
                log::debug!("api: connection from {:?}", socket.remote_endpoint());
                Conn::new(now_ms)
            });
            moved |= conn::serve(conn, socket, now_ms, ctx, nic);
        }
        moved | self.make_room(sockets)
    }

    /// Resets connections until no peer holds more than its share and enough sockets
    /// listen for new clients. A reset socket sends its RST on the next poll round and
    /// listens again in the round after.
    fn make_room(&mut self, sockets: &mut SocketSet<'static>) -> bool {
        let mut table: [Option<Occupant<IpAddress>>; API_SOCKETS] = [None; API_SOCKETS];
        for (entry, slot) in table.iter_mut().zip(&self.slots) {
            let socket = sockets.get::<tcp::Socket>(slot.handle);
            if !socket.is_active() {
                continue; // listening, or closed and about to listen again
            }
            if let (Some(conn), Some(remote)) = (&slot.conn, socket.remote_endpoint()) {
                *entry = Some(Occupant {
                    peer: remote.addr,
                    opened_ms: conn.opened_ms,
                    last_progress_ms: conn.last_progress_ms(),
                    busy: conn.is_busy(),
                });
            }
        }
        let mut any = false;
        while let Some(i) = admission::victim(&table, &ADMISSION) {
            table[i] = None;
            let slot = &mut self.slots[i];
            let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
            log::debug!("api: reset {:?} to make room", socket.remote_endpoint());
            socket.abort();
            slot.conn = None;
            slot.closing_since = None;
            EVICTED.fetch_add(1, Ordering::Relaxed);
            any = true;
        }
        any
    }
}

/// Services the NIC, the network stack and the API until nothing more happens; called
/// from the idle loop after a device interrupt or a timer tick.
pub fn poll(stack: &mut net::Stack, server: &mut Server, ctx: &Context) {
    for _ in 0..64 {
        let t = net::now();
        let changed = stack.poll_once(t);
        let now_ms = t.total_millis().max(0) as u64;
        let (sockets, nic) = stack.sockets_and_info();
        let served = server.serve(sockets, now_ms, ctx, &nic);
        // One doorbell for everything this round sent or posted.
        stack.flush();
        if !changed && !served && !stack.has_received() {
            break;
        }
    }
}
