//! `scrubber`: an agent that exercises its partition's data disk end to end.
//!
//! Demonstrates the disk calls and `mem_grow`. Each pass writes a deterministic pattern
//! (a function of the pass number, the sector and the position in it) over the whole
//! disk in transfers of up to 64 KiB, flushes, reads everything back and verifies it,
//! logs `scrubber: pass P verified S sectors` and heartbeats; then sleeps `interval_ms`
//! from `etc/scrubber.toml` (default 1000) and starts the next pass. Exit codes: 2 without a disk, 3 on a mismatch (logged as
//! `scrubber: MISMATCH at sector X`), 4 if a call fails.
#![cfg_attr(not(feature = "host"), no_std, no_main)]

use hostshim::abi::{MAX_IO, SECTOR_SIZE};
use hostshim::{Error, logf};

hostshim::entry!(run);

/// Bytes per sector, as a slice length.
const SECTOR: usize = SECTOR_SIZE as usize;
/// Sectors per transfer.
const CHUNK_SECTORS: u64 = MAX_IO / SECTOR_SIZE;

fn run() -> i32 {
    let mut text = [0u8; 256];
    let interval_ms = match hostshim::config_read("etc/scrubber.toml", 0, &mut text) {
        Ok(n) => core::str::from_utf8(&text[..n])
            .ok()
            .and_then(|t| hostshim::config::number(t, "interval_ms"))
            .unwrap_or(1000),
        Err(_) => 1000,
    };
    let sectors = match hostshim::disk_sectors() {
        Ok(n) => n,
        Err(e) => {
            logf!("scrubber: no data disk ({e}); exiting");
            return 2;
        }
    };
    // 64 KiB would be the whole stack: the transfer buffer comes from mem_grow.
    let buf = match hostshim::mem_grow(MAX_IO) {
        Ok(buf) => buf,
        Err(e) => {
            logf!("scrubber: cannot get a {MAX_IO}-byte buffer ({e})");
            return 4;
        }
    };
    logf!("scrubber: scrubbing {sectors} sectors");
    let mut pass = 1u64;
    loop {
        match scrub(pass, sectors, buf) {
            Ok(()) => logf!("scrubber: pass {pass} verified {sectors} sectors"),
            Err(Failure::Mismatch(sector)) => {
                logf!("scrubber: MISMATCH at sector {sector}");
                return 3;
            }
            Err(Failure::Call(what, sector, e)) => {
                logf!("scrubber: {what} at sector {sector} failed: {e}");
                return 4;
            }
        }
        hostshim::heartbeat();
        hostshim::sleep_ms(interval_ms);
        pass += 1;
    }
}

/// Why a pass stopped.
enum Failure {
    /// The sector read back differs from what was written.
    Mismatch(u64),
    /// A disk call failed: which, at which sector, and why.
    Call(&'static str, u64, Error),
}

/// One pass: write every sector, flush, read every sector back and compare.
fn scrub(pass: u64, sectors: u64, buf: &mut [u8]) -> Result<(), Failure> {
    let mut sector = 0;
    while sector < sectors {
        let n = CHUNK_SECTORS.min(sectors - sector);
        let chunk = &mut buf[..n as usize * SECTOR];
        for (i, s) in chunk.chunks_exact_mut(SECTOR).enumerate() {
            fill(pass, sector + i as u64, s);
        }
        hostshim::disk_write(sector, chunk).map_err(|e| Failure::Call("write", sector, e))?;
        sector += n;
    }
    hostshim::disk_flush().map_err(|e| Failure::Call("flush", 0, e))?;

    let mut expected = [0u8; SECTOR];
    let mut sector = 0;
    while sector < sectors {
        let n = CHUNK_SECTORS.min(sectors - sector);
        let chunk = &mut buf[..n as usize * SECTOR];
        hostshim::disk_read(sector, chunk).map_err(|e| Failure::Call("read", sector, e))?;
        for (i, s) in chunk.chunks_exact(SECTOR).enumerate() {
            let at = sector + i as u64;
            fill(pass, at, &mut expected);
            if s != expected {
                return Err(Failure::Mismatch(at));
            }
        }
        sector += n;
    }
    Ok(())
}

/// The pattern of `sector` in `pass`: 64 words of SplitMix64 output, seeded by both, so
/// every pass changes every word and a sector written to the wrong place is caught.
fn fill(pass: u64, sector: u64, out: &mut [u8]) {
    let seed =
        pass.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ sector.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    for (i, word) in out.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&splitmix64(seed.wrapping_add(i as u64)).to_le_bytes());
    }
}

/// SplitMix64's output function (Steele, Lea, Flood 2014).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
