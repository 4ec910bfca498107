//! Exit codes shared by the runtime and the host tools.
//!
//! Owns the mapping between why the runtime stopped and the byte it writes to QEMU's
//! `isa-debug-exit` port, and how that byte reappears as QEMU's process exit status.
//! It must not know anything about how the runtime or QEMU are started.
//!
//! QEMU turns a write of `v` to the port into the process status `(v << 1) | 1`, so a
//! status of 0 can never come from the guest; success therefore has its own code.
//! Values start at 0x10 to stay clear of the small statuses QEMU itself uses
//! (0 = guest powered off by other means, 1 = QEMU error).
#![no_std]
#![forbid(unsafe_code)]

/// I/O port of the `isa-debug-exit` device in every machine profile.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the runtime stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    /// Clean shutdown that was asked for (console `shutdown`, self-tests passed).
    Success = 0x10,
    /// A CPU exception the kernel cannot recover from (page fault, GP, #UD, #DF, ...).
    Fault = 0x11,
    /// A Rust panic in the kernel.
    Panic = 0x12,
    /// A self-test selected on the command line failed.
    SelfTestFailed = 0x13,
    /// The kernel heap or frame allocator could not satisfy an allocation.
    OutOfMemory = 0x14,
    /// The machine cannot be brought up: no console, or unusable PVH boot data.
    BootFailed = 0x15,
}

impl ExitCode {
    /// Every code, for tables and documentation.
    pub const ALL: [ExitCode; 6] = [
        ExitCode::Success,
        ExitCode::Fault,
        ExitCode::Panic,
        ExitCode::SelfTestFailed,
        ExitCode::OutOfMemory,
        ExitCode::BootFailed,
    ];

    /// The byte the runtime writes to [`DEBUG_EXIT_PORT`].
    pub const fn port_value(self) -> u8 {
        self as u8
    }

    /// The exit status of the QEMU process after the runtime wrote this code.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }

    /// Recovers the code from a QEMU process exit status, if it came from the runtime.
    pub fn from_qemu_status(status: i32) -> Option<ExitCode> {
        Self::ALL.into_iter().find(|c| c.qemu_status() == status)
    }

    /// Short lower-case name used in logs and `--json` output.
    pub const fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Fault => "fault",
            ExitCode::Panic => "panic",
            ExitCode::SelfTestFailed => "selftest-failed",
            ExitCode::OutOfMemory => "out-of-memory",
            ExitCode::BootFailed => "boot-failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_distinct_and_round_trip() {
        for (i, a) in ExitCode::ALL.iter().enumerate() {
            assert_eq!(ExitCode::from_qemu_status(a.qemu_status()), Some(*a));
            for b in &ExitCode::ALL[i + 1..] {
                assert_ne!(a.qemu_status(), b.qemu_status());
            }
        }
    }

    #[test]
    fn qemu_own_statuses_are_not_runtime_codes() {
        assert_eq!(ExitCode::from_qemu_status(0), None);
        assert_eq!(ExitCode::from_qemu_status(1), None);
        assert_eq!(ExitCode::Success.qemu_status(), 33);
    }
}
