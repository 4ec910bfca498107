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
