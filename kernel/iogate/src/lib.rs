//! The disk governor's gate: which of a partition's disk requests may go to the device
//! now, under its agents' and its own IOPS and bytes/s budgets.
//!
//! Each request takes its bytes and one operation from its agent's [`Limiter`] and from
//! the partition's, from all of them or none (`Limiter::try_take_with`). A request that
//! cannot have them waits in the partition's queue, and [`Gate::admit`] lets it through
//! once it can. Accepted work is never dropped; it only waits. The order is the one Linux's
//! blk-throttle keeps per group:
//! - a request waiting for its **agent's** budget does not hold up the other agents of its
//!   partition (it is passed over, and takes nothing from the partition meanwhile);
//! - a request waiting for the **partition's** budget holds up every request behind it,
//!   so the partition's budget goes out first come, first served, and nobody starves;
//! - one agent's requests never pass each other.
//!
//! Only admitted requests reach the device queue, so one partition's throttled requests
//! never stand in front of another partition's.
//!
//! What it must not touch: no clock (`now_ns` is passed in), no devices, no tasks. The
//! runtime keeps one gate per partition, submits what it admits and wakes the agents.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;

pub use plinth_ratelimit::{Limiter, Rate};

/// A budget: bytes per second and operations per second, each `(rate, burst)` or `None`
/// for no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    pub bytes: Option<Rate>,
    pub ops: Option<Rate>,
}

impl Budget {
    /// No limit at all.
    pub const UNLIMITED: Budget = Budget {
        bytes: None,
        ops: None,
    };

    pub fn is_limited(&self) -> bool {
        self.bytes.is_some() || self.ops.is_some()
    }
}

/// A request let through: who sent it, the request itself, and how long it waited.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted<K, T> {
    pub agent: K,
    pub request: T,
    /// From [`Gate::offer`] to admission, ns (0: it went at once).
    pub waited_ns: u64,
}

struct Waiting<K, T> {
    agent: K,
    bytes: u64,
    since_ns: u64,
    request: T,
}

/// One partition's gate: its budget, its agents' budgets, and the requests waiting.
/// `K` names an agent (the runtime's slot index), `T` is the request.
pub struct Gate<K, T> {
    partition: Limiter,
    agents: Vec<(K, Limiter)>,
    queue: VecDeque<Waiting<K, T>>,
}

impl<K: Copy + PartialEq, T> Default for Gate<K, T> {
    fn default() -> Self {
        Gate::new()
    }
}

impl<K: Copy + PartialEq, T> Gate<K, T> {
    /// A gate that limits nothing.
    pub fn new() -> Gate<K, T> {
        Gate {
            partition: Limiter::unlimited(),
            agents: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// Sets or changes the partition's budget at `now_ns`, effective for the next
    /// admission (waiting requests included). A changed rate keeps the tokens held, cut
    /// to the new burst; a new one starts full.
    pub fn set_partition(&mut self, budget: Budget, now_ns: u64) {
        self.partition.set_bytes(budget.bytes, now_ns);
        self.partition.set_ops(budget.ops, now_ns);
    }

    /// Sets, changes or (with [`Budget::UNLIMITED`]) removes an agent's budget.
    pub fn set_agent(&mut self, agent: K, budget: Budget, now_ns: u64) {
        match self.agents.iter().position(|(k, _)| *k == agent) {
            Some(i) if !budget.is_limited() => {
                self.agents.swap_remove(i);
            }
            Some(i) => {
                let l = &mut self.agents[i].1;
                l.set_bytes(budget.bytes, now_ns);
                l.set_ops(budget.ops, now_ns);
            }
            None if budget.is_limited() => self
                .agents
                .push((agent, Limiter::new(budget.bytes, budget.ops, now_ns))),
            None => {}
        }
    }

    /// Whether anything limits this gate at all (if not, every request goes at once).
    pub fn is_limited(&self) -> bool {
        self.partition.is_limited() || !self.agents.is_empty()
    }

    /// A request of `bytes` bytes from `agent` at `now_ns`: handed back if it may go now,
    /// otherwise queued until [`admit`](Self::admit) lets it through. It goes now only if
    /// nothing it must not pass is waiting.
    pub fn offer(&mut self, agent: K, bytes: u64, request: T, now_ns: u64) -> Option<T> {
        if self.queue.is_empty() {
            // Nothing waits, so nothing can be passed: the budgets alone decide, and a
            // request they allow never touches the queue (the governed path's common
            // case, kept short).
            let mut unlimited = Limiter::unlimited();
            let own = match self.agents.iter_mut().find(|(k, _)| *k == agent) {
                Some((_, l)) => l,
                None => &mut unlimited,
            };
            if own
                .try_take_with(&mut self.partition, bytes, now_ns)
                .is_ok()
            {
                return Some(request);
            }
        }
        self.queue.push_back(Waiting {
            agent,
            bytes,
            since_ns: now_ns,
            request,
        });
        // Only the new request's own turn is looked at here: anything before it that
        // could go would have gone at the last `admit`, or goes at the next.
        let last = self.queue.len() - 1;
        match self.admissible(now_ns, Some(last)) {
            Some(i) if i == last => self.queue.pop_back().map(|w| w.request),
            _ => None,
        }
    }

    /// The next waiting request that may go at `now_ns`, its tokens taken; `None` when
    /// none may. Call until `None`.
    pub fn admit(&mut self, now_ns: u64) -> Option<Admitted<K, T>> {
        let i = self.admissible(now_ns, None)?;
        self.queue.remove(i).map(|w| Admitted {
            agent: w.agent,
            request: w.request,
            waited_ns: now_ns.saturating_sub(w.since_ns),
        })
    }

    /// Walks the queue in order and takes the tokens of the first request that may go
    /// (if `only` is given, only that one may be chosen); returns its index.
    fn admissible(&mut self, now_ns: u64, only: Option<usize>) -> Option<usize> {
        let Gate {
            partition,
            agents,
            queue,
        } = self;
        let mut unlimited = Limiter::unlimited();
        // Agents whose earlier request waits: their later ones must not pass it.
        let mut held: Vec<K> = Vec::new();
        for (i, w) in queue.iter().enumerate() {
            if held.contains(&w.agent) {
                continue;
            }
            let agent = match agents.iter_mut().find(|(k, _)| *k == w.agent) {
                Some((_, l)) => l,
                None => &mut unlimited,
            };
            if agent.wait_ns(w.bytes, now_ns) > 0 {
                // Waiting for its agent's budget: the others go past.
                held.push(w.agent);
                continue;
            }
            if only.is_some_and(|o| o != i) {
                // Could go, but the caller asks about a later one: first come first.
                return None;
            }
            return match agent.try_take_with(partition, w.bytes, now_ns) {
                Ok(()) => Some(i),
                // Waiting for the partition's budget: everything behind it waits too.
                Err(_) => None,
            };
        }
        None
    }

    /// How long until [`admit`](Self::admit) may let a request through, as far as the
    /// budgets say (`None`: nothing waits; `Some(0)`: now). A hint for when to look
    /// again; the order rules of [`admit`](Self::admit) are counted in.
    pub fn next_wait_ns(&mut self, now_ns: u64) -> Option<u64> {
        let Gate {
            partition,
            agents,
            queue,
        } = self;
        let mut soonest: Option<u64> = None;
        let mut held: Vec<K> = Vec::new();
        for w in queue.iter() {
            if held.contains(&w.agent) {
                continue;
            }
            let agent = agents
                .iter_mut()
                .find(|(k, _)| *k == w.agent)
                .map_or(0, |(_, l)| l.wait_ns(w.bytes, now_ns));
            let wait = agent.max(partition.wait_ns(w.bytes, now_ns));
            soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
            if agent == 0 {
                // The first in line for the partition's budget: nothing behind it
                // goes before it.
                break;
            }
            held.push(w.agent);
        }
        soonest
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Drops every waiting request of `agent` (it ended: nobody is left to acknowledge
    /// them to) and returns them. Its budget stays, with what it has spent: a restart
    /// does not bring a fresh burst.
    pub fn cancel(&mut self, agent: K) -> Vec<T> {
        let mut dropped = Vec::new();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for w in self.queue.drain(..) {
            if w.agent == agent {
                dropped.push(w.request);
            } else {
                kept.push_back(w);
            }
        }
        self.queue = kept;
        dropped
    }
}

#[cfg(test)]
mod tests;
