//! The `plinth` command as a user runs it.

use std::process::Command;

#[test]
fn run_exit_on_ready_boots_prints_banner_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args([
            "run",
            "--exit-on-ready",
            "--memory",
            "192",
            "--api-port",
            &free_port(),
        ])
        .output()
        .expect("plinth runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("booting: memory: 192 MiB"), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("plinth: ready"))
            .count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("plinth: shutting down"), "{stdout}");
}

#[test]
fn run_reports_a_runtime_fault_as_failure() {
    let out = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args([
            "run",
            "--append",
            "selftest=panic",
            "--timeout",
            "60",
            "--api-port",
            &free_port(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("plinth runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("runtime stopped: runtime exit `panic`"),
        "{stderr}"
    );
}

#[test]
fn unknown_profile_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["run", "--profile", "nosuch", "--kernel", "/nonexistent"])
        .output()
        .expect("plinth runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown machine profile `nosuch`"),
        "{stderr}"
    );
}

/// A port free on 127.0.0.1 now, so parallel runs do not fight over the default 8080.
fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

/// Runs `plinth ARGS… --json` and returns its JSON report (panicking with the output if
/// it fails).
fn bench_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(args)
        .arg("--json")
        .output()
        .expect("plinth runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{stdout}"))
}

#[test]
fn bench_commands_report_figures_and_their_qemu_command_line() {
    // Small sizes: this checks the commands work end to end, not how fast.
    let blk = bench_json(&[
        "bench",
        "blk",
        "-n",
        "1",
        "--region-mib",
        "4",
        "--request-kib",
        "256",
        "--random-reads",
        "50",
    ]);
    assert!(
        blk["seq_read_mib_s"]["median"].as_f64().unwrap() > 0.0,
        "{blk}"
    );
    assert!(
        blk["rand_read_iops"]["median"].as_f64().unwrap() > 0.0,
        "{blk}"
    );
    assert_eq!(blk["samples"].as_array().unwrap().len(), 1, "{blk}");
    assert!(
        blk["qemu_args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("virtio-blk-pci")),
        "{blk}"
    );

    let net = bench_json(&[
        "bench",
        "net",
        "-n",
        "1",
        "--mib",
        "2",
        "--health-secs",
        "0.3",
        "--connections",
        "2",
    ]);
    assert_eq!(net["bytes_per_run"], 2 << 20, "{net}");
    assert!(
        net["runtime_to_host"]["median_mib_s"].as_f64().unwrap() > 0.0,
        "{net}"
    );
    assert!(
        net["host_to_runtime"]["median_mib_s"].as_f64().unwrap() > 0.0,
        "{net}"
    );
    assert!(net["health"]["requests"].as_u64().unwrap() > 0, "{net}");
    assert!(
        net["qemu_args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "bench"),
        "{net}"
    );

    let idle = bench_json(&["bench", "idle", "-n", "1", "--seconds", "0.5"]);
    let pct = idle["median_cpu_percent"].as_f64().unwrap();
    assert!((0.0..=200.0).contains(&pct), "{idle}");
}
