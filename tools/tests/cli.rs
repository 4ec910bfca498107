//! The `plinth` command as a user runs it.
//!
//! Each test first makes the machine ready for what it uses ([`ready`]): the `plinth`
//! binary would install QEMU and the target itself, but doing it here, once per test
//! binary and under the set-up lock, keeps that out of the commands' output and fails
//! the test with the missing package's name if it cannot be installed.

use std::process::Command;

use plinth::setup::{FDISK, Need, QEMU_IMG, SGDISK};

/// Installs what is missing of `needs` (or fails the test saying what and how).
fn ready(needs: &[Need]) {
    plinth::setup::ensure(needs).unwrap_or_else(|e| panic!("{e}"));
}

/// What booting takes: the default profile's QEMU and firmware, and the target the
/// kernel and agents are built for.
fn machine() -> Vec<Need> {
    let q35 = plinth::profile::Profile::load("q35").unwrap_or_else(|e| panic!("{e}"));
    let mut needs = plinth::setup::qemu_needs(&q35);
    needs.push(plinth::setup::target_need());
    needs
}

#[test]
fn run_exit_on_ready_boots_prints_banner_and_exits_zero() {
    ready(&machine());
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
    // With no disk given, `run` builds and boots the default appliance.
    assert!(
        stdout.contains("catalog: verified appliance default 0.1.0 on blk0"),
        "{stdout}"
    );
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
    ready(&machine());
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
    ready(&machine());
    // Small sizes: this checks the commands work end to end, not how fast.
    let boot = bench_json(&["bench", "boot", "-n", "2"]);
    assert!(
        boot["kernel_init"]["median_ms"].as_f64().unwrap() > 0.0,
        "{boot}"
    );
    let names = |key: &str| -> Vec<String> {
        boot[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[0].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("steps"),
        ["console", "cpu", "bootinfo", "memory", "clock", "selftests"],
        "{boot}"
    );
    assert_eq!(
        names("after_ready"),
        ["devices", "network", "catalog", "partitions"],
        "{boot}"
    );
    assert_eq!(boot["samples"].as_array().unwrap().len(), 2, "{boot}");
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
    // The Linux baseline: its figures, the runtime's at its shape, the ratios.
    let linux = &blk["linux"];
    for figure in ["seq_write_mib_s", "seq_write_flushed_mib_s"] {
        assert!(linux[figure]["median"].as_f64().unwrap() > 0.0, "{blk}");
    }
    assert!(
        linux["flush_ms"]["median"].as_f64().unwrap() >= 0.0,
        "{blk}"
    );
    assert_eq!(linux["samples"].as_array().unwrap().len(), 1, "{blk}");
    let workload = linux["workload"].as_str().unwrap();
    assert!(
        workload.starts_with("4 MiB in 1 MiB O_DIRECT") && workload.contains("fdatasync"),
        "{blk}"
    );
    assert!(
        linux["kernel"]
            .as_str()
            .unwrap()
            .starts_with("linux-image-"),
        "{blk}"
    );
    assert_eq!(blk["plinth_qd1"]["depth"], 1, "{blk}");
    assert_eq!(blk["plinth_qd1"]["request_kib"], 1024, "{blk}");
    assert_eq!(blk["plinth_qd1"]["same_runs_as_main"], false, "{blk}");
    assert!(
        blk["plinth_qd1"]["seq_write_flushed_mib_s"]["median"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{blk}"
    );
    for ratio in ["main", "qd1"] {
        assert!(
            blk["plinth_over_linux"][ratio].as_f64().unwrap() > 0.0,
            "{blk}"
        );
    }
    // Both on one QEMU command line: only the guest's kernel, its arguments, its
    // initrd and each run's own image differ.
    let common = |args: &serde_json::Value| -> Vec<String> {
        let mut out = Vec::new();
        let mut it = args.as_array().unwrap().iter().map(|a| a.as_str().unwrap());
        while let Some(a) = it.next() {
            match a {
                "-initrd" => {
                    it.next();
                }
                "-kernel" | "-append" => {
                    it.next();
                    out.extend([a.to_string(), "<each its own>".into()]);
                }
                _ if a.starts_with("file=") => {
                    out.push(format!(
                        "file=<image>{}",
                        &a[a.find(',').unwrap_or(a.len())..]
                    ));
                }
                _ => out.push(a.to_string()),
            }
        }
        out
    };
    assert_eq!(
        common(&blk["qemu_args"]),
        common(&linux["qemu_args"]),
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
    // Idle means halted between the 100 Hz ticks: QEMU then uses a few percent of a core
    // (0 to 4% per 0.5 s window here, in steps of 2% as /proc counts 10 ms ticks). A
    // runtime that polled instead of halting keeps QEMU's vCPU thread busy: near 100%.
    // Under 20% tells the two apart with room for a slower host's timer work.
    assert!(
        pct < 20.0,
        "an idle runtime kept QEMU {pct:.1}% busy: {idle}"
    );

    let image = bench_json(&["bench", "image", "-n", "2"]);
    assert_eq!(image["build_ms"].as_array().unwrap().len(), 2, "{image}");
    assert!(image["median_build_ms"].as_f64().unwrap() > 0.0, "{image}");
    assert_eq!(image["agents"], 5, "{image}"); // hello, scrubber, spinner, hostile, echo
}

fn plinth(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(args)
        .output()
        .expect("plinth runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("plinth-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a tool the test made [`ready`] (found in sbin too), which must succeed.
fn run_tool(cmd: &str, args: &[&str]) -> String {
    let path = plinth::setup::command_path(cmd).unwrap_or_else(|| panic!("{cmd} not found"));
    let out = Command::new(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {:?}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn policy_check_reports_every_mistake_with_its_position() {
    let d = tmp_dir("policy");
    let bad = d.join("tenants.toml");
    // Three mistakes: a VLAN ID out of range, an unknown key, a tenant on a missing pool.
    std::fs::write(
        &bad,
        "kind = \"tenants\"\n\
         [[pool]]\n\
         name = \"p\"\n\
         ranges = [\"100-5000\"]\n\
         [[tenant]]\n\
         name = \"acme\"\n\
         vlan = 10\n\
         colour = \"red\"\n\
         [[tenant]]\n\
         name = \"globex\"\n\
         pool = \"nosuch\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = plinth(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let f = bad.display().to_string();
    assert!(lines[0].starts_with(&format!("{f}:4:11: ")), "{stdout}");
    assert!(
        lines[1].starts_with(&format!("{f}:8:1: unknown key `colour`")),
        "{stdout}"
    );
    assert!(lines[2].starts_with(&format!("{f}:11:8: ")), "{stdout}");
    assert!(lines[2].contains("nosuch"), "{stdout}");
    assert!(stderr.contains("3 problems"), "{stderr}");

    // The default appliance's spec with its policies and agents is clean.
    let (code, stdout, stderr) =
        plinth(&["policy", "check", &repo("tools/appliance/appliance.toml")]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("ok: 5 files (appliance default 0.1.0)"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn image_build_writes_a_gpt_disk_that_standard_tools_list() {
    // Agents are built for the target; the image is checked with gdisk, fdisk and qemu-img.
    ready(&[plinth::setup::target_need(), SGDISK, FDISK, QEMU_IMG]);
    let d = tmp_dir("image");
    let raw = d.join("appliance.img");
    let spec = repo("tools/appliance/appliance.toml");
    let key = repo("tools/appliance/keys/dev.key");
    // The default appliance's agents are built from hostshim's examples first.
    let (code, stdout, stderr) = plinth(&["agent", "build"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("bin/hostile"), "{stdout}");
    let (code, stdout, stderr) = plinth(&[
        "image",
        "build",
        &spec,
        "-o",
        raw.to_str().unwrap(),
        "--key",
        &key,
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("5 GPT partitions"), "{stdout}");

    let listing = run_tool("sgdisk", &["-p", raw.to_str().unwrap()]);
    for (name, start, end) in [
        ("plinth-catalog", 2048, 4095),
        ("plinth-state", 4096, 8191),
        ("mgmt", 8192, 24575),
        ("tenant-a", 24576, 57343),
        ("tenant-b", 57344, 90111),
    ] {
        assert!(
            listing.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() >= 2
                    && w[1] == start.to_string()
                    && w[2] == end.to_string()
                    && w.last() == Some(&name)
            }),
            "{name} {start}-{end} not in:\n{listing}"
        );
    }
    let verify = run_tool("sgdisk", &["-v", raw.to_str().unwrap()]);
    assert!(verify.contains("No problems found"), "{verify}");
    let fdisk = run_tool("fdisk", &["-l", raw.to_str().unwrap()]);
    assert!(fdisk.contains("Disklabel type: gpt"), "{fdisk}");
    assert_eq!(
        fdisk
            .lines()
            .filter(|l| l.contains("appliance.img"))
            .count(),
        6,
        "{fdisk}"
    );

    let (code, report, _) = plinth(&["image", "inspect", raw.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("verified"), "{report}");
    assert!(report.contains("hello 0.1.0"), "{report}");
    assert!(report.contains("tenant globex on VLAN 101"), "{report}");

    // qcow2 through qemu-img, and inspect reads it back the same.
    let qcow = d.join("appliance.qcow2");
    let (code, stdout, stderr) = plinth(&[
        "image",
        "build",
        &spec,
        "-o",
        qcow.to_str().unwrap(),
        "--key",
        &key,
        "--format",
        "qcow2",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let info = run_tool("qemu-img", &["info", qcow.to_str().unwrap()]);
    assert!(info.contains("file format: qcow2"), "{info}");
    let (code, q_report, _) = plinth(&["image", "inspect", qcow.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{q_report}");
    assert!(
        q_report.ends_with(&report[report.find("catalog:").unwrap()..]),
        "{q_report}"
    );

    // A flipped byte in the catalog: inspect says so and fails.
    let mut bytes = std::fs::read(&raw).unwrap();
    bytes[2048 * 512 + 512 + 300] ^= 0x40;
    std::fs::write(&raw, &bytes).unwrap();
    let (code, report, _) = plinth(&["image", "inspect", raw.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("catalog: INVALID: catalog checksum mismatch"),
        "{report}"
    );

    // Without the key, directory agents cannot be signed: a clear error.
    let (code, _, stderr) = plinth(&["image", "build", &spec, "-o", raw.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("must be signed: give --key"), "{stderr}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn partition_benchmarks_report_their_figures() {
    ready(&machine());
    let s = bench_json(&["bench", "syscall", "-n", "1"]);
    let null = s["null_syscall_ns"]["median"].as_f64().unwrap();
    let switch = s["switch_ns"]["median"].as_f64().unwrap();
    // A round trip takes some time, and a switch (a yield, the scheduler and an
    // address-space change) more than a null call.
    assert!(null > 1.0 && switch > null, "{s}");
    // One object per call timed one by one, named for it, with a median and a p99 that
    // is no lower; a 4 KiB read from the disk waits on the device, so it costs more
    // than a heartbeat. (Figures are judged against targets by the report, not here.)
    for call in ["null", "heartbeat", "log64", "config_read64", "disk_read4k"] {
        let c = &s[call];
        let median = c["median_ns"].as_f64().unwrap_or(0.0);
        let p99 = c["p99_ns"].as_f64().unwrap_or(0.0);
        assert!(median > 1.0 && p99 >= median, "{call}: {s}");
        assert!(c["samples"].as_u64().unwrap_or(0) > 0, "{call}: {s}");
        assert_eq!(c["waits_on_device"], call == "disk_read4k", "{call}: {s}");
    }
    assert!(
        s["disk_read4k"]["median_ns"].as_f64() > s["heartbeat"]["median_ns"].as_f64(),
        "{s}"
    );

    let d = bench_json(&["bench", "density", "-m", "128"]);
    let n = d["partitions"].as_u64().unwrap();
    // 128 MiB less the runtime's share, in 1 MiB quotas: dozens, and every one running.
    assert!(n >= 20, "{d}");
    assert!(
        d["refused"].as_str().unwrap().contains("not enough memory"),
        "{d}"
    );
    assert!(
        d["page_table_kib_per_partition"].as_f64().unwrap() >= 8.0,
        "{d}"
    );
    assert!(
        d["overhead_kib_per_partition"].as_f64().unwrap() > 0.0,
        "{d}"
    );
}

#[test]
fn bridge_benchmark_reports_forwarding_and_tcp_beside_linux() {
    ready(&machine());
    // Small sizes: the command end to end (lab, appliance, both guests), not speed.
    let b = bench_json(&[
        "bench",
        "bridge",
        "-n",
        "1",
        "--frames",
        "20000",
        "--host-frames",
        "20000",
        "--tcp-mib",
        "2",
    ]);
    let positive = |key: &str| b[key].as_f64().is_some_and(|v| v > 0.0);
    for key in [
        "forward_64b_fps",
        "forward_1500b_fps",
        "per_frame_us",
        "host_forward_64b_fps",
        "host_forward_1500b_fps",
        "tcp_peer_to_partition_mib_s",
        "tcp_partition_to_peer_mib_s",
        "tcp_peer_to_linux_mib_s",
        "tcp_linux_to_peer_mib_s",
        "tcp_peer_to_partition_over_linux",
        "tcp_partition_to_peer_over_linux",
    ] {
        assert!(positive(key), "{key}: {b}");
    }
    // per_frame_us is the 1500-byte figure, and frames/s its inverse.
    let us = b["per_frame_us"].as_f64().unwrap();
    let fps = b["forward_1500b_fps"].as_f64().unwrap();
    assert!((us * fps / 1e6 - 1.0).abs() < 1e-9, "{b}");
    assert_eq!(b["tcp_errors"], serde_json::json!([]), "{b}");
    // The partition and the Linux guest ran on the same machine line but for what
    // boots them and the runtime's appliance disk.
    let args = |side: &str| -> Vec<String> {
        serde_json::from_value(b["tcp"][side]["qemu_args"].clone()).unwrap()
    };
    let machine_part = |a: Vec<String>| -> Vec<String> {
        a.into_iter()
            .take_while(|x| x != "-kernel")
            .collect::<Vec<_>>()
    };
    assert_eq!(
        machine_part(args("plinth")),
        machine_part(args("linux")),
        "{b}"
    );
}
