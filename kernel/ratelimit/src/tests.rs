//! Host tests: time is simulated; a sender takes as fast as it is allowed, sleeping the
//! hinted wait or polling on a tick, and the totals are compared with rate * time + burst.

extern crate std;

use plinth_testrng::Rng;

use super::*;

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const FRAME: u64 = 1514;

/// Sends `item`-sized requests from time 0 until `until_ns`, each as soon as the bucket
/// allows (sleeping exactly the hinted wait); the bytes sent.
fn send_greedily(bucket: &mut TokenBucket, item: u64, until_ns: u64) -> u64 {
    let (mut now, mut sent) = (0, 0);
    while now <= until_ns {
        match bucket.try_take(item, now) {
            Ok(()) => sent += item,
            Err(wait) => {
                assert!(wait > 0);
                now = now.saturating_add(wait);
            }
        }
    }
    sent
}

/// Asserts `got` is within `percent`% of `want`.
fn assert_near(got: u64, want: u64, percent: u64) {
    let diff = got.abs_diff(want);
    assert!(
        diff * 100 <= want * percent,
        "{got} is not within {percent}% of {want}"
    );
}

#[test]
fn ten_seconds_of_frames_at_one_mib_per_second() {
    let mut b = TokenBucket::new(MIB, 64 * KIB, 0);
    let sent = send_greedily(&mut b, FRAME, 10 * S);
    std::println!(
        "sent {sent} bytes in 10 s, expected {}",
        10 * MIB + 64 * KIB
    );
    assert_near(sent, 10 * MIB + 64 * KIB, 1);
    // Never more than the burst plus what flowed in (the last frame may be in debt by
    // less than one frame).
    assert!(sent <= 10 * MIB + 64 * KIB + FRAME);
}

#[test]
fn polling_on_a_tick_gives_the_same_rate() {
    // The kernel polls on its timer instead of sleeping the exact hint: at each 1 ms
    // tick it sends what it may. Refills must not lose the time between ticks.
    let mut b = TokenBucket::new(MIB, 64 * KIB, 0);
    let mut sent = 0;
    for tick in 0..=10_000 {
        while b.try_take(FRAME, tick * MS).is_ok() {
            sent += FRAME;
        }
    }
    assert_near(sent, 10 * MIB + 64 * KIB, 1);
}

#[test]
fn random_ticks_lose_and_invent_nothing() {
    // Irregular polls and request sizes: over 10 s the total is the burst plus what
    // flowed in, within one request, whatever the slicing.
    let mut rng = Rng::new(16);
    let mut b = TokenBucket::new(3 * MIB, 16 * KIB, 0);
    let (mut now, mut sent) = (0, 0);
    while now < 10 * S {
        now += rng.range(1, 5 * MS);
        loop {
            let n = rng.range(60, FRAME);
            if b.try_take(n, now).is_err() {
                break;
            }
            sent += n;
        }
    }
    let flowed = 3 * MIB * now / S + 16 * KIB;
    assert!(sent <= flowed, "{sent} > {flowed}");
    assert!(
        sent + FRAME + 3 * MIB * 5 * MS / S >= flowed,
        "{sent} << {flowed}"
    );
    // After a long idle period the bucket is full, never more.
    assert_eq!(b.tokens(now + S), 16 * KIB);
}

#[test]
fn frames_larger_than_the_burst_still_go_and_keep_the_rate() {
    // A 1 KiB burst: a 1514-byte frame can never find 1514 tokens, so it goes when the
    // bucket is full and leaves it in debt.
    let mut b = TokenBucket::new(100 * KIB, KIB, 0);
    assert_eq!(b.try_take(FRAME, 0), Ok(()));
    assert_eq!(b.tokens(0), 0);
    // The debt (490 tokens) and a full bucket (1024) must flow in before the next one.
    let wait = b.try_take(FRAME, 0).unwrap_err();
    assert_eq!(
        wait,
        ((FRAME as u128) * 1_000_000_000).div_ceil(100 * 1024) as u64
    );
    assert_eq!(b.try_take(FRAME, wait), Ok(()));

    let mut b = TokenBucket::new(100 * KIB, KIB, 0);
    let sent = send_greedily(&mut b, FRAME, 10 * S);
    assert_near(sent, 1000 * KIB + KIB, 1);
}

#[test]
fn waiting_the_hint_is_exactly_enough() {
    let mut rng = Rng::new(0xb0c4e7);
    let mut checked = 0;
    for _ in 0..20_000 {
        let rate = match rng.below(4) {
            0 => rng.range(1, 10),
            1 => rng.range(1, 1_000_000),
            2 => rng.range(1, 1 << 40),
            _ => rng.next_u64().max(1),
        };
        let burst = match rng.below(3) {
            0 => rng.range(0, 10),
            1 => rng.range(0, 100_000),
            _ => rng.next_u64(),
        };
        let start = rng.below_u64(1 << 62);
        let mut b = TokenBucket::new(rate, burst, start);
        // Drain part of it (maybe into debt), then ask for more.
        let _ = b.try_take(rng.range(0, burst.saturating_add(10)), start);
        let now = start + rng.below_u64(1000);
        let n = rng.range(1, burst.saturating_add(10).max(1));
        let mut probe = b.clone();
        match probe.try_take(n, now) {
            Ok(()) => continue,
            Err(wait) => {
                assert!(wait > 0);
                // A hint past the end of the clock cannot be waited out.
                let Some(at) = now.checked_add(wait) else {
                    continue;
                };
                let mut early = b.clone();
                assert!(
                    early.try_take(n, at - 1).is_err(),
                    "granted before the hint: rate {rate} burst {burst} n {n}"
                );
                assert_eq!(
                    b.try_take(n, at),
                    Ok(()),
                    "not granted at the hint: rate {rate} burst {burst} n {n} wait {wait}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 5_000, "only {checked} hints checked");
}

#[test]
fn live_changes_take_effect_at_once() {
    let mut b = TokenBucket::new(KIB, 10 * KIB, 0);
    assert_eq!(b.try_take(10 * KIB, 0), Ok(()));
    // At 1 KiB/s, 1 KiB is a second away.
    assert_eq!(b.try_take(KIB, 0), Err(S));
    // Raised to 1 MiB/s: the next request sees the new rate.
    b.set(MIB, 10 * KIB, 0);
    assert_eq!(b.try_take(KIB, 0), Err(S.div_ceil(1024)));
    assert_eq!(b.try_take(KIB, S.div_ceil(1024)), Ok(()));

    // Tokens are kept across a change, cut to a smaller burst.
    let mut b = TokenBucket::new(KIB, 10 * KIB, 0);
    assert_eq!(b.try_take(KIB, 0), Ok(()));
    b.set(KIB, 64 * KIB, 0);
    assert_eq!(b.tokens(0), 9 * KIB);
    b.set(KIB, 2 * KIB, 0);
    assert_eq!(b.tokens(0), 2 * KIB);
    assert_eq!((b.rate_per_s(), b.burst()), (KIB, 2 * KIB));

    // Time before the change refills at the old rate, time after at the new one.
    let mut b = TokenBucket::new(1000, 1_000_000, 0);
    assert_eq!(b.try_take(1_000_000, 0), Ok(()));
    b.set(10, 1_000_000, S);
    assert_eq!(b.tokens(S), 1000);
    assert_eq!(b.tokens(2 * S), 1010);
}

#[test]
fn no_overflow_at_the_limits() {
    let max = u64::MAX;
    let mut b = TokenBucket::new(max, max, 0);
    assert_eq!(b.tokens(max), max);
    assert_eq!(b.try_take(max, 0), Ok(()));
    assert_eq!(b.try_take(max, 0), Err(1_000_000_000));
    // A whole u64 of time at a whole u64 rate.
    assert_eq!(b.try_take(max, max), Ok(()));
    assert_eq!(b.tokens(max), 0);

    // The largest debt: u64::MAX tokens from a burst of 1 at 1 token per second.
    let mut b = TokenBucket::new(1, 1, 0);
    assert_eq!(b.try_take(max, 0), Ok(()));
    assert_eq!(b.try_take(1, 0), Err(max));
    assert_eq!(b.tokens(max), 0);

    // Times near the end of u64.
    let mut b = TokenBucket::new(max, 3, max - 10);
    assert_eq!(b.try_take(3, max - 10), Ok(()));
    assert_eq!(b.try_take(1, max - 10), Err(1));
    assert_eq!(b.try_take(3, max), Ok(()));
    assert_eq!(b.tokens(max), 0);

    let mut l = Limiter::new(Some((max, max)), Some((max, max)), max);
    assert_eq!(l.try_take(max, max), Ok(()));
    l.set_bytes(Some((1, max)), max);
    assert!(l.try_take(max, max).is_err());
}

#[test]
fn a_bucket_that_never_refills() {
    let mut b = TokenBucket::new(0, 3, 0);
    assert_eq!(b.try_take(2, 0), Ok(()));
    assert_eq!(b.try_take(2, 5 * S), Err(u64::MAX));
    assert_eq!(b.try_take(1, 5 * S), Ok(()));
    assert_eq!(b.try_take(1, u64::MAX), Err(u64::MAX));
    // Nothing is always available.
    assert_eq!(b.try_take(0, 0), Ok(()));
}

#[test]
fn a_zero_burst_paces_every_request() {
    // Burst 0: each request goes into debt and the next waits for it to be paid.
    let mut b = TokenBucket::new(1000, 0, 0);
    assert_eq!(b.try_take(10, 0), Ok(()));
    assert_eq!(b.try_take(10, 0), Err(10 * MS));
    assert_eq!(b.try_take(10, 10 * MS), Ok(()));
    assert_eq!(b.tokens(S), 0);
}

#[test]
fn a_clock_going_back_counts_no_time_twice() {
    let mut b = TokenBucket::new(1000, 1000, 0);
    assert_eq!(b.try_take(1000, S), Ok(()));
    // Back to 0.5 s: nothing flows in, and nothing is lost either.
    assert!(b.try_take(1, S / 2).is_err());
    assert_eq!(b.tokens(S / 2), 0);
    // From 1 s on, time counts again, once.
    assert_eq!(b.tokens(S + S / 2), 500);
}

#[test]
fn the_limiter_takes_from_both_or_neither() {
    let mut l = Limiter::new(Some((MIB, 10 * KIB)), Some((10, 2)), 0);
    assert!(l.is_limited());
    assert_eq!(l.try_take(FRAME, 0), Ok(()));
    assert_eq!(l.try_take(FRAME, 0), Ok(()));
    // Ops are out: the bytes must stay untouched.
    let bytes_before = l.bytes.as_ref().unwrap().tokens(0);
    assert_eq!(l.try_take(FRAME, 0), Err(S / 10));
    assert_eq!(l.bytes.as_ref().unwrap().tokens(0), bytes_before);
    assert_eq!(l.ops.as_ref().unwrap().tokens(0), 0);

    // Bytes are out: the op must stay untouched. The hint is the longer of the two.
    let mut l = Limiter::new(Some((1000, 1000)), Some((1, 5)), 0);
    assert_eq!(l.try_take(1000, 0), Ok(()));
    assert_eq!(l.try_take(500, 0), Err(S / 2));
    assert_eq!(l.ops.as_ref().unwrap().tokens(0), 4);
    assert_eq!(l.try_take(500, S / 2), Ok(()));
}

#[test]
fn the_limiter_hint_covers_both_buckets() {
    let mut rng = Rng::new(77);
    let mut l = Limiter::new(Some((50 * KIB, 4 * KIB)), Some((30, 3)), 0);
    let mut now = 0;
    let (mut sent, mut frames) = (0, 0);
    while now <= 10 * S {
        let n = rng.range(60, FRAME);
        match l.try_take(n, now) {
            Ok(()) => {
                sent += n;
                frames += 1;
            }
            Err(wait) => {
                // Waiting the hint is enough for the same request.
                assert_eq!(l.try_take(n, now + wait), Ok(()));
                sent += n;
                frames += 1;
                now += wait;
            }
        }
    }
    assert!(sent <= 10 * 50 * KIB + 4 * KIB + FRAME, "{sent}");
    assert!(frames <= 10 * 30 + 3 + 1, "{frames}");
}

#[test]
fn setting_and_removing_limits() {
    let mut l = Limiter::unlimited();
    assert!(!l.is_limited());
    assert_eq!(l, Limiter::default());
    assert_eq!(l.try_take(u64::MAX, 0), Ok(()));

    l.set_ops(Some((1, 1)), 0);
    assert!(l.is_limited());
    assert_eq!(l.try_take(0, 0), Ok(()));
    assert_eq!(l.try_take(0, 0), Err(S));

    // Changing keeps the (empty) bucket rather than refilling it.
    l.set_ops(Some((1000, 1)), 0);
    assert_eq!(l.try_take(0, 0), Err(MS));

    l.set_ops(None, 0);
    l.set_bytes(Some((100, 100)), 0);
    assert_eq!(l.try_take(100, 0), Ok(()));
    assert_eq!(l.try_take(1, 0), Err(S / 100));
    l.set_bytes(None, 0);
    assert!(!l.is_limited());
    assert_eq!(l.try_take(1, 0), Ok(()));
}

#[test]
fn two_limiters_give_all_or_nothing() {
    // An agent's limiter (ops) inside its partition's (bytes).
    let mut agent = Limiter::new(None, Some((10, 1)), 0);
    let mut part = Limiter::new(Some((1000, 1000)), None, 0);
    assert_eq!(agent.try_take_with(&mut part, 600, 0), Ok(()));
    // The agent's op is spent: the partition's bytes stay as they were.
    assert_eq!(agent.try_take_with(&mut part, 100, 0), Err(S / 10));
    assert_eq!(part.bytes.as_ref().unwrap().tokens(0), 400);
    // At 0.1 s the agent has its op, the partition 500 bytes: 600 waits 0.1 s more, and
    // the agent's op is not spent meanwhile.
    assert_eq!(agent.try_take_with(&mut part, 600, S / 10), Err(S / 10));
    assert_eq!(agent.ops.as_ref().unwrap().tokens(S / 10), 1);
    assert_eq!(agent.try_take_with(&mut part, 600, S / 5), Ok(()));
    assert_eq!(part.bytes.as_ref().unwrap().tokens(S / 5), 0);
    assert_eq!(agent.ops.as_ref().unwrap().tokens(S / 5), 0);
    // Unlimited on both sides grants everything.
    let (mut a, mut b) = (Limiter::unlimited(), Limiter::unlimited());
    assert_eq!(a.try_take_with(&mut b, u64::MAX, 0), Ok(()));
}
