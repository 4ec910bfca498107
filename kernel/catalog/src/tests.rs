//! Tests of the catalog format and its check: round trip, and every hostile case the
//! runtime meets on a disk it does not trust.

extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use plinth_container::public_key;
use plinth_testrng::Rng;

use super::*;

const SEED: [u8; 32] = [7; 32];
const OTHER_SEED: [u8; 32] = [9; 32];

fn key_file(seed: &[u8; 32]) -> Vec<u8> {
    format!("ed25519 {}\n", public_key(seed)).into_bytes()
}

fn agent(name: &str, version: &str, seed: &[u8; 32]) -> Vec<u8> {
    let manifest = format!(
        "name = \"{name}\"\nversion = \"{version}\"\nentry = \"bin/run\"\n\
         [resources.cpu]\naverage_percent = 1\npeak_percent = 5\n\
         [resources.memory]\naverage_mib = 2\npeak_mib = 4\n"
    );
    plinth_container::pack(&manifest, &[("bin/run", 0o755, b"#!/bin/sh\n")], seed).unwrap()
}

const SPEC: &str = r#"kind = "appliance"
name = "test"
version = "1.2.3"
trusted_keys = ["keys/ops.pub"]
policies = ["policies/deployment.toml", "policies/tenants.toml"]

[machine]
memory_mib = 512
cpus = 2

[[agent]]
file = "agents/hello-0.1.0.agent"

[[partition]]
name = "mgmt"
memory_mib = 64
cpus = 1
disk_mib = 4
labels = ["management"]

[[partition]]
name = "tenant-a"
memory_mib = 128
cpus = 1
"#;

const DEPLOYMENT: &str = r#"kind = "deployment"
[[deploy]]
agent = "hello"
version = "0.1.0"
to = ["label:management"]
"#;

const TENANTS: &str = r#"kind = "tenants"
[[pool]]
name = "vlans"
ranges = ["10-11"]
[[tenant]]
name = "acme"
pool = "vlans"
partitions = ["tenant-a"]
"#;

/// A valid catalog's files, for tests to change one thing.
fn files() -> Vec<(String, Vec<u8>)> {
    vec![
        ("keys/ops.pub".into(), key_file(&SEED)),
        (
            "policies/deployment.toml".into(),
            DEPLOYMENT.as_bytes().to_vec(),
        ),
        ("policies/tenants.toml".into(), TENANTS.as_bytes().to_vec()),
        (
            "agents/hello-0.1.0.agent".into(),
            agent("hello", "0.1.0", &SEED),
        ),
    ]
}

fn build_with(spec: &str, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    build(spec, &refs).unwrap()
}

fn open(sealed: &[u8]) -> Result<Catalog, CatalogError> {
    let header = Header::parse(sealed, sealed.len() as u64)?;
    Catalog::open(&header, &sealed[HEADER_LEN..])
}

/// Replaces the payload and re-seals the header, so the checksum passes and the check
/// under test is the one that must refuse.
fn reseal(payload: &[u8]) -> Vec<u8> {
    seal(payload)
}

#[test]
fn a_built_catalog_opens_with_its_model() {
    let sealed = build_with(SPEC, &files());
    assert_eq!(sealed.len() % 512, 0);
    let c = open(&sealed).unwrap();
    assert_eq!(c.appliance.name, "test");
    assert_eq!(c.appliance.version.to_string(), "1.2.3");
    assert_eq!(c.appliance.partitions.len(), 2);
    assert_eq!(
        c.keys,
        vec![Key {
            file: "keys/ops.pub".into(),
            key: public_key(&SEED)
        }]
    );
    assert_eq!(c.agents.len(), 1);
    assert_eq!(c.agents[0].manifest.name, "hello");
    assert_eq!(c.agents[0].signer, public_key(&SEED));
    assert_eq!(
        c.policies.deployments[0].partitions,
        vec![String::from("mgmt")]
    );
    assert_eq!(c.policies.tenants[0].vlan, 10);
    assert_eq!(c.appliance.policies.len(), 2);

    let mut json = String::new();
    let extents = [Extent {
        partition: "mgmt",
        first_lba: 4096,
        sectors: 8192,
    }];
    write_json(&c, &extents, &mut json).unwrap();
    assert!(json.starts_with("{\"format\":1,\"sha256\":\""), "{json}");
    assert!(json.contains("\"name\":\"mgmt\",\"memory_mib\":64,\"cpus\":1,\"disk_mib\":4,\"labels\":[\"management\"],\"disk\":{\"first_lba\":4096,\"sectors\":8192}"), "{json}");
    assert!(json.contains("\"name\":\"tenant-a\",\"memory_mib\":128,\"cpus\":1,\"disk_mib\":0,\"labels\":[],\"disk\":null"), "{json}");
    assert!(json.contains("\"vlan\":10"), "{json}");
}

#[test]
fn every_flipped_byte_is_caught() {
    let sealed = build_with(SPEC, &files());
    // Every byte of the header's used part and a spread of payload bytes.
    let payload_end = HEADER_LEN + Header::parse(&sealed, u64::MAX).unwrap().payload_len as usize;
    let positions: Vec<usize> = (0..88)
        .chain((HEADER_LEN..payload_end).step_by(97))
        .collect();
    for at in positions {
        let mut bad = sealed.clone();
        bad[at] ^= 0x20;
        let e = open(&bad).expect_err("a flipped byte must be refused");
        let expected = match at {
            0..8 => matches!(e, CatalogError::BadMagic),
            8..88 => matches!(e, CatalogError::HeaderChecksum),
            _ => matches!(e, CatalogError::PayloadChecksum),
        };
        assert!(expected, "byte {at}: {e}");
    }
}

#[test]
fn header_limits() {
    let sealed = build_with(SPEC, &files());
    assert_eq!(
        Header::parse(&sealed[..100], 1 << 20),
        Err(CatalogError::ShortHeader)
    );
    // A partition too small for the payload the header claims.
    assert!(matches!(
        Header::parse(&sealed, 1024),
        Err(CatalogError::PayloadTooLarge { .. })
    ));
    // An absurd length with a valid header checksum.
    let mut h = Header::of(b"x");
    h.payload_len = u64::MAX;
    let bytes = h.to_bytes();
    assert!(matches!(
        Header::parse(&bytes, u64::MAX),
        Err(CatalogError::PayloadTooLarge { .. })
    ));
    // A future format version.
    let mut bytes = Header::of(b"x").to_bytes();
    bytes[8] = 2;
    let own = sha256(&bytes[0..56]);
    bytes[56..88].copy_from_slice(&own);
    assert_eq!(
        Header::parse(&bytes, 1 << 20),
        Err(CatalogError::UnsupportedVersion(2))
    );
    // A payload shorter than the header says.
    let header = Header::parse(&sealed, u64::MAX).unwrap();
    assert_eq!(
        Catalog::open(&header, &sealed[HEADER_LEN..HEADER_LEN + 100]),
        Err(CatalogError::PayloadChecksum)
    );
}

#[test]
fn truncated_archive_is_refused() {
    let sealed = build_with(SPEC, &files());
    let payload = &sealed[HEADER_LEN..];
    for cut in [0, 100, 512, 1000, payload.len() / 2] {
        let e = open(&reseal(&payload[..cut])).unwrap_err();
        assert!(
            matches!(
                e,
                CatalogError::Archive(_) | CatalogError::SpecNotFirst { .. }
            ),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn an_agent_signed_by_an_unknown_key_is_refused() {
    let mut f = files();
    f[3].1 = agent("hello", "0.1.0", &OTHER_SEED);
    let e = open(&build_with(SPEC, &f)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "agents/hello-0.1.0.agent: signed by key {}, which is not trusted",
            public_key(&OTHER_SEED)
        )
    );
}

#[test]
fn a_tampered_agent_is_refused_even_when_the_catalog_is_resealed() {
    let mut f = files();
    let data = &mut f[3].1;
    // The entry script's first byte (inside the archive's data, not a header).
    let at = data.windows(9).position(|w| w == b"#!/bin/sh").unwrap();
    data[at + 2] = b'X';
    let e = open(&build_with(SPEC, &f)).unwrap_err();
    assert!(e.to_string().contains("bad signature"), "{e}");
}

#[test]
fn missing_unexpected_and_bad_files_are_refused() {
    let mut f = files();
    f.remove(2);
    assert_eq!(
        open(&build_with(SPEC, &f)).unwrap_err(),
        CatalogError::MissingFile {
            path: "policies/tenants.toml".into()
        }
    );
    let mut f = files();
    f.push(("extra.bin".into(), b"?".to_vec()));
    assert_eq!(
        open(&build_with(SPEC, &f)).unwrap_err(),
        CatalogError::UnexpectedFile {
            path: "extra.bin".into()
        }
    );
    let mut f = files();
    f[0].1 = b"ed25519 nothex\n".to_vec();
    assert_eq!(
        open(&build_with(SPEC, &f)).unwrap_err(),
        CatalogError::BadKeyFile {
            path: "keys/ops.pub".into()
        }
    );
    // The spec must come first.
    let mut b = plinth_tar::Builder::new();
    b.add_file("keys/ops.pub", 0o644, &key_file(&SEED)).unwrap();
    b.add_file(SPEC_NAME, 0o644, SPEC.as_bytes()).unwrap();
    assert_eq!(
        open(&reseal(&b.finish())).unwrap_err(),
        CatalogError::SpecNotFirst {
            found: "keys/ops.pub".into()
        }
    );
    // Unpacked agents belong to specs on the host, not catalogs.
    let spec = SPEC.replace(
        "file = \"agents/hello-0.1.0.agent\"",
        "dir = \"agents/hello\"",
    );
    assert_eq!(
        open(&build_with(&spec, &files())).unwrap_err(),
        CatalogError::UnpackedAgent {
            path: "agents/hello".into()
        }
    );
}

#[test]
fn spec_and_policy_problems_name_the_file_and_position() {
    let bad_policy = DEPLOYMENT.replace("0.1.0", "0.9.0");
    let mut f = files();
    f[1].1 = bad_policy.into_bytes();
    let e = open(&build_with(SPEC, &f)).unwrap_err();
    let CatalogError::Invalid(lines) = &e else {
        panic!("{e}")
    };
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("policies/deployment.toml:4:11: "),
        "{lines:?}"
    );

    let spec = SPEC.replace("memory_mib = 128", "memory_mib = 4096");
    let e = open(&build_with(&spec, &files())).unwrap_err();
    let CatalogError::Invalid(lines) = &e else {
        panic!("{e}")
    };
    assert!(lines[0].starts_with("appliance.toml:"), "{lines:?}");
    assert!(
        lines[0].contains("memory quotas exceed the machine"),
        "{lines:?}"
    );
}

/// Hand-made ustar headers: names the builder would refuse to write.
fn raw_entry(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    let size = format!("{:011o}\0", data.len());
    h[124..136].copy_from_slice(size.as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let chk = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(chk.as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn archive_of(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, d) in entries {
        out.extend(raw_entry(n, d));
    }
    out.extend([0u8; 1024]);
    out
}

#[test]
fn hostile_archive_names_are_refused() {
    let spec = SPEC.as_bytes();
    let key = key_file(&SEED);
    for name in [
        &b"../etc/passwd"[..],
        b"/abs/path",
        b"keys/\xff\xfe.pub",
        b"keys/../../x",
    ] {
        let payload = archive_of(&[(b"appliance.toml", spec), (name, &key)]);
        let e = open(&reseal(&payload)).unwrap_err();
        assert!(matches!(e, CatalogError::Archive(_)), "{name:?}: {e}");
    }
    // The same name twice.
    let payload = archive_of(&[
        (b"appliance.toml", spec),
        (b"keys/ops.pub", &key),
        (b"keys/ops.pub", &key),
    ]);
    let e = open(&reseal(&payload)).unwrap_err();
    assert!(matches!(e, CatalogError::Archive(_)), "{e}");
    // A size field claiming far more than there is.
    let mut payload = archive_of(&[(b"appliance.toml", spec)]);
    payload[124..136].copy_from_slice(b"77777777777\0");
    let e = open(&reseal(&payload)).unwrap_err();
    assert!(matches!(e, CatalogError::Archive(_)), "{e}");
}

#[test]
fn two_containers_of_one_agent_version_are_refused() {
    let spec = SPEC.replace(
        "[[partition]]\nname = \"mgmt\"",
        "[[agent]]\nfile = \"agents/again.agent\"\n\n[[partition]]\nname = \"mgmt\"",
    );
    let mut f = files();
    f.push(("agents/again.agent".into(), agent("hello", "0.1.0", &SEED)));
    assert_eq!(
        open(&build_with(&spec, &f)).unwrap_err(),
        CatalogError::DuplicateAgent {
            name: "hello".into(),
            version: plinth_container::Version {
                major: 0,
                minor: 1,
                patch: 0
            }
        }
    );
}

/// Random byte flips and truncations of a valid payload, re-sealed so they reach the
/// archive and spec checks: never a panic.
#[test]
fn mutated_payloads_never_panic() {
    let sealed = build_with(SPEC, &files());
    let payload = sealed[HEADER_LEN..].to_vec();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next = || rng.next_u64();
    for _ in 0..300 {
        let mut p = payload.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % p.len();
            p[at] = next() as u8;
        }
        if next() % 4 == 0 {
            p.truncate((next() as usize) % p.len());
        }
        // The assertion is that this returns, with whatever verdict.
        let _ = open(&reseal(&p));
    }
}
