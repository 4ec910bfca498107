//! The runtime's state on the appliance disk: the `plinth-state` partition, a
//! `plinth-journal` ring, found and recovered once at boot, then appended to — so that
//! what must outlive a restart (usage for billing) does.
//!
//! Owns where the ring is and the journal's position. It must not decide what is kept or
//! read records' meaning (metering does); it writes through `block`, each record then a
//! flush, which the block layer keeps in order.

use alloc::vec;
use alloc::vec::Vec;

use plinth_journal::{Journal, Kind, Record};
use spin::Mutex;

use crate::block::{self, DiskError, Ticket};

struct State {
    disk: usize,
    first_lba: u64,
    journal: Journal,
    /// The last record's write and flush, not waited for: looked at when the next is
    /// appended, so a failure is said once rather than never.
    pending: Option<(Ticket, Ticket)>,
    /// Whether a failure has been logged (once per boot is enough to act on).
    warned: bool,
}

/// The most of a state partition used: 16 MiB, read whole at boot. A larger one (a
/// hostile or mistaken GPT) is used only this far.
const MAX_RING_SECTORS: u64 = 32 * 1024;

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Reads the state partition (`first_lba`, `sectors` of `disk`) and recovers its
/// journal; returns its records, oldest first. `serve` runs while the reads wait.
pub fn open(
    disk: usize,
    first_lba: u64,
    sectors: u64,
    serve: &mut dyn FnMut(),
) -> Result<Vec<Record>, DiskError> {
    let sectors = sectors.min(MAX_RING_SECTORS);
    // At most 16 MiB: no overflow.
    let mut ring = vec![0u8; sectors as usize * 512];
    block::with_sectors(
        disk,
        first_lba,
        sectors,
        false,
        |offset, chunk| {
            let at = (offset - first_lba * 512) as usize;
            if let Some(dst) = ring.get_mut(at..at + chunk.len()) {
                dst.copy_from_slice(chunk);
            }
        },
        serve,
    )?;
    let (journal, records) = plinth_journal::recover(&ring);
    *STATE.lock() = Some(State {
        disk,
        first_lba,
        journal,
        pending: None,
        warned: false,
    });
    Ok(records)
}

/// Writes nothing more this boot: the journal holds what this runtime cannot read (a
/// newer version's), and writing would bury it.
pub fn close() {
    *STATE.lock() = None;
}

/// Appends a record: its sectors are queued, then a flush, in that order (the block
/// layer's flush is a barrier), and neither is waited for here: the record is on the
/// disk once both have completed without error. `None` without a state partition, or if
/// the record cannot be queued (logged once).
pub fn append(kind: Kind, payload: &[u8]) -> Option<(Ticket, Ticket)> {
    queue(STATE.lock().as_mut()?, kind, payload)
}

/// [`append`]'s work, with the state in hand.
fn queue(s: &mut State, kind: Kind, payload: &[u8]) -> Option<(Ticket, Ticket)> {
    let queued = s
        .journal
        .append(kind, payload)
        .map_err(|e| alloc::format!("{e:?}"))
        .and_then(|(at, bytes)| {
            let w = block::write(s.disk, s.first_lba + at, bytes);
            let f = block::flush(s.disk);
            match (w, f) {
                (Ok(w), Ok(f)) => Ok((w, f)),
                (w, f) => {
                    let e = w
                        .as_ref()
                        .err()
                        .or(f.as_ref().err())
                        .map(|e| alloc::format!("{e}"))
                        .unwrap_or_default();
                    w.into_iter().chain(f).for_each(block::abandon);
                    Err(e)
                }
            }
        });
    if let Err(e) = &queued {
        warn_once(s, format_args!("a record cannot be queued ({e})"));
    }
    queued.ok()
}

/// Appends a record as [`append`] does, and keeps its tickets to look at with the next
/// one: a write or flush that failed meanwhile is logged (once).
pub fn append_unwaited(kind: Kind, payload: &[u8]) {
    let mut guard = STATE.lock();
    let Some(s) = guard.as_mut() else {
        return;
    };
    if let Some((w, f)) = s.pending.take() {
        // Both looked at: a completion polled is taken, one still under way after a
        // record's interval is abandoned (nobody will wait for it).
        let mut failed = None;
        for t in [w, f] {
            match block::poll(&t) {
                Some(Err(e)) => failed = failed.or(Some(e)),
                Some(Ok(_)) => {}
                None => block::abandon(t),
            }
        }
        if let Some(e) = failed {
            warn_once(s, format_args!("a record did not reach the disk ({e})"));
        }
    }
    s.pending = queue(s, kind, payload);
}

fn warn_once(s: &mut State, what: core::fmt::Arguments) {
    if !s.warned {
        s.warned = true;
        log::warn!("state: {what}; what is kept on the disk may be behind (said once)");
    }
}
