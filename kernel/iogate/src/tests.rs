use super::*;
use plinth_testrng::Rng;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const KIB: u64 = 1024;

fn ops(rate: u64, burst: u64) -> Budget {
    Budget {
        bytes: None,
        ops: Some((rate, burst)),
    }
}

fn bytes(rate: u64, burst: u64) -> Budget {
    Budget {
        bytes: Some((rate, burst)),
        ops: None,
    }
}

/// Agents that each keep one request of `size` bytes outstanding, as the runtime's
/// agents do (a disk call blocks its caller): the device takes `device_ns` per request,
/// and the runtime looks at the gate every `tick_ns` and whenever a request completes.
/// Returns each agent's completed requests in `[from_ns, until_ns)`.
fn run_agents(
    gate: &mut Gate<usize, u64>,
    sizes: &[u64],
    device_ns: u64,
    tick_ns: u64,
    from_ns: u64,
    until_ns: u64,
) -> Vec<u64> {
    let n = sizes.len();
    let mut done = alloc::vec![0u64; n];
    // When each agent's request completes (None: waiting in the gate).
    let mut busy_until: Vec<Option<u64>> = alloc::vec![None; n];
    let mut seq = 0u64;
    for (a, &size) in sizes.iter().enumerate() {
        seq += 1;
        if gate.offer(a, size, seq, 0).is_some() {
            busy_until[a] = Some(device_ns);
        }
    }
    let mut now = 0;
    while now < until_ns {
        // The next event: a completion or a tick.
        let next_tick = (now / tick_ns + 1) * tick_ns;
        let next_done = busy_until.iter().flatten().copied().min();
        now = next_done.map_or(next_tick, |d| d.min(next_tick)).max(now);
        for a in 0..n {
            if busy_until[a].is_some_and(|d| d <= now) {
                busy_until[a] = None;
                if (from_ns..until_ns).contains(&now) {
                    done[a] += 1;
                }
                seq += 1;
                if gate.offer(a, sizes[a], seq, now).is_some() {
                    busy_until[a] = Some(now + device_ns);
                }
            }
        }
        while let Some(ad) = gate.admit(now) {
            assert!(busy_until[ad.agent].is_none(), "one request per agent");
            busy_until[ad.agent] = Some(now + device_ns);
        }
        if next_done.is_none_or(|d| d > next_tick) {
            now = now.max(next_tick);
        }
    }
    done
}

#[test]
fn an_iops_cap_holds_within_a_tenth_of_a_percent_over_ten_seconds() {
    for (rate, tick) in [(200, 10 * MS), (1000, 10 * MS), (37, MS), (5000, 10 * MS)] {
        let mut gate = Gate::new();
        gate.set_partition(ops(rate, rate), 0);
        // 2 s to spend the burst, then 10 s measured.
        let done = run_agents(&mut gate, &[4096], 100_000, tick, 2 * S, 12 * S);
        let want = rate * 10;
        let err = done[0].abs_diff(want) as f64 / want as f64;
        assert!(
            err <= 0.001,
            "rate {rate}, tick {tick}: {} of {want}",
            done[0]
        );
    }
}

#[test]
fn a_bytes_cap_holds_with_requests_of_any_size() {
    let mut rng = Rng::new(5);
    let rate = 1 << 20;
    let mut gate: Gate<usize, u64> = Gate::new();
    gate.set_partition(bytes(rate, rate), 0);
    // Random sizes, one request at a time, polled on a 10 ms tick.
    let (mut now, mut moved) = (0u64, 0u64);
    let mut seq = 0;
    while now < 12 * S {
        let size = rng.range(1, 129) * 512;
        seq += 1;
        if gate.offer(0, size, seq, now).is_none() {
            loop {
                now += 10 * MS;
                if gate.admit(now).is_some() {
                    break;
                }
            }
        }
        if (2 * S..12 * S).contains(&now) {
            moved += size;
        }
        now += 200_000;
    }
    let want = rate * 10;
    let err = moved.abs_diff(want) as f64 / want as f64;
    assert!(err <= 0.01, "{moved} of {want}");
}

#[test]
fn an_agent_waiting_for_its_own_budget_holds_nobody_up() {
    let mut gate: Gate<usize, &str> = Gate::new();
    gate.set_agent(0, ops(1, 1), 0);
    assert_eq!(gate.offer(0, 512, "a1", 0), Some("a1"));
    // Agent 0's second request waits a second for its own budget...
    assert_eq!(gate.offer(0, 512, "a2", 0), None);
    // ...and agent 1, unlimited, goes past it at once, again and again.
    for _ in 0..100 {
        assert_eq!(gate.offer(1, 512, "b", 0), Some("b"));
    }
    assert_eq!(gate.admit(S / 2), None);
    let a = gate.admit(S).expect("agent 0's turn after a second");
    assert_eq!((a.agent, a.request, a.waited_ns), (0, "a2", S));
    assert_eq!(gate.waiting(), 0);
}

#[test]
fn the_partition_budget_goes_first_come_first_served() {
    let mut gate: Gate<usize, u32> = Gate::new();
    gate.set_partition(ops(10, 1), 0);
    assert_eq!(gate.offer(0, 512, 1, 0), Some(1));
    // Everything else waits, in order, across agents.
    for (agent, seq) in [(1, 2), (2, 3), (0, 4), (1, 5)] {
        assert_eq!(gate.offer(agent, 512, seq, 0), None);
    }
    assert_eq!(gate.next_wait_ns(0), Some(S / 10));
    let mut order = Vec::new();
    let mut now = 0;
    while gate.waiting() > 0 {
        now += MS;
        while let Some(a) = gate.admit(now) {
            order.push((a.request, now));
        }
    }
    assert_eq!(
        order,
        [(2, 100 * MS), (3, 200 * MS), (4, 300 * MS), (5, 400 * MS)]
    );
    // A newcomer does not pass a request waiting for the partition's budget.
    assert_eq!(gate.offer(3, 512, 6, now), None);
    assert_eq!(gate.offer(4, 512, 7, now), None);
    assert_eq!(gate.admit(now + 100 * MS).map(|a| a.request), Some(6));
}

#[test]
fn two_greedy_agents_share_the_partition_budget_evenly() {
    let mut gate = Gate::new();
    gate.set_partition(ops(300, 300), 0);
    // Looked at every millisecond, the budget comes a token at a time, to whoever
    // asked first.
    let done = run_agents(&mut gate, &[4096, 4096], 50_000, MS, 2 * S, 12 * S);
    assert!((done[0] + done[1]).abs_diff(3000) <= 2, "{done:?}");
    assert!(done[0].abs_diff(done[1]) <= 2, "{done:?}");
}

#[test]
fn an_agent_budget_inside_the_partition_budget() {
    // Agent 0 may do 50 IOPS, the partition 200: agent 1 gets the rest.
    let mut gate = Gate::new();
    gate.set_partition(ops(200, 200), 0);
    gate.set_agent(0, ops(50, 50), 0);
    let done = run_agents(&mut gate, &[4096, 4096], 50_000, 10 * MS, 2 * S, 12 * S);
    assert!(done[0].abs_diff(500) <= 1, "{done:?}");
    assert!(done[1].abs_diff(1500) <= 2, "{done:?}");
}

#[test]
fn one_agents_requests_never_pass_each_other() {
    let mut gate: Gate<usize, u32> = Gate::new();
    gate.set_agent(0, bytes(1000, 1000), 0);
    assert_eq!(gate.offer(0, 1000, 1, 0), Some(1));
    // A big request waits; a small one behind it must not go first, even though its
    // bytes would be there sooner.
    assert_eq!(gate.offer(0, 800, 2, 0), None);
    assert_eq!(gate.offer(0, 100, 3, 0), None);
    assert_eq!(gate.admit(S / 5), None);
    assert_eq!(gate.admit(4 * S / 5).map(|a| a.request), Some(2));
    assert_eq!(gate.admit(4 * S / 5), None);
    assert_eq!(gate.admit(9 * S / 10).map(|a| a.request), Some(3));
}

#[test]
fn a_live_change_applies_to_waiting_requests() {
    let mut gate: Gate<usize, u32> = Gate::new();
    gate.set_partition(ops(1, 1), 0);
    assert_eq!(gate.offer(0, 512, 1, 0), Some(1));
    assert_eq!(gate.offer(0, 512, 2, 0), None);
    // Raised to 1000/s at 10 ms: the waiting request goes 1 ms later, not at 1 s.
    gate.set_partition(ops(1000, 1000), 10 * MS);
    assert_eq!(gate.admit(10 * MS), None);
    assert_eq!(gate.admit(11 * MS).map(|a| a.request), Some(2));
    // Removed: everything goes.
    gate.set_partition(Budget::UNLIMITED, 11 * MS);
    assert!(!gate.is_limited());
    for seq in 3..1000 {
        assert_eq!(gate.offer(0, 512, seq, 11 * MS), Some(seq));
    }
}

#[test]
fn cancelling_an_agent_drops_only_its_requests_and_keeps_its_spending() {
    let mut gate: Gate<usize, u32> = Gate::new();
    gate.set_agent(0, ops(1, 1), 0);
    gate.set_partition(ops(1, 1), 0);
    assert_eq!(gate.offer(0, 512, 1, 0), Some(1));
    assert_eq!(gate.offer(0, 512, 2, 0), None);
    assert_eq!(gate.offer(1, 512, 3, 0), None);
    assert_eq!(gate.cancel(0), [2]);
    assert_eq!(gate.waiting(), 1);
    assert_eq!(gate.admit(S).map(|a| a.request), Some(3));
    // The restarted agent finds its own budget as it left it: spent at 0, so at S/2
    // (the partition's budget lifted) it still waits, where a fresh burst would go.
    let mut gate: Gate<usize, u32> = Gate::new();
    gate.set_agent(0, ops(1, 1), 0);
    assert_eq!(gate.offer(0, 512, 1, 0), Some(1));
    assert_eq!(gate.offer(0, 512, 2, 0), None);
    assert_eq!(gate.cancel(0), [2]);
    assert_eq!(gate.offer(0, 512, 3, S / 2), None);
    assert_eq!(gate.admit(S).map(|a| a.request), Some(3));
}

#[test]
fn random_traffic_never_loses_or_duplicates_a_request() {
    let mut rng = Rng::new(99);
    let mut gate: Gate<usize, u64> = Gate::new();
    gate.set_partition(
        Budget {
            bytes: Some((64 * KIB, 128 * KIB)),
            ops: Some((100, 20)),
        },
        0,
    );
    gate.set_agent(1, ops(10, 1), 0);
    gate.set_agent(2, bytes(8 * KIB, 8 * KIB), 0);
    let mut seen = alloc::collections::BTreeSet::new();
    let (mut now, mut offered) = (0u64, 0u64);
    let mut last_per_agent = [0u64; 4];
    let mut take = |agent: usize, seq: u64, last: &mut [u64; 4]| {
        assert!(seen.insert(seq), "{seq} twice");
        assert!(seq > last[agent], "agent {agent}'s order");
        last[agent] = seq;
    };
    for _ in 0..20_000 {
        now += rng.range(0, 5 * MS);
        if rng.chance(50) {
            offered += 1;
            let agent = rng.below(4);
            if gate
                .offer(agent, rng.range(1, 65) * 512, offered, now)
                .is_some()
            {
                take(agent, offered, &mut last_per_agent);
            }
        }
        while let Some(a) = gate.admit(now) {
            take(a.agent, a.request, &mut last_per_agent);
        }
    }
    // The rest drains by waiting each hint.
    while let Some(wait) = gate.next_wait_ns(now) {
        now += wait;
        while let Some(a) = gate.admit(now) {
            take(a.agent, a.request, &mut last_per_agent);
        }
    }
    assert_eq!(gate.waiting(), 0);
    assert_eq!(seen.len() as u64, offered);
}
