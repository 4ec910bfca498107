//! The run loop's slice: pick a task, run it in ring 3 until an interrupt, a system call
//! that gives up the CPU, an exit or a fault; charge the time it used; hand finished disk
//! requests to the tasks waiting for them.
//!
//! Owns the order of those steps and acts on what a system call says it needs (yield,
//! sleep, block on I/O, exit). It must not decode system calls (`syscall`) or judge
//! faults beyond ending the task (`lifecycle` applies the restart policy).

use plinth_sched::Decision;

use super::RUNTIME;
use super::Runtime;
use super::events::EventKind;
use super::lifecycle::Ending;
use super::model::Task;
use super::syscall::{self, Outcome};
use crate::arch::cpu;
use crate::arch::user::{EnterError, SYSCALL_VECTOR};
use crate::{clock, drivers, trap};

/// What [`run`] did.
pub enum Ran {
    /// Agents ran until an interrupt; call again after serving the runtime's own duties.
    Agent,
    /// Nothing to run before the next interrupt (the timer tick wakes sleepers).
    Idle,
}

/// Why a slice ended.
enum SliceEnd {
    /// A timer or device interrupt: the runtime's duties come first.
    Interrupt,
    /// The agent yielded, slept, blocked or ended: pick the next one at once.
    Switch,
}

/// Runs agents, switching between them directly as they yield, sleep or end, until an
/// interrupt (the tick or a device) gives the runtime its turn or nothing is runnable.
/// Each slice's time is charged as measured by the TSC.
pub fn run() -> Ran {
    let mut guard = RUNTIME.lock();
    let Some(rt) = guard.as_mut() else {
        return Ran::Idle;
    };
    let mut ran_any = false;
    loop {
        let now = clock::now_ns();
        rt.watchdog(now);
        rt.restart_due(now);
        rt.admit_disk(now);
        rt.complete_io(now);
        rt.wake_net_waiters(now);
        rt.account_disk(now);
        rt.govern(now);
        rt.sample_profiles(now);
        rt.meter_memory(now);
        rt.record_usage(now);
        let (id, slice_ns) = match rt.sched.pick(now) {
            Decision::Run { id, slice_ns } => (id, slice_ns),
            Decision::Idle { .. } => {
                return if ran_any { Ran::Agent } else { Ran::Idle };
            }
        };
        ran_any = true;
        let Some(ti) = rt.task_index(id) else {
            rt.sched.remove(id);
            continue;
        };
        // A NetWait that timed out: `rax` already says 0.
        rt.tasks[ti].net_wait = None;
        if let SliceEnd::Interrupt = rt.slice(ti, now.saturating_add(slice_ns)) {
            return Ran::Agent;
        }
    }
}

impl Runtime {
    /// Hands finished disk requests to the tasks waiting for them and wakes them.
    fn complete_io(&mut self, now: u64) {
        for t in &mut self.tasks {
            let Some(io) = t.io.as_ref() else { continue };
            let Some(outcome) = crate::block::poll(&io.ticket) else {
                continue;
            };
            let rax = match outcome {
                Ok(buf) => match io.read_into {
                    // Checked at submission, and the agent could not unmap it since: it
                    // was blocked. A failure here would still be an error, not a fault.
                    Some(va) => match t.space.write(va, &buf, false) {
                        Ok(()) => io.result,
                        Err(_) => plinth_abi::Error::BadPointer.code(),
                    },
                    None => io.result,
                },
                Err(_) => plinth_abi::Error::Io.code(),
            };
            t.ctx.frame.rax = rax;
            t.io = None;
            self.sched.wake(t.id, now);
        }
    }

    /// Wakes tasks whose NetWait is satisfied, with the ready NICs in `rax`.
    fn wake_net_waiters(&mut self, now: u64) {
        for t in &mut self.tasks {
            let Some((rx, tx)) = t.net_wait else { continue };
            let ready = syscall::net_ready(&self.partitions[t.partition], rx, tx);
            match ready {
                Ok(0) => continue,
                Ok(bits) => t.ctx.frame.rax = bits,
                // A NIC went away while it waited.
                Err(e) => t.ctx.frame.rax = e.code(),
            }
            t.net_wait = None;
            self.sched.wake(t.id, now);
        }
    }

    /// Runs task `ti` until `deadline_ns` (checked at interrupts: between them only the
    /// agent's own code and its system calls run, and the tick interrupts those), a
    /// yield, sleep, block, exit or fault.
    fn slice(&mut self, ti: usize, deadline_ns: u64) -> SliceEnd {
        // The space stays live after the slice: slot 0 maps the kernel in every space,
        // and each CR3 write costs a full TLB flush (under TCG, too).
        self.tasks[ti].space.activate();
        let id = self.tasks[ti].id;
        let start = cpu::rdtsc();
        let (ending, end) = loop {
            let entered = {
                // While the agent runs, calls that do not give up the CPU are answered on
                // the fast path (`syscall::fast`), which sees the agent's memory and heap
                // mark and its own partition — nothing else.
                let Task {
                    ctx,
                    space,
                    heap_next,
                    syscalls,
                    by_kind,
                    frames,
                    partition,
                    slot,
                    ..
                } = &mut self.tasks[ti];
                let mut caller = syscall::Caller {
                    space,
                    heap_next,
                    frames,
                    part: &mut self.partitions[*partition],
                    slot: *slot,
                };
                let mut fast = |number: u64, a| {
                    let answer = syscall::fast(&mut caller, number, a);
                    if answer.is_some() {
                        *syscalls += 1;
                        by_kind[call_kind(number)] += 1;
                    }
                    answer
                };
                ctx.run(&mut fast)
            };
            let task = &mut self.tasks[ti];
            if let Err(EnterError::BadRip(rip)) = entered {
                let fault = EventKind::AgentFaulted {
                    vector: 13,
                    name: "bad instruction pointer",
                    rip,
                    address: None,
                    error_code: 0,
                };
                break (Some(Ending::Fault(fault)), SliceEnd::Switch);
            }
            let vector = task.ctx.frame.vector;
            if vector == SYSCALL_VECTOR {
                task.syscalls += 1;
                task.by_kind[call_kind(task.ctx.frame.rax)] += 1;
                let (pi, si) = (task.partition, task.slot);
                let part = &mut self.partitions[pi];
                match syscall::dispatch(task, part) {
                    Outcome::Continue => continue,
                    Outcome::MemoryHigh {
                        sleep_until,
                        crossed,
                    } => {
                        if crossed {
                            let p = &self.partitions[pi];
                            let kind = EventKind::MemoryHigh {
                                used_bytes: p.frames * plinth_abi::PAGE_SIZE,
                                high_bytes: p.memory_mark().unwrap_or(0),
                                quota_bytes: p.memory_quota,
                            };
                            self.events.record(p, Some(si), kind);
                        }
                        match sleep_until {
                            Some(until_ns) => {
                                if let Some(slot) = self.partitions[pi].agents.get_mut(si) {
                                    slot.held_ns += until_ns.saturating_sub(clock::now_ns());
                                }
                                self.sched.sleep_until(id, until_ns);
                            }
                            None => continue,
                        }
                    }
                    Outcome::Yield => {}
                    Outcome::Sleep { until_ns } => self.sched.sleep_until(id, until_ns),
                    Outcome::Block(io) => {
                        task.io = Some(io);
                        self.sched.block(id);
                    }
                    // `admit_disk` gives it its request when the gate lets it through.
                    Outcome::Throttled => {
                        if let Some(slot) = self.partitions[pi].agents.get_mut(si) {
                            slot.held_since = Some(clock::now_ns());
                        }
                        self.sched.block(id);
                    }
                    Outcome::NetWait { rx, tx, until_ns } => {
                        // `rax` holds 0 (nothing ready) until a wake-up says otherwise.
                        task.net_wait = Some((rx, tx));
                        self.sched.sleep_until(id, until_ns);
                    }
                    Outcome::Exit(code) => break (Some(Ending::Exit(code)), SliceEnd::Switch),
                }
                break (None, SliceEnd::Switch);
            } else if vector < 32 {
                let cr2 = cpu::cr2();
                let f = &task.ctx.frame;
                let (_, name) = trap::exception_name(vector);
                let fault = EventKind::AgentFaulted {
                    vector,
                    name,
                    rip: f.rip,
                    address: (vector == 14).then_some(cr2),
                    error_code: f.error_code,
                };
                break (Some(Ending::Fault(fault)), SliceEnd::Switch);
            } else {
                // A device or timer interrupt: the runtime's business. The slice goes on
                // unless its time is up or a device needs service.
                trap::handle(&mut task.ctx.frame);
                if drivers::interrupt_pending() || clock::now_ns() >= deadline_ns {
                    break (None, SliceEnd::Interrupt);
                }
            }
        };
        // Frames the agent sent went into the uplink's ring: one doorbell for them all.
        crate::net::switch::flush();
        let ran = clock::tsc_delta_ns(cpu::rdtsc().wrapping_sub(start));
        self.busy_ns += ran;
        if self.protected.get(self.tasks[ti].partition) == Some(&true) {
            self.protected_ns += ran;
        }
        self.sched.charge(id, ran, clock::now_ns());
        if let Some(how) = ending {
            self.end_task(ti, how);
        }
        end
    }
}

/// Where call `number` is counted in a task's `by_kind`: its own place, or the last for a
/// number that is no call.
fn call_kind(number: u64) -> usize {
    usize::try_from(number)
        .ok()
        .filter(|n| *n < plinth_abi::Call::ALL.len())
        .unwrap_or(plinth_abi::Call::ALL.len())
}
