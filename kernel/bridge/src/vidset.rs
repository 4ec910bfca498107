//! [`VidSet`]: which tenant VLANs a trunk carries.

use core::fmt;

use crate::MAX_VID;

/// A set of tenant VLAN IDs, `1..=`[`MAX_VID`] (IEEE 802.1Q: VID 0 means "no VLAN, priority
/// only" and 4095 is reserved), as 4096 bits: membership is one bit test on the frame
/// path, and a trunk that carries every VLAN costs 512 bytes, not a list.
///
/// VID 0 and 4095 and up are never members: [`insert`](Self::insert) refuses them, so a
/// trunk's native VLAN can only be its `native` flag.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VidSet([u64; 64]);

impl VidSet {
    /// The empty set.
    pub const fn new() -> VidSet {
        VidSet([0; 64])
    }

    /// Every tenant VID, `1..=4094`.
    pub fn all() -> VidSet {
        (1..=MAX_VID).collect()
    }

    /// Adds `vid`; false if it was already there or is not a tenant VID (0, 4095 and up).
    pub fn insert(&mut self, vid: u16) -> bool {
        if vid == 0 || vid > MAX_VID {
            return false;
        }
        let (word, bit) = Self::at(vid);
        let had = self.0[word] & bit != 0;
        self.0[word] |= bit;
        !had
    }

    /// Removes `vid`; false if it was not there.
    pub fn remove(&mut self, vid: u16) -> bool {
        if !self.contains(vid) {
            return false;
        }
        let (word, bit) = Self::at(vid);
        self.0[word] &= !bit;
        true
    }

    /// Whether `vid` is in the set (never for 0 or 4095 and up).
    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        match self.0.get(usize::from(vid >> 6)) {
            Some(word) => word & (1 << (vid & 63)) != 0,
            None => false,
        }
    }

    /// How many VIDs are in the set.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The VIDs in increasing order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            words: &self.0,
            word: 0,
            bits: self.0[0],
        }
    }

    /// The word index and bit of `vid` (< 4096).
    fn at(vid: u16) -> (usize, u64) {
        (usize::from(vid >> 6), 1 << (vid & 63))
    }
}

impl Default for VidSet {
    fn default() -> VidSet {
        VidSet::new()
    }
}

impl FromIterator<u16> for VidSet {
    /// The tenant VIDs among `iter` (0 and 4095 and up are left out).
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> VidSet {
        let mut set = VidSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<u16> for VidSet {
    fn extend<I: IntoIterator<Item = u16>>(&mut self, iter: I) {
        for vid in iter {
            self.insert(vid);
        }
    }
}

impl<'a> IntoIterator for &'a VidSet {
    type Item = u16;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Ranges, the way switch configurations write VLAN lists: `{1-3, 10, 4000-4094}`.
impl fmt::Debug for VidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let mut vids = self.iter().peekable();
        let mut first = true;
        while let Some(start) = vids.next() {
            let mut end = start;
            while vids.peek() == Some(&(end + 1)) {
                end += 1;
                vids.next();
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        f.write_str("}")
    }
}

/// The VIDs of a [`VidSet`] in increasing order.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    words: &'a [u64; 64],
    /// Index of the word `bits` came from.
    word: usize,
    /// Bits of that word not yet returned.
    bits: u64,
}

impl Iterator for Iter<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        while self.bits == 0 {
            self.word += 1;
            self.bits = *self.words.get(self.word)?;
        }
        let bit = self.bits.trailing_zeros();
        self.bits &= self.bits - 1;
        // word < 64 and bit < 64: below 4096.
        Some((self.word as u16) << 6 | bit as u16)
    }
}
