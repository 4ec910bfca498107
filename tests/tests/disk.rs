//! The runtime's virtio disk, end to end: the host makes an image, the runtime reads,
//! checksums and writes it, and the host reads the result back from the image file.

use std::path::PathBuf;

use plinth::profile::Disk;
use plinth_diskcheck::{Fnv1a, fill};
use plinth_tests::Boot;

const SECTOR: u64 = 512;

/// A fresh image in the test's own temporary directory.
fn image(name: &str, sectors: u64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plinth-disk-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(sectors * SECTOR).unwrap();
    path
}

fn boot_with(path: &std::path::Path, serial: &str) -> plinth_tests::Runtime {
    Boot {
        disk: Some(Disk {
            image: path.to_path_buf(),
            serial: serial.into(),
        }),
        ..Boot::default()
    }
    .start()
}

fn pattern(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(seed, offset, &mut v);
    v
}

#[test]
fn disk_capacity_and_serial_match_the_image() {
    // An odd size, so a hard-coded capacity could not pass.
    let path = image("odd.img", 6001);
    let mut rt = boot_with(&path, "odd-serial-42");
    // Devices are bound right after `ready`, before the first command is read.
    rt.expect_ready();
    rt.expect_line("blk0: virtio-blk at 00:");
    rt.send("disks");
    let l = rt.expect_line("disk blk0:");
    assert!(l.text.contains("6001 sectors"), "{}", l.text);
    assert!(l.text.contains("serial \"odd-serial-42\""), "{}", l.text);
    rt.shutdown();
}

#[test]
fn host_pattern_is_read_and_runtime_writes_reach_the_image() {
    let sectors = 4096;
    let path = image("roundtrip.img", sectors);
    std::fs::write(&path, pattern(11, 0, (sectors * SECTOR) as usize)).unwrap();
    let mut expected = Fnv1a::new();
    expected.update(&pattern(11, 0, 2048 * SECTOR as usize));

    let mut rt = boot_with(&path, "rt");
    rt.expect_ready();
    rt.send("disk sum 0 0 2048");
    let l = rt.expect_line("disk sum 0 0 2048:");
    assert!(
        l.text
            .ends_with(&format!("fnv1a64 {:016x}", expected.finish())),
        "runtime read something else than the host wrote: {}",
        l.text
    );
    rt.send("disk fill 0 100 300 22");
    rt.expect_line("disk fill 0 100 300 22: written and flushed");
    rt.shutdown();

    let data = std::fs::read(&path).unwrap();
    let (a, b) = (100 * SECTOR as usize, 400 * SECTOR as usize);
    assert!(
        data[..a] == pattern(11, 0, a)[..],
        "sectors before the write changed"
    );
    assert!(
        data[a..b] == pattern(22, a as u64, b - a)[..],
        "written sectors differ"
    );
    assert!(
        data[b..] == pattern(11, b as u64, data.len() - b)[..],
        "sectors after the write changed"
    );
}

#[test]
fn flushed_writes_survive_sigkill_every_time() {
    let path = image("durable.img", 2048);
    for trial in 1..=3u64 {
        let mut rt = boot_with(&path, "durable");
        rt.expect_ready();
        let first = trial * 200;
        rt.send(&format!("disk fill 0 {first} 256 {trial}"));
        rt.expect_line(&format!(
            "disk fill 0 {first} 256 {trial}: written and flushed"
        ));
        // No shutdown: QEMU dies the way a power cut stops a machine.
        rt.kill();
        let data = std::fs::read(&path).unwrap();
        let (a, b) = ((first * SECTOR) as usize, ((first + 256) * SECTOR) as usize);
        assert!(
            data[a..b] == pattern(trial, a as u64, b - a)[..],
            "trial {trial}: acknowledged write missing from the image"
        );
    }
}

#[test]
fn bad_disk_requests_get_errors_and_the_runtime_carries_on() {
    let path = image("small.img", 64);
    let mut rt = boot_with(&path, "small");
    rt.expect_ready();
    for (cmd, answer) in [
        ("disk sum 0 60 5", "error: sectors outside the disk"),
        (
            "disk sum 0 18446744073709551615 2",
            "error: sectors outside the disk",
        ),
        ("disk fill 0 64 1 3", "error: sectors outside the disk"),
        ("disk sum 7 0 1", "error: no such disk"),
        ("disk sum 0 0", "usage: disk sum"),
        ("disk sum zero 0 1", "usage: disk sum"),
        ("disk fill 0 0 1 2 3", "usage: disk sum"),
        ("disk erase 0", "usage: disk sum"),
    ] {
        rt.send(cmd);
        rt.expect_line(answer);
    }
    // Still serving, and nothing was written.
    rt.send("disk sum 0 0 64");
    let mut zero = Fnv1a::new();
    zero.update(&vec![0u8; 64 * SECTOR as usize]);
    rt.expect_line(&format!("fnv1a64 {:016x}", zero.finish()));
    rt.shutdown();
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn bench_blk_reports_figures_and_writes_only_its_region() {
    // 8 MiB region on a 12 MiB image the host filled with a pattern.
    let sectors = 12 * 2048;
    let path = image("bench.img", sectors);
    std::fs::write(&path, pattern(5, 0, (sectors * SECTOR) as usize)).unwrap();
    let mut rt = boot_with(&path, "bench");
    rt.expect_ready();
    let l = rt.expect_line("blk0: virtio-blk");
    assert!(l.text.ends_with(", MSI-X"), "{}", l.text);
    for (cmd, answer) in [
        ("bench blk 3", "bench blk 3: error: no such disk"),
        (
            "bench blk 0 64",
            "bench blk 0: error: sectors outside the disk",
        ),
        ("bench blk 0 8 1048576", "need more than half the free heap"),
        ("bench blk 0 8 0", "usage: bench blk N"),
        ("bench blk 0 8 256 0", "usage: bench blk N"),
        ("bench blk", "usage: bench blk N"),
        ("bench net", "usage: bench blk N"),
        ("bench blk 0 8 256 4 100 9", "usage: bench blk N"),
    ] {
        rt.send(cmd);
        rt.expect_line(answer);
    }
    rt.send("bench blk 0 8 256 4 200");
    let line = rt.expect_line("bench blk 0: region=").text;
    let figures = plinth::bench::parse_blk_line(&line).unwrap_or_else(|| panic!("{line}"));
    assert!(
        figures.seq_write_mib_s > 0.0 && figures.seq_read_mib_s > 0.0,
        "{line}"
    );
    assert!(figures.rand_read_iops > 0.0, "{line}");
    rt.shutdown();

    // The benchmark's writes reached the image (its buffers hold 0x5a ^ slot), and
    // nothing past its 8 MiB region changed.
    let data = std::fs::read(&path).unwrap();
    let region = 8 << 20;
    assert!(
        data[..region].iter().all(|&b| (0x58..=0x5f).contains(&b)),
        "the region does not hold what the benchmark wrote"
    );
    assert!(
        data[region..] == pattern(5, region as u64, data.len() - region)[..],
        "sectors past the benchmark region changed"
    );
}

/// A profile like q35 whose virtio functions offer no MSI-X (`vectors=0`), so the
/// runtime must fall back to the shared INTx lines.
fn intx_profile() -> &'static str {
    let q35 = std::fs::read_to_string(plinth::repo_root().join("qemu/q35.toml")).unwrap();
    let text = q35
        .replace("virtio-blk-pci,", "virtio-blk-pci,vectors=0,")
        .replace("virtio-net-pci,", "virtio-net-pci,vectors=0,");
    assert_ne!(text, q35);
    let dir = std::env::temp_dir().join(format!("plinth-disk-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("q35-intx.toml");
    std::fs::write(&path, text).unwrap();
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}

#[test]
fn devices_without_msix_work_on_intx() {
    let sectors = 4096;
    let path = image("intx.img", sectors);
    std::fs::write(&path, pattern(9, 0, (sectors * SECTOR) as usize)).unwrap();
    let mut rt = Boot {
        profile: intx_profile(),
        disk: Some(Disk {
            image: path.clone(),
            serial: "intx".into(),
        }),
        nic: true,
        ..Boot::default()
    }
    .start();
    rt.expect_ready();
    for dev in ["blk0: virtio-blk", "net0: virtio-net"] {
        let l = rt.expect_line(dev);
        assert!(l.text.ends_with(", INTx"), "{}", l.text);
    }
    let addr = rt.expect_api();
    let mut expected = Fnv1a::new();
    expected.update(&pattern(9, 0, 4096 * SECTOR as usize));
    rt.send("disk sum 0 0 4096");
    let l = rt.expect_line("disk sum 0 0 4096:");
    assert!(
        l.text
            .ends_with(&format!("fnv1a64 {:016x}", expected.finish())),
        "{}",
        l.text
    );
    // The NIC and the disk share the INTx lines: both keep working together.
    let mut api =
        plinth::api::KeepAlive::connect(addr, std::time::Duration::from_secs(10)).unwrap();
    for i in 0..20 {
        assert_eq!(
            api.get("/api/v1/health").unwrap().status,
            200,
            "request {i}"
        );
        if i % 5 == 0 {
            rt.send("disk fill 0 0 64 3");
            rt.expect_line("disk fill 0 0 64 3: written and flushed");
        }
    }
    rt.shutdown();
}

#[test]
fn microvm_drives_virtio_mmio_disk_and_nic() {
    let sectors = 2048;
    let path = image("microvm.img", sectors);
    std::fs::write(&path, pattern(13, 0, (sectors * SECTOR) as usize)).unwrap();
    let mut rt = Boot {
        profile: "microvm",
        disk: Some(Disk {
            image: path.clone(),
            serial: "mmio-disk".into(),
        }),
        nic: true,
        ..Boot::default()
    }
    .start();
    rt.expect_ready();
    let blk = rt.expect_line("blk0: virtio-blk at mmio@0x").text;
    assert!(blk.contains("serial \"mmio-disk\""), "{blk}");
    assert!(blk.contains(", IRQ "), "{blk}");
    let net = rt.expect_line("net0: virtio-net at mmio@0x").text;
    assert!(net.contains(", IRQ "), "{net}");
    let addr = rt.expect_api();

    let mut expected = Fnv1a::new();
    expected.update(&pattern(13, 0, 1024 * SECTOR as usize));
    rt.send("disk sum 0 0 1024");
    let l = rt.expect_line("disk sum 0 0 1024:");
    assert!(
        l.text
            .ends_with(&format!("fnv1a64 {:016x}", expected.finish())),
        "{}",
        l.text
    );
    rt.send("disk fill 0 1024 512 14");
    rt.expect_line("disk fill 0 1024 512 14: written and flushed");

    let s =
        plinth::api::get_json(addr, "/api/v1/status", std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(s["disks"][0]["capacity_bytes"], sectors * SECTOR, "{s}");
    assert!(
        s["disks"][0]["location"]
            .as_str()
            .unwrap()
            .starts_with("mmio@0x"),
        "{s}"
    );
    assert!(
        s["nics"][0]["location"]
            .as_str()
            .unwrap()
            .starts_with("mmio@0x"),
        "{s}"
    );
    rt.shutdown();

    let data = std::fs::read(&path).unwrap();
    let (a, b) = (1024 * SECTOR as usize, 1536 * SECTOR as usize);
    assert!(
        data[a..b] == pattern(14, a as u64, b - a)[..],
        "write missing"
    );
    assert!(data[..a] == pattern(13, 0, a)[..], "sectors before changed");
}
