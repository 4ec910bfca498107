//! The appliance catalog end to end: an image built by `plinth image build`, booted, and
//! the runtime's `GET /api/v1/catalog` compared with the spec it was built from; then
//! images the runtime must refuse, with the runtime staying up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plinth::api;
use plinth::image::{self, Format};
use plinth::profile::Disk;
use plinth_policy::appliance::Appliance;
use plinth_tests::{Boot, Runtime};
use serde_json::Value;

const T: Duration = Duration::from_secs(10);

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plinth-catalog-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn root() -> PathBuf {
    plinth::repo_root()
}

/// Builds the repository's default appliance (its agents first) into `d`.
fn default_image(d: &Path) -> PathBuf {
    plinth::build::install_agents(&root().join(image::DEFAULT_AGENTS), true)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = d.join("appliance.img");
    image::build(
        &root().join(image::DEFAULT_SPEC),
        &out,
        Format::Raw,
        Some(&root().join(image::DEFAULT_KEY)),
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// Boots with `image` as the disk, waits for the line containing `catalog_line` (the
/// catalog is read before the API starts), then for the API.
fn boot(image: &Path, catalog_line: &str) -> (Runtime, SocketAddr, String) {
    let mut rt = Boot {
        disk: Some(Disk {
            image: image.to_path_buf(),
            serial: "appliance".into(),
        }),
        nic: true,
        ..Boot::default()
    }
    .start();
    rt.expect_ready();
    let line = rt.expect_line(catalog_line).text;
    let addr = rt.expect_api();
    (rt, addr, line)
}

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let r = api::get(addr, path, T).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let v = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("GET {path}: {e}: {:?}", String::from_utf8_lossy(&r.body)));
    (r.status, v)
}

/// The image's GPT, read on the host.
fn gpt(image: &Path) -> plinth_gpt::Table {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(image).unwrap();
    let len = f.metadata().unwrap().len();
    plinth_gpt::read(len / 512, |lba, buf: &mut [u8]| {
        f.seek(SeekFrom::Start(lba * 512))?;
        f.read_exact(buf)
    })
    .unwrap()
}

#[test]
fn the_default_appliance_boots_and_its_catalog_matches_the_spec() {
    let d = dir("default");
    let img = default_image(&d);
    let spec_text = std::fs::read_to_string(root().join(image::DEFAULT_SPEC)).unwrap();
    let spec = Appliance::parse(&spec_text, 0).unwrap();
    let table = gpt(&img);

    let (mut rt, addr, _) = boot(&img, "catalog: verified appliance default 0.1.0 on ");
    let (status, v) = get(addr, "/api/v1/catalog");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "verified");
    let c = &v["catalog"];
    assert_eq!(c["appliance"]["name"], spec.name.as_str());
    assert_eq!(c["appliance"]["version"], spec.version.to_string());
    assert_eq!(c["machine"]["memory_mib"], spec.machine.memory_mib);
    assert_eq!(c["machine"]["cpus"], spec.machine.cpus);

    let parts = c["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), spec.partitions.len());
    for (p, s) in parts.iter().zip(&spec.partitions) {
        assert_eq!(p["name"], s.name.as_str());
        assert_eq!(p["memory_mib"], s.memory_mib);
        assert_eq!(p["cpus"], s.cpus);
        assert_eq!(p["disk_mib"], s.disk_mib);
        assert_eq!(p["labels"], serde_json::json!(s.labels));
        // The runtime found the same extent on the disk as the host reads in the GPT.
        let g = table
            .find_by_name(&s.name)
            .expect("a data extent per partition");
        assert_eq!(p["disk"]["first_lba"], g.first_lba, "{}", s.name);
        assert_eq!(p["disk"]["sectors"], s.disk_mib * 2048, "{}", s.name);
    }

    let dev_pub = std::fs::read_to_string(root().join("tools/appliance/keys/dev.pub")).unwrap();
    let dev_hex = dev_pub.trim().strip_prefix("ed25519 ").unwrap();
    assert_eq!(c["keys"][0]["ed25519"], dev_hex);
    let agents: Vec<(String, String, String)> = c["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["version"].as_str().unwrap().to_string(),
                a["signer"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        agents,
        [
            ("hello".into(), "0.1.0".into(), dev_hex.to_string()),
            ("scrubber".into(), "0.1.0".into(), dev_hex.to_string()),
            ("spinner".into(), "0.1.0".into(), dev_hex.to_string()),
            ("hostile".into(), "0.1.0".into(), dev_hex.to_string()),
            ("echo".into(), "0.1.0".into(), dev_hex.to_string()),
        ]
    );

    let pol = &c["policies"];
    let deployments = pol["deployments"].as_array().unwrap();
    assert_eq!(deployments[0]["agent"], "hello");
    assert_eq!(deployments[0]["partitions"], serde_json::json!(["mgmt"]));
    assert_eq!(deployments[1]["agent"], "scrubber");
    assert_eq!(
        deployments[1]["partitions"],
        serde_json::json!(["tenant-a"])
    );
    let tenants: Vec<(String, u64)> = pol["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["vlan"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tenants, [("acme".into(), 100), ("globex".into(), 101)]);

    let (_, s) = get(addr, "/api/v1/status");
    assert_eq!(s["catalog"]["state"], "verified");
    assert_eq!(s["catalog"]["agents"], 5);
    // The tenants' partitions have their NICs on their VLANs.
    let (_, net) = get(addr, "/api/v1/network");
    assert_eq!(
        net["uplink"]["allowed"],
        serde_json::json!([100, 101]),
        "{net}"
    );
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}

/// Boots `img`, expects the catalog refused with `needle` in the error, and checks the
/// runtime stays up and answers.
fn expect_refused(img: &Path, needle: &str) {
    let (mut rt, addr, line) = boot(img, "catalog: INVALID on ");
    assert!(line.contains(needle), "{line}");
    let (status, v) = get(addr, "/api/v1/catalog");
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["state"], "invalid");
    assert_eq!(v["agents_started"], 0);
    assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    let (_, s) = get(addr, "/api/v1/status");
    assert_eq!(s["catalog"]["state"], "invalid");
    let (status, h) = get(addr, "/api/v1/health");
    assert_eq!((status, &h["status"]), (200, &Value::from("ok")));
    rt.shutdown();
}

#[test]
fn a_flipped_byte_in_the_catalog_leaves_the_runtime_up_with_nothing_started() {
    let d = dir("flipped");
    let img = default_image(&d);
    let part = gpt(&img)
        .find_by_type(&plinth_catalog::CATALOG_PARTITION_TYPE)
        .next()
        .cloned()
        .unwrap();
    // A byte in the payload, past the header: the spec's text.
    let mut bytes = std::fs::read(&img).unwrap();
    let at = (part.first_lba * 512 + 512 + 600) as usize;
    bytes[at] ^= 0x01;
    std::fs::write(&img, &bytes).unwrap();
    // The host tool sees the same.
    let i = image::inspect(&img).unwrap();
    assert!(!i.valid);
    assert!(
        i.report
            .contains("catalog: INVALID: catalog checksum mismatch"),
        "{}",
        i.report
    );

    expect_refused(&img, "catalog checksum mismatch");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_agent_signed_by_an_unknown_key_is_refused_at_boot() {
    let d = dir("unknown-key");
    let spec_text = r#"kind = "appliance"
name = "rogue"
version = "1.0.0"
trusted_keys = ["keys/dev.pub"]

[machine]
memory_mib = 256
cpus = 1

[[agent]]
file = "agents/hello-0.1.0.agent"

[[partition]]
name = "mgmt"
memory_mib = 32
cpus = 1
disk_mib = 1
"#;
    let spec = Appliance::parse(spec_text, 0).unwrap();
    let dev_pub = std::fs::read(root().join("tools/appliance/keys/dev.pub")).unwrap();
    // A well-formed container, signed, but by a key the appliance does not trust.
    let rogue_seed = [0x5a; 32];
    let manifest =
        std::fs::read_to_string(root().join("tools/appliance/agents/hello/manifest.toml")).unwrap();
    let agent = plinth_container::pack(
        &manifest,
        &[
            ("bin/hello", 0o755, b"#!/bin/sh\necho rogue\n"),
            ("etc/hello.toml", 0o644, b"greeting = \"x\"\n"),
        ],
        &rogue_seed,
    )
    .unwrap();
    let catalog = plinth_catalog::build(
        spec_text,
        &[
            ("keys/dev.pub", &dev_pub),
            ("agents/hello-0.1.0.agent", &agent),
        ],
    )
    .unwrap();
    let img = d.join("rogue.img");
    image::write_image(&img, &spec, &catalog).unwrap();
    let rogue_key = plinth_container::public_key(&rogue_seed).to_string();
    expect_refused(
        &img,
        &format!("signed by key {rogue_key}, which is not trusted"),
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_disk_without_a_catalog_is_reported_absent() {
    let d = dir("blank");
    let img = d.join("blank.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    let (mut rt, addr, _) = boot(&img, "catalog: none found (");
    let (status, v) = get(addr, "/api/v1/catalog");
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["state"], "absent");
    assert!(v["reason"].as_str().unwrap().contains("no GPT"), "{v}");
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}

/// The default appliance's catalog payload (the ustar archive), its spec parsed.
fn default_payload(d: &Path) -> (Vec<u8>, Appliance) {
    let img = default_image(d);
    let part = gpt(&img)
        .find_by_type(&plinth_catalog::CATALOG_PARTITION_TYPE)
        .next()
        .cloned()
        .unwrap();
    let bytes = std::fs::read(&img).unwrap();
    let start = (part.first_lba * 512) as usize;
    let header = plinth_catalog::Header::parse(&bytes[start..], u64::MAX).unwrap();
    let payload = bytes[start + 512..start + 512 + header.payload_len as usize].to_vec();
    let spec_text = std::fs::read_to_string(root().join(image::DEFAULT_SPEC)).unwrap();
    (payload, Appliance::parse(&spec_text, 0).unwrap())
}

/// Renames the archive entry `from` to `to` in place, fixing the header checksum, so
/// only the name is hostile.
fn rename_entry(payload: &mut [u8], from: &str, to: &[u8]) {
    let at = (0..payload.len())
        .step_by(512)
        .find(|&o| payload[o..].starts_with(from.as_bytes()) && payload[o + from.len()] == 0)
        .unwrap_or_else(|| panic!("no entry {from}"));
    let h = &mut payload[at..at + 512];
    h[..100].fill(0);
    h[..to.len()].copy_from_slice(to);
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

#[test]
fn hostile_catalogs_are_refused_at_boot_one_after_another() {
    let d = dir("hostile");
    let (payload, spec) = default_payload(&d);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // Checksummed correctly, so the archive layer is what must refuse.
        (
            "truncated",
            payload[..payload.len() / 3].to_vec(),
            "catalog archive:",
        ),
        (
            "dotdot",
            {
                let mut p = payload.clone();
                rename_entry(&mut p, "keys/dev.pub", b"../dev.pub");
                p
            },
            "catalog archive:",
        ),
        (
            "non-utf8",
            {
                let mut p = payload.clone();
                rename_entry(&mut p, "keys/dev.pub", b"keys/\xff\xfe.pub");
                p
            },
            "catalog archive:",
        ),
        (
            "tampered-agent",
            {
                // A byte of the first agent's executable, inside its signed container.
                let mut p = payload.clone();
                let at = p.windows(4).position(|w| w == b"\x7fELF").unwrap();
                p[at + 200] ^= 0x01;
                p
            },
            "bad signature",
        ),
    ];
    for (name, p, needle) in cases {
        let img = d.join(format!("{name}.img"));
        image::write_image(&img, &spec, &plinth_catalog::seal(&p)).unwrap();
        expect_refused(&img, needle);
    }
    let _ = std::fs::remove_dir_all(&d);
}
