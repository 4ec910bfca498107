//! Benchmarks run inside the runtime on request (`bench blk` on the console), measured
//! with the kernel's TSC clock so host-side overhead is not part of the figure.
//!
//! Owns the workloads and their one-line reports (`key=value` pairs, for `plinth bench`
//! to parse). It must not change anything but the benchmarked region of the disk.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use crate::block::SECTOR_SIZE;

use crate::block::{self, DiskError};
use crate::clock;

/// What `bench blk` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkParams {
    pub disk: usize,
    /// Bytes written then read sequentially, from sector 0.
    pub region: u64,
    /// Bytes per sequential request.
    pub request: u64,
    /// Sequential requests kept in flight.
    pub depth: usize,
    /// 4 KiB random reads, one at a time, within the region.
    pub random_reads: u64,
}

/// Measured times, nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct BlkFigures {
    pub write_ns: u64,
    pub flush_ns: u64,
    pub read_ns: u64,
    pub random_ns: u64,
}

/// Sequential write (then flush), sequential read, and 4 KiB random reads at queue depth
/// one, over the first `region` bytes of the disk.
/// `serve` runs whenever the benchmark waits on the disk.
pub fn blk(p: &BlkParams, serve: &mut dyn FnMut()) -> Result<BlkFigures, DiskError> {
    let sector = SECTOR_SIZE as u64;
    if p.request == 0 || !p.request.is_multiple_of(sector) || p.region < p.request || p.depth == 0 {
        return Err(DiskError::BadLength);
    }
    // Checked before anything is written: a region past the end must not half-run.
    if p.region / sector > block::sectors(p.disk)? {
        return Err(DiskError::OutOfRange);
    }
    let requests = p.region / p.request;
    let mut pool: Vec<Vec<u8>> = (0..p.depth)
        .map(|i| vec![i as u8 ^ 0x5a; p.request as usize])
        .collect();

    let t0 = clock::now_ns();
    sequential(p, requests, &mut pool, true, serve)?;
    let t1 = clock::now_ns();
    block::wait(block::flush(p.disk)?, serve)?;
    let t2 = clock::now_ns();
    sequential(p, requests, &mut pool, false, serve)?;
    let t3 = clock::now_ns();

    let blocks = (requests * p.request) / 4096;
    let mut buf = vec![0u8; 4096];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..p.random_reads {
        // xorshift64: uniform enough to defeat read-ahead, and reproducible.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % blocks.max(1)) * (4096 / sector);
        buf = block::wait(block::read(p.disk, at, buf)?, serve)?;
    }
    let t4 = clock::now_ns();
    Ok(BlkFigures {
        write_ns: t1 - t0,
        flush_ns: t2 - t1,
        read_ns: t3 - t2,
        random_ns: t4 - t3,
    })
}

/// `requests` sequential requests from sector 0, `depth` in flight, with the buffers of
/// `pool` (one per slot).
fn sequential(
    p: &BlkParams,
    requests: u64,
    pool: &mut Vec<Vec<u8>>,
    write: bool,
    serve: &mut dyn FnMut(),
) -> Result<(), DiskError> {
    let per = p.request / SECTOR_SIZE as u64;
    let mut in_flight = VecDeque::new();
    let mut next = 0;
    let mut failed = None;
    'run: while next < requests || !in_flight.is_empty() {
        while next < requests {
            let Some(buf) = pool.pop() else { break };
            let t = if write {
                block::write(p.disk, next * per, buf)
            } else {
                block::read(p.disk, next * per, buf)
            };
            match t {
                Ok(t) => in_flight.push_back(t),
                Err(e) => {
                    failed = Some(e);
                    break 'run;
                }
            }
            next += 1;
        }
        if let Some(t) = in_flight.pop_front() {
            match block::wait(t, serve) {
                Ok(buf) => pool.push(buf),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    // Collect what is still in flight, so no outcome is left behind in the block layer.
    for t in in_flight {
        let _ = block::wait(t, serve);
    }
    failed.map_or(Ok(()), Err)
}

/// Bytes per second as MiB/s with two decimals, in integer arithmetic.
pub struct Rate(pub u64, pub u64);

impl core::fmt::Display for Rate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let centi = u128::from(self.0) * 100 * 1_000_000_000 / (u128::from(self.1.max(1)) << 20);
        write!(f, "{}.{:02}", centi / 100, centi % 100)
    }
}

/// What `bench bridge` measured: ns per frame through the bridge (decision, MAC learning
/// and the copy out with the 802.1Q tag pushed), for 64-byte and 1500-byte frames.
#[derive(Clone, Copy, Debug)]
pub struct BridgeFigures {
    pub frames: u64,
    pub ns_64: u64,
    pub ns_1500: u64,
}

/// Forwards `frames` frames of each size from a partition's access port (VLAN 100) to a
/// station learned behind the uplink trunk, through a private bridge laid out as the
/// runtime's (`plinth_bridge::bench`, the layout `plinth bench bridge` also times on the
/// host): the per-frame work the switch adds between a partition's `NetSend` and the
/// NIC's ring, timed by the TSC.
pub fn bridge(frames: u64) -> BridgeFigures {
    use plinth_bridge::bench::Layout;
    let mut layout = Layout::new();
    let now = clock::now_ns() / 1_000_000;
    let mut time = |len: usize| {
        let frame = Layout::frame(len);
        let t0 = clock::now_ns();
        for _ in 0..frames {
            let _ = layout.forward(&frame, now);
        }
        (clock::now_ns() - t0) / frames.max(1)
    };
    let ns_64 = time(64);
    let ns_1500 = time(1500);
    BridgeFigures {
        frames,
        ns_64,
        ns_1500,
    }
}
