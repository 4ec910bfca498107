//! The MAC table: (VLAN, MAC) → port, and for learned entries their age order per VLAN.
//!
//! Hand-written rather than a crate, for three things no map in `alloc` gives and
//! `hashbrown` (not one of the workspace's chosen crates) would give only in part:
//! - **Speed on the frame path.** Every frame does two lookups (source, destination).
//!   A `BTreeMap` of 8192 keys walks about a dozen nodes per lookup; here a lookup is one
//!   multiply-xorshift hash and, at most half full, one or two probes of an array of
//!   16-byte slots holding the keys inline.
//! - **Oldest entry of one VLAN in O(1).** Eviction must take the oldest learned entry of
//!   the *same* VLAN (so one tenant cannot flush another's entries), and aging pops
//!   expired entries from the old end. Each VLAN threads its learned entries into a
//!   doubly linked list, oldest first; a refresh moves an entry to the young end.
//! - **Stable entry ids.** Entries live in a slab (`entries`, with a free list) and the
//!   hash index stores their ids, so deleting from the index (linear probing with
//!   backward-shift deletion: no tombstones, so probe lengths do not grow with churn)
//!   moves only index slots, never the list links.
//!
//! Memory grows with the high-water mark of entries (about 48 bytes each, slab and index
//! together) and is never given back; the table allocates only when it grows past it.
//!
//! Hashing: a tenant chooses its source MACs, so the hash is keyed with
//! [`Config::hash_key`](crate::Config::hash_key), which the runtime should draw at random
//! at boot, so that colliding MACs cannot be picked offline. The per-VLAN bound limits the
//! damage of collisions in any case: the index is never more than half full.

use alloc::vec::Vec;

use crate::{Mac, PortId};

/// "No entry": an empty index slot, the end of a list.
pub(crate) const NONE: u32 = u32::MAX;

/// Slots in a new index (grows by doubling).
const FIRST_SLOTS: usize = 64;

/// The table key of `(vid, mac)`: the VID above the 48 MAC bits.
#[inline]
pub(crate) fn key(vid: u16, mac: &Mac) -> u64 {
    u64::from(vid) << 48
        | u64::from(mac[0]) << 40
        | u64::from(mac[1]) << 32
        | u64::from(mac[2]) << 24
        | u64::from(mac[3]) << 16
        | u64::from(mac[4]) << 8
        | u64::from(mac[5])
}

/// The VLAN of a key.
pub(crate) fn key_vid(key: u64) -> u16 {
    (key >> 48) as u16
}

/// The MAC of a key.
pub(crate) fn key_mac(key: u64) -> Mac {
    let b = key.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// On the free list.
    Free,
    /// A port's configured address: never learned over, never aged.
    Static,
    /// Learned from a frame's source: moves, ages, may be evicted.
    Dynamic,
}

/// One entry of the slab.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub key: u64,
    pub port: PortId,
    pub kind: Kind,
    /// When a frame from this address was last seen (learned entries), ms.
    pub last_seen_ms: u64,
    /// Learned entries: the older neighbour in the VLAN's list.
    prev: u32,
    /// Learned entries: the younger neighbour; free entries: the next free one.
    next: u32,
}

/// A VLAN's learned entries, oldest first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AgeList {
    head: u32,
    tail: u32,
    len: usize,
}

impl AgeList {
    pub const fn new() -> AgeList {
        AgeList {
            head: NONE,
            tail: NONE,
            len: 0,
        }
    }

    /// How many learned entries the VLAN has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The oldest one.
    pub fn oldest(&self) -> Option<u32> {
        (self.head != NONE).then_some(self.head)
    }
}

/// An index slot: the key inline (a probe compares it without touching the slab) and
/// the entry id, [`NONE`] when empty.
#[derive(Clone, Copy, Debug)]
struct Slot {
    key: u64,
    entry: u32,
}

const EMPTY: Slot = Slot {
    key: 0,
    entry: NONE,
};

/// The table (see the module documentation).
#[derive(Clone, Debug)]
pub(crate) struct MacTable {
    entries: Vec<Entry>,
    /// Head of the free list through `Entry::next`.
    free: u32,
    /// Open-addressed index, a power of two long, at most half full.
    slots: Vec<Slot>,
    /// Live entries.
    len: usize,
    hash_key: u64,
}

impl MacTable {
    pub fn new(hash_key: u64) -> MacTable {
        MacTable {
            entries: Vec::new(),
            free: NONE,
            slots: Vec::new(),
            len: 0,
            hash_key,
        }
    }

    /// Live entries.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The home slot of `key`: murmur3's 64-bit finaliser over the key mixed with the
    /// secret, so every key bit reaches the low bits the mask keeps.
    #[inline]
    fn home(&self, key: u64) -> usize {
        let mut h = key ^ self.hash_key;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        // Truncation on 32-bit targets is fine: only the masked low bits are used.
        h as usize & (self.slots.len() - 1)
    }

    /// The index slot holding `key`.
    #[inline]
    fn slot_of(&self, key: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let s = self.slots[i];
            if s.entry == NONE {
                return None;
            }
            if s.key == key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The entry of `key`.
    #[inline]
    pub fn find(&self, key: u64) -> Option<u32> {
        self.slot_of(key).map(|i| self.slots[i].entry)
    }

    pub fn entry(&self, id: u32) -> &Entry {
        &self.entries[id as usize]
    }

    /// Every live entry, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind != Kind::Free)
            // The slab never holds more than u32::MAX - 1 entries (see `insert`).
            .map(|(i, e)| (i as u32, e))
    }

    /// Adds `key`, which must not be in the table; learned entries join `ages` as the
    /// youngest. Allocates only past the high-water mark.
    pub fn insert(
        &mut self,
        key: u64,
        port: PortId,
        kind: Kind,
        now_ms: u64,
        ages: Option<&mut AgeList>,
    ) -> u32 {
        debug_assert!(self.find(key).is_none());
        debug_assert!(kind != Kind::Free);
        debug_assert_eq!(kind == Kind::Dynamic, ages.is_some());
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow_index();
        }
        let entry = Entry {
            key,
            port,
            kind,
            last_seen_ms: now_ms,
            prev: NONE,
            next: NONE,
        };
        let id = if self.free != NONE {
            let id = self.free;
            self.free = self.entries[id as usize].next;
            self.entries[id as usize] = entry;
            id
        } else {
            // The bridge bounds learned entries to its max_macs and static ones to ports
            // times VLANs (under 2^32 for any real configuration).
            let id = u32::try_from(self.entries.len()).expect("MAC table of 2^32 entries");
            assert!(id != NONE, "MAC table of 2^32 entries");
            self.entries.push(entry);
            id
        };
        self.len += 1;
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        while self.slots[i].entry != NONE {
            i = (i + 1) & mask;
        }
        self.slots[i] = Slot { key, entry: id };
        if let Some(ages) = ages {
            self.link_youngest(id, ages);
        }
        id
    }

    /// Removes entry `id`; learned entries leave `ages`, their VLAN's list.
    pub fn remove(&mut self, id: u32, ages: Option<&mut AgeList>) {
        let e = self.entries[id as usize];
        debug_assert!(e.kind != Kind::Free);
        debug_assert_eq!(e.kind == Kind::Dynamic, ages.is_some());
        if let Some(ages) = ages {
            self.unlink(id, ages);
        }
        if let Some(slot) = self.slot_of(e.key) {
            self.delete_slot(slot);
        } else {
            debug_assert!(false, "entry {id} not in the index");
        }
        self.entries[id as usize] = Entry {
            key: 0,
            port: PortId(0),
            kind: Kind::Free,
            last_seen_ms: 0,
            prev: NONE,
            next: self.free,
        };
        self.free = id;
        self.len -= 1;
    }

    /// A frame from learned entry `id` was seen on `port` at `now_ms`: it moves there
    /// and becomes the youngest of its VLAN.
    pub fn refresh(&mut self, id: u32, port: PortId, now_ms: u64, ages: &mut AgeList) {
        debug_assert_eq!(self.entries[id as usize].kind, Kind::Dynamic);
        let e = &mut self.entries[id as usize];
        e.port = port;
        e.last_seen_ms = now_ms;
        if ages.tail != id {
            self.unlink(id, ages);
            self.link_youngest(id, ages);
        }
    }

    fn link_youngest(&mut self, id: u32, ages: &mut AgeList) {
        let old_tail = ages.tail;
        {
            let e = &mut self.entries[id as usize];
            e.prev = old_tail;
            e.next = NONE;
        }
        if old_tail == NONE {
            ages.head = id;
        } else {
            self.entries[old_tail as usize].next = id;
        }
        ages.tail = id;
        ages.len += 1;
    }

    fn unlink(&mut self, id: u32, ages: &mut AgeList) {
        let Entry { prev, next, .. } = self.entries[id as usize];
        if prev == NONE {
            ages.head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NONE {
            ages.tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        ages.len -= 1;
    }

    /// Empties index slot `hole` and shifts later members of its probe run back into
    /// it, so that every key stays reachable from its home without tombstones (Knuth,
    /// TAOCP vol. 3, 6.4, Algorithm R).
    fn delete_slot(&mut self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        self.slots[hole] = EMPTY;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s.entry == NONE {
                return;
            }
            let home = self.home(s.key);
            // The slot at j may move back to the hole unless its home lies cyclically
            // in (hole, j]: then the hole is before its home and it must stay.
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = s;
                self.slots[j] = EMPTY;
                hole = j;
            }
        }
    }

    /// Doubles the index (or makes the first one) and re-inserts every key.
    fn grow_index(&mut self) {
        let size = (self.slots.len() * 2).max(FIRST_SLOTS);
        let old = core::mem::replace(&mut self.slots, alloc::vec![EMPTY; size]);
        let mask = size - 1;
        for s in old.into_iter().filter(|s| s.entry != NONE) {
            let mut i = self.home(s.key);
            while self.slots[i].entry != NONE {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }

    /// Checks the structure: every live entry reachable through the index, nothing else
    /// in it, the lists consistent with `lists` (each VLAN's, with its VID). For tests
    /// and the fuzz driver.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn check(&self, lists: &[(u16, AgeList)]) {
        let live = self.iter().count();
        assert_eq!(live, self.len);
        let in_index = self.slots.iter().filter(|s| s.entry != NONE).count();
        assert_eq!(in_index, self.len);
        assert!(self.len * 2 <= self.slots.len() || self.slots.is_empty());
        for (id, e) in self.iter() {
            assert_eq!(
                self.find(e.key),
                Some(id),
                "entry {id} not found by its key"
            );
        }
        let mut listed = 0;
        for (vid, ages) in lists {
            let (mut prev, mut at, mut n) = (NONE, ages.head, 0);
            while at != NONE {
                let e = &self.entries[at as usize];
                assert_eq!(e.kind, Kind::Dynamic);
                assert_eq!(key_vid(e.key), *vid);
                assert_eq!(e.prev, prev);
                prev = at;
                at = e.next;
                n += 1;
                assert!(n <= self.entries.len(), "a cycle in VLAN {vid}'s list");
            }
            assert_eq!(ages.tail, prev);
            assert_eq!(ages.len, n);
            listed += n;
        }
        let dynamic = self.iter().filter(|(_, e)| e.kind == Kind::Dynamic).count();
        assert_eq!(listed, dynamic, "learned entries outside their VLAN's list");
    }
}
