//! The system-call ABI between an agent (through `hostshim`) and the plinth runtime.
//!
//! Owns the numbers, the argument conventions, the error codes and the layout of an
//! agent's address space — the contract both sides compile against, so neither can drift.
//! It must not contain any mechanism: no `syscall` instruction (that is `hostshim`), no
//! validation (that is the kernel's `syscall` module).
//!
//! # Calling convention
//!
//! `syscall` with the number in `rax` and up to five arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8` (the Linux order: `rcx` and `r11` are taken by the instruction). The result
//! comes back in `rax` as an `i64`: zero or a positive value on success, a negative
//! [`Error`] code on failure. Every other register is preserved.
//!
//! # Address space
//!
//! An agent sees only the user window `[USER_BASE, USER_END)`: the second 512 GiB of the
//! address space (PML4 slot 1), while the kernel keeps slot 0 (its identity map of RAM,
//! supervisor-only). Executables are static ELF64 files linked inside the window
//! ([`IMAGE_BASE`]); the stack sits at the top of the window with an unmapped guard page
//! below it; memory granted by [`Call::MemGrow`] comes from [`HEAP_BASE`] upwards.
#![no_std]
#![forbid(unsafe_code)]

/// Page size of the user window, bytes.
pub const PAGE_SIZE: u64 = 4096;
/// First address of the user window (PML4 slot 1).
pub const USER_BASE: u64 = 0x0000_0080_0000_0000;
/// End (exclusive) of the user window.
pub const USER_END: u64 = 0x0000_0100_0000_0000;
/// Where agent executables are linked (`hostshim`'s linker script).
pub const IMAGE_BASE: u64 = USER_BASE + 0x0040_0000;
/// Executables must fit below this address: the heap starts here.
pub const IMAGE_END: u64 = USER_BASE + 0x4000_0000;
/// First address [`Call::MemGrow`] hands out.
pub const HEAP_BASE: u64 = IMAGE_END;
/// Top of the heap region (exclusive); the stack region lies above.
pub const HEAP_END: u64 = USER_END - 0x1_0000_0000;
/// Top (exclusive) of the initial stack; the page at this address stays unmapped too.
pub const STACK_TOP: u64 = USER_END - PAGE_SIZE;
/// Size of the initial stack, bytes. The page below it is an unmapped guard.
pub const STACK_SIZE: u64 = 64 * 1024;

/// Longest log line an agent may send in one call, bytes (longer is [`Error::BadLength`]).
pub const MAX_LOG: u64 = 512;
/// Largest transfer of one disk or config call, bytes.
pub const MAX_IO: u64 = 64 * 1024;
/// Sector size of a partition's data disk, bytes.
pub const SECTOR_SIZE: u64 = 512;
/// Shortest frame [`Call::NetSend`] takes: an Ethernet header.
pub const MIN_FRAME: u64 = 14;
/// Longest frame [`Call::NetSend`] takes and [`Call::NetRecv`] hands out: an untagged
/// Ethernet frame at MTU 1500, without the FCS.
pub const MAX_FRAME: u64 = 1514;
/// Longest frame [`Call::NetRecv`] hands out on a NIC with [`NET_OFFLOAD_RX`]: a TCP
/// super-frame, an Ethernet header and IPv4's largest packet.
pub const MAX_LARGE_FRAME: u64 = 14 + 65_535;
/// [`Call::NetOffload`]'s receive offload: [`Call::NetRecv`] may hand out TCP
/// super-frames (up to [`MAX_LARGE_FRAME`]) the host built from a stream's segments, and
/// sets [`NET_RX_CSUM_OK`] on frames whose TCP/UDP checksum the runtime's NIC vouched
/// for, or left partial because sender and runtime share the host: the agent's stack
/// must not check (a partial one would fail), but checks every frame without the bit.
pub const NET_OFFLOAD_RX: u64 = 1;
/// [`Call::NetOffload`]'s transmit offload: [`Call::NetSend`] takes TCP super-frames (up
/// to [`MAX_LARGE_FRAME`]) for the runtime's NIC to cut, and frames whose TCP/UDP
/// checksum it is to fill (see [`NET_TX_CSUM_PARTIAL`]).
pub const NET_OFFLOAD_TX: u64 = 2;
/// In [`Call::NetSend`]'s `offload` word (NICs with [`NET_OFFLOAD_TX`]): the frame's
/// TCP/UDP checksum is not filled in; the runtime or its NIC fills it. The low 16 bits
/// are the segment size (the MSS) of a TCP super-frame, 0 for a plain frame.
pub const NET_TX_CSUM_PARTIAL: u64 = 1 << 16;
/// In [`Call::NetRecv`]'s result on a NIC with [`NET_OFFLOAD_RX`], above the length:
/// the frame's TCP/UDP checksum is not to be checked.
pub const NET_RX_CSUM_OK: u64 = 1 << 32;
/// Most NICs one partition has; NIC numbers are `0..MAX_NICS`, and [`Call::NetWait`]'s
/// masks have one bit per NIC.
pub const MAX_NICS: u64 = 8;
/// In [`Call::NetWait`]'s result, NIC `i` has a frame to receive: bit `i`; room to send:
/// bit `NET_TX_SHIFT + i`.
pub const NET_TX_SHIFT: u32 = 8;

/// System-call numbers (`rax`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum Call {
    /// Does nothing and returns 0: the round-trip benchmark.
    Null = 0,
    /// `(ptr, len)`: one UTF-8 log line (no newline needed). Returns 0.
    Log = 1,
    /// Monotonic time since the runtime booted, nanoseconds.
    Clock = 2,
    /// `(ns)`: sleep at least this long. Returns 0.
    Sleep = 3,
    /// Give up the rest of this time slice. Returns 0.
    Yield = 4,
    /// `(code)`: end the agent; 0 is success, anything else a failure. Never returns.
    Exit = 5,
    /// Tell the runtime this agent is alive. Returns the heartbeat count.
    Heartbeat = 6,
    /// `(name_ptr, name_len, buf_ptr, buf_len, offset)`: read a file of the agent's own
    /// container from `offset`. Returns the bytes copied (0 at the end of the file).
    ConfigRead = 7,
    /// Size of the partition's data disk, sectors (0 without a disk is [`Error::NoDisk`]).
    DiskSectors = 8,
    /// `(sector, buf_ptr, len)`: read whole sectors. Returns the bytes read.
    DiskRead = 9,
    /// `(sector, buf_ptr, len)`: write whole sectors. Returns the bytes written.
    DiskWrite = 10,
    /// Make every completed write durable. Returns 0.
    DiskFlush = 11,
    /// `(bytes)`: map this much more zeroed memory (rounded up to pages), charged to the
    /// partition's quota. Returns the address of the new region.
    MemGrow = 12,
    /// `(nic)`: NIC `nic`'s MAC address, its first octet in the lowest byte of the low 48
    /// bits. [`Error::NoNic`] if the partition has no such NIC.
    NetInfo = 13,
    /// `(nic, ptr, len, offload)`: hand one Ethernet frame ([`MIN_FRAME`]..=[`MAX_FRAME`]
    /// bytes, no FCS, untagged) to NIC `nic`. Returns 0 once the runtime holds it: it is
    /// sent, delayed by the NIC's rate limit, never silently dropped.
    /// [`Error::WouldBlock`] when the NIC's transmit queue is full: wait for room with
    /// [`Call::NetWait`]. `offload` is 0, or on a NIC with [`NET_OFFLOAD_TX`]
    /// [`NET_TX_CSUM_PARTIAL`] and a segment size: then the frame may be a TCP super-frame
    /// up to [`MAX_LARGE_FRAME`] bytes whose segments (its headers and the segment size)
    /// fit [`MAX_FRAME`] ([`Error::BadLength`] if not; [`Error::Invalid`] without the
    /// offload, or for a segment size without the partial bit).
    NetSend = 14,
    /// `(nic, ptr, cap)`: take the next frame NIC `nic` received into the buffer.
    /// Returns its length (with [`NET_RX_CSUM_OK`] where it applies);
    /// [`Error::WouldBlock`] if none is waiting; [`Error::BadLength`] (the frame stays
    /// queued) if `cap` is shorter than the frame.
    NetRecv = 15,
    /// `(rx_mask, tx_mask, timeout_ns)`: sleep until a NIC in `rx_mask` (bit `i`: NIC
    /// `i`) has a frame to receive or one in `tx_mask` has room to send, or `timeout_ns`
    /// passed. Returns at once if one is ready already. Returns which are ready (see
    /// [`NET_TX_SHIFT`]); 0 after the timeout.
    NetWait = 16,
    /// `(nic, features)`: ask for NIC `nic`'s offloads ([`NET_OFFLOAD_RX`],
    /// [`NET_OFFLOAD_TX`], or 0 for none, the default). Returns those now on: each only
    /// where the runtime's uplink does it (hands over super-frames; cuts them). Frames
    /// received before stay plain. They go off when none of the partition's agents runs
    /// any more: each agent's stack asks for its own.
    /// [`Error::Invalid`] for a feature bit it does not know.
    NetOffload = 17,
}

impl Call {
    /// Every call, in number order.
    pub const ALL: [Call; 18] = [
        Call::Null,
        Call::Log,
        Call::Clock,
        Call::Sleep,
        Call::Yield,
        Call::Exit,
        Call::Heartbeat,
        Call::ConfigRead,
        Call::DiskSectors,
        Call::DiskRead,
        Call::DiskWrite,
        Call::DiskFlush,
        Call::MemGrow,
        Call::NetInfo,
        Call::NetSend,
        Call::NetRecv,
        Call::NetWait,
        Call::NetOffload,
    ];

    /// The call with number `n`, if there is one.
    pub fn from_number(n: u64) -> Option<Call> {
        Self::ALL.get(usize::try_from(n).ok()?).copied()
    }

    /// Short name, for events and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Call::Null => "null",
            Call::Log => "log",
            Call::Clock => "clock",
            Call::Sleep => "sleep",
            Call::Yield => "yield",
            Call::Exit => "exit",
            Call::Heartbeat => "heartbeat",
            Call::ConfigRead => "config_read",
            Call::DiskSectors => "disk_sectors",
            Call::DiskRead => "disk_read",
            Call::DiskWrite => "disk_write",
            Call::DiskFlush => "disk_flush",
            Call::MemGrow => "mem_grow",
            Call::NetInfo => "net_info",
            Call::NetSend => "net_send",
            Call::NetRecv => "net_recv",
            Call::NetWait => "net_wait",
            Call::NetOffload => "net_offload",
        }
    }
}

/// Why a call failed; the negated value comes back in `rax`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i64)]
pub enum Error {
    /// No system call has this number.
    UnknownCall = -1,
    /// A pointer argument is outside the user window, unmapped, or (for a buffer the
    /// runtime writes) read-only.
    BadPointer = -2,
    /// A length overflows, exceeds the call's maximum, or is not whole sectors.
    BadLength = -3,
    /// Text that must be UTF-8 is not.
    NotUtf8 = -4,
    /// No such file in the agent's container.
    NotFound = -5,
    /// The partition has no data disk.
    NoDisk = -6,
    /// Sectors beyond the end of the partition's data disk.
    OutOfRange = -7,
    /// The partition's memory quota would be exceeded.
    QuotaExceeded = -8,
    /// The device reported an error.
    Io = -9,
    /// An argument is out of its domain (e.g. a zero-byte grow).
    Invalid = -10,
    /// The partition has no NIC with this number.
    NoNic = -11,
    /// Nothing to receive, or no room to send, now: wait with [`Call::NetWait`].
    WouldBlock = -12,
}

impl Error {
    /// Every error, most negative last.
    pub const ALL: [Error; 12] = [
        Error::UnknownCall,
        Error::BadPointer,
        Error::BadLength,
        Error::NotUtf8,
        Error::NotFound,
        Error::NoDisk,
        Error::OutOfRange,
        Error::QuotaExceeded,
        Error::Io,
        Error::Invalid,
        Error::NoNic,
        Error::WouldBlock,
    ];

    /// The error `rax` holds, if it holds one of ours.
    pub fn from_code(code: i64) -> Option<Error> {
        Self::ALL.into_iter().find(|e| *e as i64 == code)
    }

    /// The value placed in `rax`.
    pub fn code(self) -> u64 {
        self as i64 as u64
    }

    /// What went wrong, in words.
    pub fn message(self) -> &'static str {
        match self {
            Error::UnknownCall => "unknown system call",
            Error::BadPointer => "bad pointer",
            Error::BadLength => "bad length",
            Error::NotUtf8 => "not UTF-8",
            Error::NotFound => "not found",
            Error::NoDisk => "no data disk",
            Error::OutOfRange => "beyond the end of the disk",
            Error::QuotaExceeded => "memory quota exceeded",
            Error::Io => "I/O error",
            Error::Invalid => "invalid argument",
            Error::NoNic => "no such NIC",
            Error::WouldBlock => "would block",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// Splits a raw `rax` into a result: negative values that are ours are errors.
pub fn decode(rax: u64) -> Result<u64, Error> {
    match Error::from_code(rax as i64) {
        Some(e) => Err(e),
        None => Ok(rax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_numbers_are_none() {
        for (i, c) in Call::ALL.iter().enumerate() {
            assert_eq!(*c as u64, i as u64);
            assert_eq!(Call::from_number(i as u64), Some(*c));
        }
        assert_eq!(Call::from_number(Call::ALL.len() as u64), None);
        assert_eq!(Call::from_number(u64::MAX), None);
    }

    #[test]
    fn errors_decode_and_successes_do_not() {
        for e in Error::ALL {
            assert_eq!(decode(e.code()), Err(e));
        }
        assert_eq!(decode(0), Ok(0));
        assert_eq!(decode(USER_BASE), Ok(USER_BASE));
        // A negative value that is not ours is a value (e.g. a huge size), not an error.
        assert_eq!(decode(-1000i64 as u64), Ok(-1000i64 as u64));
    }

    #[test]
    fn the_window_is_ordered_and_page_aligned() {
        let marks = [
            USER_BASE,
            IMAGE_BASE,
            IMAGE_END,
            HEAP_BASE,
            HEAP_END,
            STACK_TOP - STACK_SIZE - PAGE_SIZE,
            STACK_TOP,
            USER_END,
        ];
        for w in marks.windows(2) {
            assert!(w[0] <= w[1], "{:#x} > {:#x}", w[0], w[1]);
        }
        for m in marks {
            assert_eq!(m % PAGE_SIZE, 0);
        }
        // PML4 slot 1 exactly.
        assert_eq!(USER_BASE >> 39, 1);
        assert_eq!((USER_END - 1) >> 39, 1);
    }
}
