//! The library agents link to reach the plinth runtime: the only door out of a partition.
//!
//! Every function here (and in [`nic`], the raw Ethernet frames of the partition's NICs)
//! is one system call of [`plinth_abi`], wrapped in a safe signature (borrowed buffers
//! instead of pointers, [`Error`] instead of negative codes). Two
//! backends implement the same API, chosen by the `host` feature:
//!
//! - **Target** (`--no-default-features --target x86_64-unknown-none`): `no_std`; each call
//!   is one `syscall` instruction following the ABI (number in `rax`, arguments in `rdi`,
//!   `rsi`, `rdx`, `r10`, `r8`, result in `rax`, `rcx`/`r11` clobbered). The crate's
//!   `unsafe` code lives in two small modules: `target::raw` (the system calls) and
//!   `heap` (the global allocator of the `alloc` feature).
//! - **Host** (`host`, the default): the same API over `std`, so an agent's source runs
//!   unchanged as an ordinary Linux process (`cargo run -p hostshim --example hello`).
//!   Log lines go to stderr as `[agent] <text>`; the clock counts from process start;
//!   `config_read` reads files under `$PLINTH_AGENT_DIR` (default: the current
//!   directory); the data disk is the file `$PLINTH_DISK` (default: a sparse 16 MiB
//!   `hostshim-disk.img` in the temporary directory, created if absent; an empty value
//!   means "no disk"), with the runtime's sector rules; `mem_grow` hands out leaked,
//!   zeroed, page-aligned memory within `$PLINTH_MEMORY_QUOTA` bytes (default 64 MiB).
//!
//! An agent is a binary that starts with
//! `#![cfg_attr(not(feature = "host"), no_std, no_main)]` and names its entry function
//! with [`entry!`]; see the crate's examples (`hello`, `spinner`, `scrubber`, `hostile`, `bench`,
//! and `echo` for the network).
//!
//! # Features
//!
//! - `host` (default): the std backend above.
//! - `alloc`: a global allocator over [`mem_grow`] for agents built for the runtime
//!   (`alloc::vec::Vec` and friends); on the host std's allocator serves anyway.
//! - `net` (implies `alloc`): `hostshim::net`, TCP, UDP and DHCP with a poll-style API:
//!   smoltcp over the partition's first NIC, or Linux sockets on the host. The package's
//!   examples always have it (see `Cargo.toml`); the library alone does not.
//!
//! # Building agents for the runtime
//!
//! ```text
//! cargo build -p hostshim --no-default-features --target x86_64-unknown-none \
//!     --profile agent --examples \
//!     --config "target.x86_64-unknown-none.rustflags=['-Crelocation-model=pie']"
//! ```
//!
//! The agents land in `target/x86_64-unknown-none/agent/examples/<name>`. The `--config`
//! is needed because the workspace compiles that target with `relocation-model=static`
//! (for the kernel), whose 32-bit absolute addresses cannot reach the user window;
//! `build.rs` explains, and stops the link with that advice if it is missing.
//!
//! `build.rs` links examples for that target with `agent.ld`: a static, non-PIE
//! (`ET_EXEC`) ELF64 executable at [`plinth_abi::IMAGE_BASE`] whose loadable segments are
//! page-aligned and separately permissioned (text R+X, rodata R, data+bss R+W; never W+X;
//! empty ones are left out), with no `PT_INTERP`, `PT_DYNAMIC` or `PT_TLS`. An agent crate
//! outside this package needs the same compiler flag and linker arguments
//! (`-T<path>/agent.ld`, `--no-pie`, `--gc-sections`, `-zmax-page-size=4096`) in its own
//! build script.
#![cfg_attr(not(feature = "host"), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod config;
#[cfg(any(test, all(feature = "alloc", not(feature = "host"))))]
mod heap;
mod line;
#[cfg(feature = "net")]
pub mod net;
pub mod nic;

#[cfg(all(feature = "net", not(feature = "host"), not(target_os = "none")))]
compile_error!(
    "hostshim's `net` feature without `host` is the runtime's IP stack: build it with \
     --target x86_64-unknown-none (see the crate documentation)"
);

/// Agents built for the runtime with `alloc` get their heap from [`mem_grow`].
#[cfg(all(feature = "alloc", not(feature = "host")))]
#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new(backend::mem_grow);

#[cfg(feature = "host")]
mod host;
#[cfg(feature = "host")]
use host as backend;

#[cfg(not(feature = "host"))]
mod target;
#[cfg(not(feature = "host"))]
use target as backend;

pub use line::LogLine;
/// The system-call contract (numbers, limits, the user window), for agents' use.
pub use plinth_abi as abi;
pub use plinth_abi::Error;

use plinth_abi::{MAX_IO, MAX_LOG};

/// Sends one log line (no newline needed) to the runtime.
///
/// Text longer than [`plinth_abi::MAX_LOG`] bytes is cut at the last character boundary
/// that fits, rather than refused. Logging cannot fail from the agent's point of view.
pub fn log(text: &str) {
    backend::log(line::truncate(text, MAX_LOG as usize));
}

/// Formats a log line into a fixed 512-byte buffer on the stack (no allocation) and sends
/// it with [`log`]; takes the arguments of [`core::format_args!`]. Longer lines are cut.
#[macro_export]
macro_rules! logf {
    ($($arg:tt)*) => {{
        let mut line = $crate::LogLine::new();
        // `LogLine` never reports an error: what does not fit is dropped.
        let _ = ::core::fmt::Write::write_fmt(&mut line, ::core::format_args!($($arg)*));
        $crate::log(line.as_str());
    }};
}

/// Monotonic time, nanoseconds: since the runtime booted (on the host: since the agent
/// started).
pub fn clock_ns() -> u64 {
    backend::clock_ns()
}

/// Sleeps at least `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    backend::sleep_ns(ns);
}

/// Sleeps at least `ms` milliseconds (saturating at `u64::MAX` nanoseconds).
pub fn sleep_ms(ms: u64) {
    sleep_ns(ms.saturating_mul(1_000_000));
}

/// Gives up the rest of this time slice.
pub fn yield_now() {
    backend::yield_now();
}

/// Ends the agent with `code`: 0 is success, anything else a failure.
pub fn exit(code: i32) -> ! {
    backend::exit(code)
}

/// Tells the runtime this agent is alive; returns the heartbeat count.
pub fn heartbeat() -> u64 {
    backend::heartbeat()
}

/// The Null call: does nothing and returns 0. For round-trip benchmarks.
pub fn null() -> u64 {
    backend::null()
}

/// A fine-grained monotonic counter for timing short intervals, without a system call:
/// the CPU's time-stamp counter under the runtime, nanoseconds on the host. Its rate is
/// not given: relate it to [`clock_ns`] over a longer window.
pub fn ticks() -> u64 {
    backend::ticks()
}

/// Reads the file `name` of the agent's own container from byte `offset` into `buf`.
///
/// Returns the bytes copied, 0 at (or past) the end of the file. At most
/// [`plinth_abi::MAX_IO`] bytes are read per call (a longer `buf` is only partly filled);
/// [`config::read`] reads a whole small file. Errors: [`Error::NotFound`] if there is no
/// such file.
pub fn config_read(name: &str, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
    let len = buf.len().min(MAX_IO as usize);
    backend::config_read(name, offset, &mut buf[..len])
}

/// Size of the partition's data disk, sectors of [`plinth_abi::SECTOR_SIZE`] bytes.
/// Errors: [`Error::NoDisk`] if the partition has none.
pub fn disk_sectors() -> Result<u64, Error> {
    backend::disk_sectors()
}

/// Reads whole sectors starting at `sector` into `buf`; returns the bytes read.
///
/// Errors: [`Error::BadLength`] unless `buf.len()` is a multiple of
/// [`plinth_abi::SECTOR_SIZE`] and at most [`plinth_abi::MAX_IO`];
/// [`Error::OutOfRange`] if any sector lies past the end of the disk;
/// [`Error::NoDisk`]; [`Error::Io`].
pub fn disk_read(sector: u64, buf: &mut [u8]) -> Result<usize, Error> {
    backend::disk_read(sector, buf)
}

/// Writes whole sectors starting at `sector` from `buf`; returns the bytes written.
/// Same rules and errors as [`disk_read`]. Durable only after [`disk_flush`].
pub fn disk_write(sector: u64, buf: &[u8]) -> Result<usize, Error> {
    backend::disk_write(sector, buf)
}

/// Makes every completed [`disk_write`] durable.
pub fn disk_flush() -> Result<(), Error> {
    backend::disk_flush()
}

/// Maps `bytes` more zeroed, page-aligned memory, charged to the partition's quota
/// (whole pages); the memory is the agent's until it exits (there is no free).
///
/// Errors: [`Error::Invalid`] for 0 bytes; [`Error::QuotaExceeded`] past the quota.
pub fn mem_grow(bytes: u64) -> Result<&'static mut [u8], Error> {
    backend::mem_grow(bytes)
}

/// Unchecked access to the system-call interface, for the `hostile` test agent only.
pub mod raw {
    /// Makes system call `n` with arguments `a` (in `rdi`, `rsi`, `rdx`, `r10`, `r8`) and
    /// returns `rax` untouched.
    ///
    /// Nothing is checked on this side: this exists so a test agent can hand the runtime
    /// null, kernel, unmapped and overflowing pointers and unknown numbers, and see each
    /// refused. **Not sound in general**: a valid pointer into the agent's own memory lets
    /// the runtime write over memory Rust believes is borrowed elsewhere. Ordinary agents
    /// use the typed functions of the crate root.
    ///
    /// On the host there is no runtime to validate pointers: unknown numbers return
    /// [`Error::UnknownCall`](crate::Error::UnknownCall)'s code, calls that take pointers
    /// (log, config_read, disk_read, disk_write) return
    /// [`Error::BadPointer`](crate::Error::BadPointer)'s, and the others run on the std
    /// backend (mem_grow returning the address).
    pub fn syscall5(n: u64, a: [u64; 5]) -> u64 {
        crate::backend::syscall5(n, a)
    }
}

/// Declares the agent's entry function: `hostshim::entry!(run);` with `fn run() -> i32`.
///
/// The function's result is the agent's exit code (0 success, anything else a failure),
/// passed to [`exit`]. Name it anything but `main`: on the host `entry!` defines the
/// process's `fn main` itself, which calls yours.
///
/// - **Target**: defines `#[unsafe(no_mangle)] pub extern "C" fn _start() -> !` (the ELF
///   entry point of `agent.ld`) and the `#[panic_handler]`, which logs
///   `panic: <message> at <file>:<line>` and exits with code 101.
///
///   **Entry convention**: the runtime enters `_start` in ring 3 as if it had been
///   called: `RSP ≡ 8 (mod 16)`, pointing at a (zero) return-address slot near
///   [`plinth_abi::STACK_TOP`], so the System V ABI holds and `_start` is an ordinary
///   `extern "C"` function whose prologue the compiler writes. `_start` never returns;
///   `RBP` should be 0 (the end of frame-pointer chains). No arguments are passed. The
///   image's `.bss` arrives zeroed (the runtime maps it so) and nothing needs
///   initialising before Rust code runs.
/// - **Host**: defines `fn main()`, which starts the clock, calls the entry function and
///   exits with its result. Panics are std's (message on stderr, exit code 101).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::__entry!($main);
    };
}

#[cfg(not(feature = "host"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __entry {
    ($main:path) => {
        /// The agent's ELF entry point; see `hostshim::entry!` for how it is entered.
        #[unsafe(no_mangle)]
        pub extern "C" fn _start() -> ! {
            let agent: fn() -> i32 = $main;
            $crate::exit(agent())
        }

        #[panic_handler]
        fn __hostshim_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::__private::panic(info)
        }
    };
}

#[cfg(feature = "host")]
#[doc(hidden)]
#[macro_export]
macro_rules! __entry {
    ($main:path) => {
        fn main() {
            let agent: fn() -> i32 = $main;
            $crate::__private::start();
            $crate::exit(agent())
        }
    };
}

/// What [`entry!`] expands to calls; not part of the API.
#[doc(hidden)]
pub mod __private {
    /// Logs the panic and exits with 101 (the code std uses for a panicking `main`).
    #[cfg(not(feature = "host"))]
    pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        match info.location() {
            Some(at) => crate::logf!("panic: {} at {}:{}", info.message(), at.file(), at.line()),
            None => crate::logf!("panic: {}", info.message()),
        }
        crate::exit(101)
    }

    /// Starts the host clock, so [`crate::clock_ns`] counts from the agent's start.
    #[cfg(feature = "host")]
    pub fn start() {
        crate::host::start();
    }
}
