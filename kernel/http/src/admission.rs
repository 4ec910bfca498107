//! Who gives way when a server with a fixed table of connections is full: a cap on the
//! connections one peer may hold, and the idlest connection evicted so that a new client
//! — the operator among them — always gets in.
//!
//! Deadlines alone ([`crate::Limits`]) do not keep a management plane reachable: twenty
//! clients that trickle their heads a byte at a time each hold a slot until their header
//! timeout, and a table of a few slots is then full for everyone else. So the server
//! keeps a few slots listening at all times ([`Policy::spare`]); when a new connection
//! takes one and too few are left, or a peer holds more than [`Policy::per_peer`], it
//! asks [`victim`] which connection to drop and resets it.
//!
//! The ranking, most expendable first: a connection the server owes nothing to (no
//! request being answered, no output waiting) before a busy one; among those, one of the
//! peer holding the most connections; then the one that got nothing done for longest
//! (see [`Occupant::last_progress_ms`]: trickled head bytes are not progress); then the
//! oldest. A client that sent a whole request moments ago is the last to go, so an
//! operator's request is answered even while a flood churns through the rest — the
//! policy of nginx's `limit_conn` with Apache's `mod_reqtimeout` behind it, for a table
//! of sockets that cannot grow.
//!
//! Owns the decision only: no sockets, no clock. The caller says what each slot holds.

/// The table's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Connections one peer may hold at once; a peer over it loses its most expendable.
    pub per_peer: usize,
    /// Slots kept free (listening) for new clients; while fewer are free, the most
    /// expendable connection of all is dropped.
    pub spare: usize,
}

/// What the server knows of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occupant<P> {
    /// Who is on the other end (an address; compared for equality only).
    pub peer: P,
    /// When the connection was first seen, ms.
    pub opened_ms: u64,
    /// When the client last got something done — a complete request, response bytes
    /// taken, stream bytes moved — or `opened_ms` if never, ms.
    pub last_progress_ms: u64,
    /// Whether the server owes it something (a request being answered, output unsent, a
    /// running stream).
    pub busy: bool,
}

/// The slot whose connection should be dropped now, if any: first to bring a peer back
/// under [`Policy::per_peer`] (one of its own connections), then to bring the free slots
/// (`None`) back up to [`Policy::spare`]. Call again after dropping it (with that slot
/// `None`) until it returns `None`.
pub fn victim<P: PartialEq + Copy>(
    slots: &[Option<Occupant<P>>],
    policy: &Policy,
) -> Option<usize> {
    let held = |peer: P| slots.iter().flatten().filter(|o| o.peer == peer).count();
    let over_cap = slots
        .iter()
        .flatten()
        .map(|o| o.peer)
        .find(|&p| held(p) > policy.per_peer);
    if let Some(peer) = over_cap {
        return most_expendable(slots, |o| o.peer == peer, &held);
    }
    let free = slots.iter().filter(|s| s.is_none()).count();
    if free >= policy.spare {
        return None;
    }
    most_expendable(slots, |_| true, &held)
}

/// Among the occupied slots `eligible` accepts, the first to drop (see the module doc).
fn most_expendable<P: Copy>(
    slots: &[Option<Occupant<P>>],
    eligible: impl Fn(&Occupant<P>) -> bool,
    held: &impl Fn(P) -> usize,
) -> Option<usize> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().filter(|o| eligible(o)).map(|o| (i, o)))
        // Smallest key goes first: idle before busy, crowded peers before lone ones,
        // longest without progress, oldest.
        .min_by_key(|(_, o)| {
            (
                o.busy,
                usize::MAX - held(o.peer),
                o.last_progress_ms,
                o.opened_ms,
            )
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use plinth_testrng::Rng;

    use super::*;

    const POLICY: Policy = Policy {
        per_peer: 3,
        spare: 2,
    };

    fn occ(peer: u8, opened_ms: u64, last_progress_ms: u64, busy: bool) -> Option<Occupant<u8>> {
        Some(Occupant {
            peer,
            opened_ms,
            last_progress_ms,
            busy,
        })
    }

    #[test]
    fn a_table_with_enough_free_slots_and_no_crowded_peer_drops_nobody() {
        let slots = [occ(1, 0, 0, false), occ(2, 0, 0, false), None, None];
        assert_eq!(victim(&slots, &POLICY), None);
        assert_eq!(victim::<u8>(&[None, None], &POLICY), None);
        assert_eq!(
            victim::<u8>(
                &[],
                &Policy {
                    per_peer: 1,
                    spare: 0
                }
            ),
            None
        );
    }

    #[test]
    fn a_full_table_drops_the_connection_without_progress_for_longest() {
        // Peer 1 trickles a head since t=10 (no progress), peer 2 sent a request at 500,
        // peer 3 is idle keep-alive since 300.
        let slots = [
            occ(1, 10, 10, false),
            occ(2, 400, 500, false),
            occ(3, 100, 300, false),
            None,
        ];
        assert_eq!(victim(&slots, &POLICY), Some(0));
    }

    #[test]
    fn busy_connections_go_last() {
        let slots = [occ(1, 0, 0, true), occ(2, 5, 5, false), occ(3, 9, 9, true)];
        assert_eq!(victim(&slots, &POLICY), Some(1));
        // All busy: the idlest busy one still goes, so a new client gets in.
        let slots = [occ(1, 0, 7, true), occ(2, 5, 5, true), occ(3, 9, 9, true)];
        assert_eq!(victim(&slots, &POLICY), Some(1));
    }

    #[test]
    fn the_crowded_peer_loses_first_even_when_a_lone_client_is_idler() {
        // Peer 9 is one operator idle since 0; peer 1 holds three fresh slow connections.
        let slots = [
            occ(9, 0, 0, false),
            occ(1, 50, 50, false),
            occ(1, 60, 60, false),
            occ(1, 70, 70, false),
        ];
        assert_eq!(victim(&slots, &POLICY), Some(1));
    }

    #[test]
    fn a_peer_over_its_cap_loses_its_own_connection_even_with_free_slots() {
        let slots = [
            occ(2, 0, 0, false),
            occ(1, 10, 40, false),
            occ(1, 20, 20, false),
            occ(1, 30, 35, true),
            occ(1, 90, 90, false),
            None,
            None,
            None,
        ];
        // Peer 2 is idler, but peer 1 is over its cap of 3: its idlest non-busy goes.
        assert_eq!(victim(&slots, &POLICY), Some(2));
        let mut after = slots;
        after[2] = None;
        assert_eq!(victim(&after, &POLICY), None);
    }

    #[test]
    fn the_newest_client_with_a_fresh_request_is_kept_while_a_flood_is_trimmed() {
        // One peer (as behind NAT, or QEMU's user network): flood connections that sent
        // nothing, and the operator's that completed a request at t=1000.
        let mut slots = [
            occ(1, 100, 100, false),
            occ(1, 200, 200, false),
            occ(1, 300, 300, false),
            occ(1, 990, 1000, false),
            None,
        ];
        let policy = Policy {
            per_peer: 8,
            spare: 2,
        };
        let mut dropped = alloc::vec::Vec::new();
        while let Some(v) = victim(&slots, &policy) {
            dropped.push(v);
            slots[v] = None;
        }
        assert_eq!(dropped, [0]);
        assert!(slots[3].is_some(), "the operator's connection stays");
    }

    #[test]
    fn repeated_calls_converge_and_never_name_a_free_slot() {
        // Deterministic pseudo-random tables: every victim is occupied, and dropping
        // victims until none is named leaves the table within both rules.
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next_u64();
        for _ in 0..2000 {
            let n = (next() % 12) as usize;
            let policy = Policy {
                per_peer: 1 + (next() % 4) as usize,
                spare: (next() % 4) as usize,
            };
            let mut slots: [Option<Occupant<u8>>; 12] = [None; 12];
            for s in slots.iter_mut().take(n) {
                if next() % 4 != 0 {
                    let opened = next() % 1000;
                    *s = occ(
                        (next() % 3) as u8,
                        opened,
                        opened + next() % 100,
                        next() % 3 == 0,
                    );
                }
            }
            let mut steps = 0;
            while let Some(v) = victim(&slots, &policy) {
                assert!(slots[v].is_some(), "victim {v} is a free slot");
                slots[v] = None;
                steps += 1;
                assert!(steps <= n, "no convergence");
            }
            let free = slots.iter().filter(|s| s.is_none()).count();
            assert!(free >= policy.spare.min(slots.len()));
            for o in slots.iter().flatten() {
                let held = slots.iter().flatten().filter(|p| p.peer == o.peer).count();
                assert!(held <= policy.per_peer);
            }
        }
    }
}
