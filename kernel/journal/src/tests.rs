//! The journal against rings a runtime would leave: blank, written, wrapped, torn.

extern crate std;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::usage::{self, DecodeError, Entry, Usage};
use super::*;

/// A ring of `sectors` with `journal`'s appends of `payloads` written in.
fn write(ring: &mut [u8], journal: &mut Journal, payloads: &[&[u8]]) -> Vec<u64> {
    payloads
        .iter()
        .map(|p| {
            let (at, bytes) = journal.append(Kind::Usage, p).unwrap();
            let start = at as usize * SECTOR;
            ring[start..start + bytes.len()].copy_from_slice(&bytes);
            at
        })
        .collect()
}

fn payloads(r: &[Record]) -> Vec<Vec<u8>> {
    r.iter().map(|r| r.payload.clone()).collect()
}

#[test]
fn a_blank_ring_is_an_empty_journal() {
    let ring = vec![0u8; 64 * SECTOR];
    let (j, records) = recover(&ring);
    assert!(records.is_empty());
    assert_eq!(j, Journal::new(64));
    assert_eq!(j.next_seq(), 1);
}

#[test]
fn records_come_back_in_order_and_the_journal_goes_on_after_them() {
    let mut ring = vec![0u8; 64 * SECTOR];
    let mut j = Journal::new(64);
    let big = vec![7u8; 1000];
    let at = write(&mut ring, &mut j, &[b"one", &big, b""]);
    // 3 bytes: one sector; 1000: two (24 + 1000 > 512); empty: one.
    assert_eq!(at, [0, 1, 3]);
    let (back, records) = recover(&ring);
    assert_eq!(back, j);
    assert_eq!(payloads(&records), [b"one".to_vec(), big, Vec::new()]);
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(records.iter().all(|r| r.kind == Kind::Usage));
}

#[test]
fn a_torn_record_is_not_one_and_the_ones_before_it_stand() {
    let mut ring = vec![0u8; 64 * SECTOR];
    let mut j = Journal::new(64);
    let at = write(&mut ring, &mut j, &[b"kept", &[9u8; 700], b"also kept?"]);
    // A power cut during the second record's second sector.
    let torn = (at[1] as usize + 1) * SECTOR;
    ring[torn..torn + SECTOR].fill(0);
    let (back, records) = recover(&ring);
    // The third record's number follows a record that is gone: the journal is the run
    // that ends at the newest, so it is the third alone.
    assert_eq!(payloads(&records), [b"also kept?".to_vec()]);
    assert_eq!(back.next_seq(), 4);
    // Torn last: the ones before it stand.
    let mut ring = vec![0u8; 64 * SECTOR];
    let mut j = Journal::new(64);
    let at = write(&mut ring, &mut j, &[b"kept", &[9u8; 700]]);
    ring[at[1] as usize * SECTOR + 30] ^= 1;
    let (back, records) = recover(&ring);
    assert_eq!(payloads(&records), [b"kept".to_vec()]);
    assert_eq!(back.next_seq(), 2);
}

#[test]
fn the_ring_comes_round_over_its_oldest_records() {
    let mut ring = vec![0u8; 8 * SECTOR];
    let mut j = Journal::new(8);
    let p = [5u8; 600]; // two sectors each
    let all: Vec<&[u8]> = (0..7).map(|_| &p[..]).collect();
    let at = write(&mut ring, &mut j, &all);
    assert_eq!(at, [0, 2, 4, 6, 0, 2, 4]);
    let (back, records) = recover(&ring);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [4, 5, 6, 7]
    );
    assert_eq!(back, j);
    // A record that would run past the end starts again at sector 0.
    let mut ring = vec![0u8; 5 * SECTOR];
    let mut j = Journal::new(5);
    let at = write(&mut ring, &mut j, &[&p, &p, &p]);
    assert_eq!(at, [0, 2, 0]);
    let (_, records) = recover(&ring);
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
}

#[test]
fn what_cannot_be_written_is_refused() {
    let mut j = Journal::new(2);
    assert_eq!(
        j.append(Kind::Usage, &vec![0; MAX_PAYLOAD + 1]),
        Err(AppendError::TooLarge)
    );
    assert_eq!(
        j.append(Kind::Usage, &[0; 2 * SECTOR]),
        Err(AppendError::RingTooSmall)
    );
    assert_eq!(j.next_seq(), 1);
}

#[test]
fn a_record_past_the_last_sequence_number_is_not_one() {
    let mut ring = vec![0u8; 8 * SECTOR];
    let mut j = Journal::new(8);
    write(&mut ring, &mut j, &[b"real"]);
    // A forged header claiming the last number, with a right checksum.
    let mut forged = Journal {
        sectors: 8,
        next_at: 4,
        next_seq: MAX_SEQ,
    };
    assert_eq!(
        forged.append(Kind::Usage, b"x"),
        Err(AppendError::Exhausted)
    );
    let (at, mut bytes) = Journal {
        sectors: 8,
        next_at: 4,
        next_seq: MAX_SEQ - 1,
    }
    .append(Kind::Usage, b"x")
    .unwrap();
    bytes[8..16].copy_from_slice(&MAX_SEQ.to_le_bytes());
    let crc = checksum(&bytes[..HEADER], b"x");
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    ring[at as usize * SECTOR..(at as usize + 1) * SECTOR].copy_from_slice(&bytes);
    let (back, records) = recover(&ring);
    assert_eq!(payloads(&records), [b"real".to_vec()]);
    assert_eq!(back.next_seq(), 2);
}

#[test]
fn garbage_is_no_record() {
    let mut rng = plinth_testrng::Rng::new(7);
    for _ in 0..200 {
        let n = rng.below(20) * SECTOR + rng.below(SECTOR);
        let mut ring: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
        // Headers with the magic but nothing else right.
        for s in 0..n / SECTOR {
            if rng.chance(30) {
                ring[s * SECTOR..s * SECTOR + 4].copy_from_slice(&MAGIC);
            }
        }
        let (_, records) = recover(&ring);
        assert!(records.is_empty());
    }
}

fn entry(partition: &str, tenant: Option<&str>, terminated: bool, k: u64) -> Entry {
    Entry {
        partition: partition.into(),
        tenant: tenant.map(String::from),
        terminated,
        usage: Usage {
            cpu_ns: k,
            memory_byte_ns: u128::from(k) << 70,
            disk_reads: k + 1,
            disk_writes: k + 2,
            disk_read_bytes: k + 3,
            disk_written_bytes: k + 4,
            net_rx_bytes: k + 5,
            net_tx_bytes: u64::MAX - k,
        },
    }
}

#[test]
fn usage_records_round_trip_and_bad_ones_say_why() {
    let entries = vec![
        entry("metered", Some("acme"), false, 10),
        entry("gone", None, true, 20),
        entry("ünïcode", Some("t"), false, 30),
    ];
    let bytes = usage::encode(&entries);
    assert_eq!(usage::decode(&bytes), Ok(entries.clone()));
    assert_eq!(usage::decode(&usage::encode(&[])), Ok(Vec::new()));
    for cut in 0..bytes.len() {
        assert_eq!(
            usage::decode(&bytes[..cut]),
            Err(DecodeError::Truncated),
            "cut at {cut}"
        );
    }
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert_eq!(usage::decode(&v2), Err(DecodeError::Version(2)));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(usage::decode(&trailing), Err(DecodeError::Trailing));
    // The first entry's state byte: after the version, the count, "metered" and "acme".
    let mut state = bytes.clone();
    state[5 + 8 + 5] = 7;
    assert_eq!(usage::decode(&state), Err(DecodeError::BadState(7)));
    let mut name = bytes;
    name[6] = 0xff;
    assert_eq!(usage::decode(&name), Err(DecodeError::BadName));
    // A long name is cut at a character, not mid-way through one.
    let long = "é".repeat(200);
    let back = usage::decode(&usage::encode(&[entry(&long, None, false, 1)])).unwrap();
    assert_eq!(back[0].partition, "é".repeat(127));
}

#[test]
fn a_usage_record_survives_the_journal() {
    let mut ring = vec![0u8; 32 * SECTOR];
    let mut j = Journal::new(32);
    let entries = vec![entry("metered", Some("acme"), false, 1000)];
    write(&mut ring, &mut j, &[&usage::encode(&entries)]);
    let (_, records) = recover(&ring);
    assert_eq!(usage::decode(&records[0].payload), Ok(entries));
}
