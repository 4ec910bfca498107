//! End-to-end tests of the foundation: boot, memory, time, faults, console.
//! Each test boots the real kernel in QEMU (TCG) and reads its serial console.

use plinth_tests::{Boot, ExitCode, Runtime};

fn boot(args: &str) -> Runtime {
    Boot::with_args(args).start()
}

fn banner_mib(rt: &mut Runtime) -> u64 {
    let line = rt.expect_line("booting: memory: ").text;
    let after = &line[line.find("memory: ").unwrap() + 8..];
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn banner_reports_memory_size_and_ready_appears_once() {
    for mib in [128u32, 320] {
        let mut rt = Boot {
            memory_mib: mib,
            ..Boot::default()
        }
        .start();
        assert_eq!(banner_mib(&mut rt), u64::from(mib), "banner for -m {mib}");
        let ready = rt.expect_ready();
        assert!(
            ready.text.contains(&format!("memory {mib} MiB")),
            "{}",
            ready.text
        );
        rt.send("status");
        let status = rt.expect_line("status: uptime");
        // The runtime's wall clock is the RTC QEMU sets from the host's (UTC).
        let host = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let unix: u64 = status
            .text
            .split("unix time ")
            .nth(1)
            .and_then(|t| t.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no unix time: {}", status.text));
        assert!(host.abs_diff(unix) <= 120, "unix time {unix}, host {host}");
        rt.shutdown();
        let t = rt.transcript();
        assert_eq!(
            t.lines().filter(|l| l.starts_with("plinth: ready")).count(),
            1,
            "{t}"
        );
    }
}

/// `name=micros` pairs of a `boot: ...` step line.
fn steps(line: &str, prefix: &str) -> Vec<(String, u64)> {
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    rest.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn boot_steps_are_timed_and_add_up_to_the_init_time() {
    let mut rt = boot("");
    let ready = rt.expect_ready().text;
    let init = &ready[ready.find("init ").unwrap() + 5..];
    let init_us = (init
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1e3) as u64;
    let init_steps = steps(
        &rt.expect_line("boot: steps (us):").text,
        "boot: steps (us):",
    );
    let names: Vec<&str> = init_steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["console", "cpu", "bootinfo", "memory", "clock", "selftests"]
    );
    // The steps run from kernel entry to just before the ready line's clock read.
    let sum: u64 = init_steps.iter().map(|(_, us)| us).sum();
    assert!(
        sum <= init_us && init_us - sum < 500,
        "steps {init_steps:?} sum to {sum} us, init {init_us} us"
    );
    let after = steps(
        &rt.expect_line("boot: after ready (us):").text,
        "boot: after ready (us):",
    );
    let names: Vec<&str> = after.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["devices", "network", "catalog", "partitions"]);
    rt.shutdown();
}

#[test]
fn microvm_profile_boots() {
    let mut rt = Boot {
        profile: "microvm",
        ..Boot::default()
    }
    .start();
    assert_eq!(banner_mib(&mut rt), 128);
    rt.expect_ready();
    rt.shutdown();
}

#[test]
fn frame_allocator_heap_and_mem_function_selftests_pass() {
    let mut rt = boot("selftest=frames,heap,mem");
    let frames = rt.expect_line("selftest frames:").text;
    assert!(frames.contains("selftest frames: ok"), "{frames}");
    let heap = rt.expect_line("selftest heap:").text;
    assert!(heap.contains("selftest heap: ok"), "{heap}");
    // The kernel's own memcpy/memmove/memset/memcmp (arch::mem) against byte loops.
    let mem = rt.expect_line("selftest mem:").text;
    assert!(mem.contains("selftest mem: ok"), "{mem}");
    rt.expect_ready();
    rt.shutdown();
}

#[test]
fn clock_runs_at_host_wall_clock_rate() {
    let mut rt = boot("selftest=clock");
    rt.expect_ready();
    rt.expect_line("clock: TSC rate refined over 1 s");
    let mut marks = Vec::new();
    for i in 0..9 {
        let line = rt.expect_line(&format!("selftest clock: mark {i} at "));
        let ns: f64 = line
            .text
            .split(" at ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        marks.push((line.at, ns));
    }
    rt.expect_line("selftest clock: done");
    let (first, last) = (marks[0], marks[8]);
    let host = last.0.duration_since(first.0).as_secs_f64();
    let guest = (last.1 - first.1) / 1e9;
    assert!(
        guest >= 1.9,
        "guest clock advanced only {guest:.3} s over its own 2 s of marks"
    );
    let ratio = guest / host;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "guest {guest:.4} s vs host {host:.4} s (ratio {ratio:.4})"
    );
    rt.shutdown();
}

/// Boots a fault self-test and returns the transcript after checking the exit code.
fn fault(selftest: &str, code: ExitCode) -> String {
    let mut rt = boot(&format!("selftest={selftest}"));
    // The crash report follows everything init logged, its deferred lines included.
    let banner = rt.expect_line("booting: memory: ").text;
    assert!(
        banner.contains(&format!("cmdline \"selftest={selftest}\"")),
        "{banner}"
    );
    rt.expect_line(" regions, heap ");
    rt.expect_line("clock: TSC ");
    rt.expect_line(&format!("selftest {selftest}: triggering"));
    rt.expect_exit(code);
    let t = rt.transcript();
    assert!(
        !t.contains("plinth: ready"),
        "ready printed before a boot self-test fault:\n{t}"
    );
    assert!(
        t.contains(&format!("plinth: stopped: {}", code_word(code))),
        "{t}"
    );
    t
}

fn code_word(code: ExitCode) -> &'static str {
    match code {
        ExitCode::Fault => "fault",
        ExitCode::Panic => "panic",
        ExitCode::OutOfMemory => "out of memory",
        _ => unreachable!(),
    }
}

#[test]
fn page_fault_reports_address_and_error_code() {
    let t = fault("pagefault", ExitCode::Fault);
    assert!(t.contains("FAULT: page fault (#PF, vector 14)"), "{t}");
    assert!(t.contains("error=0x0 cr2=0x0000000000000010"), "{t}");
    assert!(
        t.contains("page fault: not present, read, kernel at 0x10"),
        "{t}"
    );
    assert!(
        t.contains("rip=0x00000000001"),
        "rip inside the kernel image:\n{t}"
    );
}

#[test]
fn general_protection_fault_is_reported() {
    let t = fault("gpfault", ExitCode::Fault);
    assert!(
        t.contains("FAULT: general protection fault (#GP, vector 13)"),
        "{t}"
    );
    assert!(
        t.contains("rax=0x8000000000000000"),
        "the non-canonical address is in rax:\n{t}"
    );
}

#[test]
fn invalid_opcode_is_reported() {
    let t = fault("ud", ExitCode::Fault);
    assert!(t.contains("FAULT: invalid opcode (#UD, vector 6)"), "{t}");
}

#[test]
fn kernel_text_is_read_only() {
    let t = fault("writetext", ExitCode::Fault);
    assert!(t.contains("FAULT: page fault (#PF, vector 14)"), "{t}");
    assert!(t.contains("error=0x3"), "present + write:\n{t}");
    assert!(t.contains("protection violation, write, kernel"), "{t}");
}

#[test]
fn stack_overflow_hits_guard_page_and_double_faults_on_ist_stack() {
    let t = fault("stackoverflow", ExitCode::Fault);
    assert!(t.contains("FAULT: double fault (#DF, vector 8)"), "{t}");
    assert!(t.contains("kernel stack overflow: guard page at"), "{t}");
    assert!(
        t.contains("handler running on the IST double-fault stack"),
        "{t}"
    );
}

#[test]
fn panic_prints_location_and_message() {
    let t = fault("panic", ExitCode::Panic);
    assert!(t.contains("PANIC at kernel/src/selftest.rs:"), "{t}");
    assert!(t.contains(": deliberate panic (selftest)"), "{t}");
}

#[test]
fn heap_exhaustion_is_out_of_memory_not_a_hang() {
    let t = fault("oom", ExitCode::OutOfMemory);
    assert!(
        t.contains("OUT OF MEMORY: kernel heap could not allocate 1048576 bytes"),
        "{t}"
    );
}

#[test]
fn bad_command_line_options_are_reported_and_ignored() {
    let mut rt = boot("log=loud selftest=heap,bogus nosuchoption");
    rt.expect_line("cmdline: ignored BadValue \"log=loud\"");
    rt.expect_line("cmdline: ignored BadValue \"bogus\"");
    rt.expect_line("cmdline: ignored UnknownOption \"nosuchoption\"");
    rt.expect_line("selftest heap: ok");
    rt.expect_ready();
    rt.shutdown();
}

#[test]
fn log_level_filters_lines() {
    let mut rt = boot("log=warn");
    rt.expect_ready();
    rt.shutdown();
    let t = rt.transcript();
    assert!(
        !t.contains(" INFO "),
        "info lines printed at log=warn:\n{t}"
    );
    let mut rt = boot("log=debug");
    rt.expect_line(" INFO  plinth");
    rt.expect_ready();
    rt.shutdown();
}

#[test]
fn console_rejects_unknown_and_overlong_commands() {
    let mut rt = boot("");
    rt.expect_ready();
    rt.send("frobnicate");
    rt.expect_line("unknown command \"frobnicate\"");
    rt.send(&"x".repeat(500));
    rt.expect_line("command too long");
    rt.send("\u{1b}[A\u{7f}\u{0}");
    rt.send("help");
    rt.expect_line("commands: status, disks,");
    rt.shutdown();
}
