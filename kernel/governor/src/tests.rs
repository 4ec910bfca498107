//! The state machine against the windows a runtime would measure.

extern crate std;

use std::vec::Vec;

use super::*;

const MS: u64 = 1_000_000;

fn policy(busy: u8, floor: u8) -> Policy {
    Policy {
        busy_percent: busy,
        floor_percent: floor,
    }
}

/// A 100 ms window `busy`% busy, `protected`% of it protected partitions'.
fn window(busy: u64, protected: u64) -> Window {
    Window {
        span_ns: 100 * MS,
        busy_ns: busy * MS,
        protected_ns: protected * MS,
    }
}

#[test]
fn contention_tightens_a_step_a_window_down_to_the_floor() {
    let mut g = Governor::new(policy(80, 10));
    let caps: Vec<Option<u8>> = (0..6)
        .map(|_| {
            g.observe(window(95, 30));
            g.cap()
        })
        .collect();
    assert_eq!(
        caps,
        [Some(50), Some(25), Some(12), Some(10), Some(10), Some(10)]
    );
    let mut g = Governor::new(policy(80, 10));
    assert_eq!(
        g.observe(window(95, 30)),
        Some(Change::Throttle {
            cap_percent: 50,
            busy_percent: 95
        })
    );
}

#[test]
fn no_protected_partition_busy_or_a_quiet_cpu_is_no_contention() {
    let mut g = Governor::new(policy(80, 10));
    // The CPU full, but only of unprotected agents (the protected one ran 0.5 ms).
    for _ in 0..50 {
        assert_eq!(g.observe(window(100, 0)), None);
        assert_eq!(
            g.observe(Window {
                protected_ns: MS / 2,
                ..window(100, 0)
            }),
            None
        );
    }
    // A protected partition busy, the CPU below the threshold.
    for _ in 0..50 {
        assert_eq!(g.observe(window(79, 40)), None);
    }
    assert_eq!(g.cap(), None);
    assert_eq!(g.observe(Window::default()), None);
}

/// Below the threshold because of the cap, with the protected partition still busy: the
/// cap holds; released a step a window once it has been quiet for 2 s.
#[test]
fn the_cap_holds_while_the_protected_partition_works_and_lifts_after_it_rests() {
    let mut g = Governor::new(policy(80, 10));
    for _ in 0..4 {
        g.observe(window(95, 30));
    }
    assert_eq!(g.cap(), Some(10));
    for _ in 0..100 {
        assert_eq!(g.observe(window(40, 30)), None);
    }
    assert_eq!(g.cap(), Some(10));
    // Quiet: 19 windows change nothing, the 20th (2 s) loosens, then a step a window.
    for _ in 0..19 {
        assert_eq!(g.observe(window(100, 0)), None);
    }
    let mut caps = Vec::new();
    for _ in 0..4 {
        if let Some(Change::Release { cap_percent, .. }) = g.observe(window(100, 0)) {
            caps.push(cap_percent);
        }
    }
    assert_eq!(caps, [Some(20), Some(40), None]);
    assert_eq!(g.cap(), None);
    // Busy again before the release ends: it tightens from where it is.
    let mut g2 = Governor::new(policy(80, 10));
    g2.observe(window(95, 30));
    g2.observe(window(95, 30));
    for _ in 0..20 {
        g2.observe(window(100, 0));
    }
    assert_eq!(g2.cap(), Some(50));
    g2.observe(window(95, 30));
    assert_eq!(g2.cap(), Some(25));
}

#[test]
fn a_floor_at_or_past_the_first_step_caps_once_and_a_floor_of_100_never() {
    let mut g = Governor::new(policy(50, 60));
    for _ in 0..5 {
        g.observe(window(90, 20));
    }
    assert_eq!(g.cap(), Some(60));
    let mut g = Governor::new(policy(50, 100));
    for _ in 0..5 {
        assert_eq!(g.observe(window(90, 20)), None);
    }
    assert_eq!(g.cap(), None);
}

#[test]
fn windows_of_any_length_and_overfull_ones_are_read_as_percentages() {
    let w = Window {
        span_ns: 250 * MS,
        busy_ns: 1000 * MS,
        protected_ns: 3 * MS,
    };
    assert_eq!(w.busy_percent(), 100);
    assert!(w.protected_busy());
    let w = Window {
        span_ns: u64::MAX,
        busy_ns: u64::MAX / 2,
        protected_ns: u64::MAX,
    };
    assert_eq!(w.busy_percent(), 49);
    assert!(w.protected_busy());
}
