extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use plinth_testrng::Rng;

use super::*;

const SEED: SigningKeyBytes = [7u8; 32];
const OTHER_SEED: SigningKeyBytes = [9u8; 32];

const MANIFEST: &str = r#"name = "web"
version = "1.2.0"
entry = "bin/web"
args = ["--port", "80"]
config = ["etc/web.toml"]
devices = ["net", "console"]

[env]
RUST_LOG = "info"

[resources.cpu]
average_percent = 10
peak_percent = 100

[resources.memory]
average_mib = 64
peak_mib = 256

[resources.disk]
average_bytes_per_sec = 0
peak_bytes_per_sec = 1048576
average_iops = 0
peak_iops = 100

[resources.network]
average_bytes_per_sec = 10000
peak_bytes_per_sec = 1000000
"#;

const MINIMAL: &str = r#"name = "a"
version = "0.1.0"
entry = "a"
[resources.cpu]
average_percent = 1
peak_percent = 1
[resources.memory]
average_mib = 1
peak_mib = 1
"#;

fn files() -> Vec<(&'static str, u32, &'static [u8])> {
    vec![
        ("bin/web", 0o755, b"\x7fELF pretend executable"),
        ("etc/web.toml", 0o644, b"listen = 80\n"),
        ("README", 0o644, b""),
    ]
}

/// The test key's public half, derived once (a scalar multiplication, slow in debug).
fn trusted() -> Vec<PublicKey> {
    static KEY: std::sync::OnceLock<PublicKey> = std::sync::OnceLock::new();
    vec![*KEY.get_or_init(|| public_key(&SEED))]
}

fn open(archive: &[u8]) -> Result<Container<'_>, ContainerError> {
    Container::open(archive, &trusted(), &Limits::default())
}

fn good() -> Vec<u8> {
    pack(MANIFEST, &files(), &SEED).unwrap()
}

/// A ustar archive of `entries` as they are, signed with `seed` over the entries (for
/// layouts `pack` refuses to write). `sign` false: no SIGNATURE is added.
fn raw_archive(entries: &[(&str, &[u8])], seed: Option<&SigningKeyBytes>) -> Vec<u8> {
    let mut b = plinth_tar::Builder::new();
    for (name, data) in entries {
        b.add_file(name, 0o644, data).unwrap();
    }
    if let Some(seed) = seed {
        let digest = signature::digest_of(entries.iter().map(|(n, d)| (*n, 0o644, *d)));
        b.add_file(
            SIGNATURE_NAME,
            0o644,
            &sign_digest(seed, &digest).to_bytes(),
        )
        .unwrap();
    }
    b.finish()
}

fn manifest_err(text: &str) -> (u32, u32, String) {
    let e = Manifest::parse(text).unwrap_err();
    (e.line, e.col, e.message)
}

/// Asserts the manifest error position and that the message contains `needle`.
#[track_caller]
fn assert_manifest_err(text: &str, line: u32, col: u32, needle: &str) {
    let (l, c, m) = manifest_err(text);
    assert_eq!((l, c), (line, col), "message: {m}");
    assert!(m.contains(needle), "{m:?} does not contain {needle:?}");
}

#[test]
fn round_trip() {
    let archive = good();
    let c = open(&archive).unwrap();
    assert_eq!(c.manifest(), &Manifest::parse(MANIFEST).unwrap());
    assert_eq!(c.signer(), public_key(&SEED));
    let got: Vec<_> = c
        .files()
        .iter()
        .map(|e| (&*e.name, e.mode, e.data))
        .collect();
    assert_eq!(got, files());
    assert_eq!(c.entry_data(), b"\x7fELF pretend executable");
    assert_eq!(c.file("etc/web.toml"), Some(&b"listen = 80\n"[..]));
    assert_eq!(c.file("SIGNATURE"), None);

    let m = c.manifest();
    assert_eq!(m.name, "web");
    assert_eq!(
        m.version,
        Version {
            major: 1,
            minor: 2,
            patch: 0
        }
    );
    assert_eq!(m.args, ["--port", "80"]);
    assert_eq!(m.env.get("RUST_LOG").map(String::as_str), Some("info"));
    assert_eq!(m.config, ["etc/web.toml"]);
    assert_eq!(m.devices, [Device::Net, Device::Console]);
    assert_eq!(m.resources.memory.peak_mib, 256);
    assert_eq!(m.resources.disk.unwrap().peak_iops, 100);
    assert_eq!(m.resources.network.unwrap().average_bytes_per_sec, 10000);

    // The archive is one tar readers list in order.
    let entries = plinth_tar::read(&archive, &Limits::default()).unwrap();
    let names: Vec<_> = entries.iter().map(|e| &*e.name).collect();
    assert_eq!(
        names,
        [
            "manifest.toml",
            "bin/web",
            "etc/web.toml",
            "README",
            "SIGNATURE"
        ]
    );
    assert_eq!(entries[0].data, MANIFEST.as_bytes());
    assert_eq!(entries[4].data.len(), SignatureLine::LEN);
    // Deterministic: ed25519 signatures are, and so is the builder.
    assert_eq!(good(), archive);
}

#[test]
fn minimal_manifest_defaults() {
    let m = Manifest::parse(MINIMAL).unwrap();
    assert!(m.args.is_empty() && m.env.is_empty() && m.config.is_empty());
    assert!(m.devices.is_empty());
    assert_eq!(m.resources.disk, None);
    assert_eq!(m.resources.network, None);
    let archive = pack(MINIMAL, &[("a", 0o755, b"x")], &SEED).unwrap();
    assert_eq!(open(&archive).unwrap().manifest(), &m);
}

#[test]
fn randomized_round_trips() {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let count = 1 + rng.below(6);
        let names: Vec<String> = (0..count)
            .map(|i| format!("d{}/f{i}", rng.below(3)))
            .collect();
        let datas: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let mut data = vec![0; [0, 1, 511, 512, 513, 1500][rng.below(6)]];
                rng.fill_bytes(&mut data);
                data
            })
            .collect();
        let modes: Vec<u32> = (0..count)
            .map(|_| (rng.next_u64() as u32) & 0o7777)
            .collect();
        let files: Vec<(&str, u32, &[u8])> = (0..count)
            .map(|i| (names[i].as_str(), modes[i], datas[i].as_slice()))
            .collect();
        let entry = &names[rng.below(count)];
        let config = &names[rng.below(count)];
        let text = MINIMAL.replace(
            "entry = \"a\"",
            &format!("entry = {entry:?}\nconfig = [{config:?}]"),
        );
        let archive = pack(&text, &files, &SEED).unwrap();
        let c = open(&archive).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let got: Vec<_> = c
            .files()
            .iter()
            .map(|e| (&*e.name, e.mode, e.data))
            .collect();
        assert_eq!(got, files, "round {round}");
        assert_eq!(c.manifest(), &Manifest::parse(&text).unwrap());

        // Inspect agrees, and its separate verify step gives the same container.
        let u = Container::inspect(&archive, &Limits::default()).unwrap();
        assert_eq!(
            u.signature(),
            SignatureStatus::Valid {
                key: public_key(&SEED)
            }
        );
        assert_eq!(u.verify(&trusted()).unwrap(), c);

        // A random flipped byte inside the archive's used part is always refused.
        let used = plinth_tar::read(&archive, &Limits::default())
            .unwrap()
            .last()
            .map(|e| e.data.as_ptr() as usize - archive.as_ptr() as usize + e.data.len())
            .unwrap();
        let mut bad = archive.clone();
        let at = rng.below(used);
        bad[at] ^= 1 << rng.below(8);
        assert!(open(&bad).is_err(), "round {round}: flip at {at} accepted");
    }
}

#[test]
fn flipped_byte_anywhere_is_refused() {
    let archive = good();
    let entries = plinth_tar::read(&archive, &Limits::default()).unwrap();
    let data_ranges: Vec<_> = entries
        .iter()
        .filter(|e| e.name != SIGNATURE_NAME)
        .map(|e| {
            let start = e.data.as_ptr() as usize - archive.as_ptr() as usize;
            (start..start + e.data.len(), e.name.to_string())
        })
        .collect();
    // Every byte up to one block past the SIGNATURE entry's padding, then a sample of the
    // zero-filled rest (all refused alike, as trailing garbage).
    let last = &entries[entries.len() - 1];
    let used = last.data.as_ptr() as usize - archive.as_ptr() as usize + 1024;
    // Inside entries' data each flip costs an ed25519 verify, slow in debug builds: a
    // sample there (every 23rd byte, and each entry's first and last), every header byte.
    let in_data = |at: usize| {
        data_ranges
            .iter()
            .find(|(r, _)| r.contains(&at))
            .map(|(r, _)| r.clone())
    };
    let positions = (0..used)
        .filter(|&at| match in_data(at) {
            None => true,
            Some(r) => at % 23 == 0 || at == r.start || at + 1 == r.end,
        })
        .chain((used..archive.len()).step_by(97));
    for at in positions {
        let mut bad = archive.clone();
        bad[at] ^= 0x20;
        let err = match open(&bad) {
            Err(err) => err,
            Ok(c) => {
                // Only a flip the archive layer reads as the same thing may pass (the
                // checksum field's terminator is a space or a NUL): same names and data.
                let got: Vec<_> = c.files().iter().map(|e| (&*e.name, e.data)).collect();
                let want: Vec<_> = files().iter().map(|(n, _, d)| (*n, *d)).collect();
                assert_eq!(got, want, "flip at {at} accepted with different contents");
                assert!((148..156).contains(&(at % 512)), "flip at {at} accepted");
                continue;
            }
        };
        if let Some((_, name)) = data_ranges.iter().find(|(r, _)| r.contains(&at)) {
            assert!(
                matches!(err, ContainerError::BadSignature { .. }),
                "flip at {at} in {name}: {err:?}"
            );
        }
        // Hostile input only ever gives an error, never a panic, in inspect too (a
        // sample: verifying is slow in debug builds).
        if at % 29 == 0 {
            let _ = Container::inspect(&bad, &Limits::default()).map(|u| u.signature());
        }
    }
}

#[test]
fn signed_content_change_is_a_bad_signature() {
    // Re-signing with a different file list but the original SIGNATURE line.
    let archive = good();
    let sig = plinth_tar::read(&archive, &Limits::default()).unwrap()[4]
        .data
        .to_vec();
    let forged = raw_archive(
        &[
            ("manifest.toml", MANIFEST.as_bytes()),
            ("bin/web", b"\x7fELF evil"),
            ("etc/web.toml", b"listen = 80\n"),
            ("README", b""),
            ("SIGNATURE", &sig),
        ],
        None,
    );
    let err = open(&forged).unwrap_err();
    assert_eq!(
        err,
        ContainerError::BadSignature {
            key: public_key(&SEED)
        }
    );
    assert!(err.to_string().starts_with("bad signature"));
    // inspect still shows it, and says the signature is invalid.
    let u = Container::inspect(&forged, &Limits::default()).unwrap();
    assert_eq!(
        u.signature(),
        SignatureStatus::Invalid {
            key: public_key(&SEED),
            reason: VerifyError::BadSignature
        }
    );
}

#[test]
fn truncated_archive() {
    let archive = good();
    for len in [0, 100, 512, 700, 1024, 1500, 2048, 2600] {
        let err = open(&archive[..len]).unwrap_err();
        assert!(
            matches!(
                err,
                ContainerError::Tar(TarError::Truncated { .. } | TarError::NoEndMarker { .. })
            ),
            "len {len}: {err:?}"
        );
    }
}

#[test]
fn absurd_sizes_and_limits() {
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    let err = Container::open(&good(), &trusted(), &limits).unwrap_err();
    assert_eq!(
        err,
        ContainerError::Tar(TarError::TooManyEntries { limit: 3 })
    );
    // A size field claiming far more than the input holds.
    let mut archive = good();
    archive[124..136].copy_from_slice(b"77777777777\0");
    fix_checksum(&mut archive, 0);
    assert!(matches!(open(&archive), Err(ContainerError::Tar(_))));
}

fn fix_checksum(archive: &mut [u8], offset: usize) {
    let block = &mut archive[offset..offset + 512];
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

#[test]
fn unknown_key() {
    let archive = pack(MANIFEST, &files(), &OTHER_SEED).unwrap();
    let err = open(&archive).unwrap_err();
    let key = public_key(&OTHER_SEED);
    assert_eq!(err, ContainerError::UnknownKey { key });
    assert_eq!(
        err.to_string(),
        format!("signed by key {key}, which is not trusted")
    );
    // Valid, just not trusted: inspect reports the signer.
    let u = Container::inspect(&archive, &Limits::default()).unwrap();
    assert_eq!(u.signature(), SignatureStatus::Valid { key });
    assert_eq!(u.signature().signer(), Some(key));
    assert_eq!(
        u.clone().verify(&trusted()).unwrap_err(),
        ContainerError::UnknownKey { key }
    );
    assert!(u.verify(&[public_key(&SEED), key]).is_ok());
    // No trusted keys at all.
    assert!(matches!(
        Container::open(&good(), &[], &Limits::default()),
        Err(ContainerError::UnknownKey { .. })
    ));
}

#[test]
fn public_key_hex() {
    let key = public_key(&SEED);
    let hex = key.to_string();
    assert_eq!(hex.len(), 64);
    assert_eq!(PublicKey::from_hex(&hex), Ok(key));
    assert_eq!(
        PublicKey::from_hex(&hex.to_uppercase()),
        Err(HexError::NotLowercaseHex)
    );
    assert_eq!(
        PublicKey::from_hex(&hex[..62]),
        Err(HexError::Length {
            expected: 64,
            found: 62
        })
    );
    assert_eq!(
        PublicKey::from_hex(&format!(" {}", &hex[1..])),
        Err(HexError::NotLowercaseHex)
    );
}

#[test]
fn signature_line_format() {
    let line = sign_digest(&SEED, &[1; 32]);
    let bytes = line.to_bytes();
    assert_eq!(SignatureLine::parse(&bytes), Ok(line));
    let text = core::str::from_utf8(&bytes).unwrap();
    assert!(text.starts_with("ed25519 ") && text.ends_with('\n'));
    assert_eq!(text.split(' ').count(), 3);

    let good = text.to_string();
    let key = &good[8..72];
    let sig = &good[73..201];
    let cases: Vec<(String, SignatureLineError)> = vec![
        (String::new(), SignatureLineError::Algorithm),
        (
            format!("Ed25519 {key} {sig}\n"),
            SignatureLineError::Algorithm,
        ),
        (format!("ed25519 {key} {sig}"), SignatureLineError::Newline),
        (
            format!("ed25519 {key} {sig}\n\n"),
            SignatureLineError::Newline,
        ),
        (
            format!("ed25519 {key} {sig}\r\n"),
            SignatureLineError::Newline,
        ),
        (
            format!("ed25519 {key}  {sig}\n"),
            SignatureLineError::Fields,
        ),
        (
            format!("ed25519 {key} {sig} \n"),
            SignatureLineError::Fields,
        ),
        (format!("ed25519 {key}\n"), SignatureLineError::Fields),
        (
            format!("ed25519 {} {sig}\n", key.to_uppercase()),
            SignatureLineError::Key(HexError::NotLowercaseHex),
        ),
        (
            format!("ed25519 {}0 {sig}\n", key),
            SignatureLineError::Key(HexError::Length {
                expected: 64,
                found: 65,
            }),
        ),
        (
            format!("ed25519 {key} {}\n", &sig[..126]),
            SignatureLineError::Signature(HexError::Length {
                expected: 128,
                found: 126,
            }),
        ),
        (
            format!("ed25519 {key} {}g\n", &sig[..127]),
            SignatureLineError::Signature(HexError::NotLowercaseHex),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(SignatureLine::parse(text.as_bytes()), Err(want), "{text:?}");
        // And in a container: malformed, whatever the key.
        let archive = raw_archive(
            &[
                ("manifest.toml", MINIMAL.as_bytes()),
                ("a", b"x"),
                ("SIGNATURE", text.as_bytes()),
            ],
            None,
        );
        let err = open(&archive).unwrap_err();
        assert_eq!(err, ContainerError::MalformedSignature(want));
        assert!(err.to_string().starts_with("malformed SIGNATURE file: "));
        let u = Container::inspect(&archive, &Limits::default()).unwrap();
        assert_eq!(u.signature(), SignatureStatus::Malformed(want));
        assert_eq!(u.signature().signer(), None);
    }
}

#[test]
fn invalid_key_bytes() {
    // A small-order point (the identity, y = 1) is refused by verify_strict.
    let mut key = [0u8; 32];
    key[0] = 1;
    let line = SignatureLine {
        key: PublicKey(key),
        signature: [0; 64],
    };
    let archive = raw_archive(
        &[
            ("manifest.toml", MINIMAL.as_bytes()),
            ("a", b"x"),
            ("SIGNATURE", &line.to_bytes()),
        ],
        None,
    );
    let err = Container::open(&archive, &[PublicKey(key)], &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ContainerError::InvalidKey { .. } | ContainerError::BadSignature { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn layout_errors() {
    let m = MINIMAL.as_bytes();
    let cases: Vec<(Vec<u8>, ContainerError)> = vec![
        (raw_archive(&[], None), ContainerError::Empty),
        (
            raw_archive(&[("a", b"x"), ("manifest.toml", m)], Some(&SEED)),
            ContainerError::ManifestNotFirst {
                found: "a".to_string(),
            },
        ),
        (
            raw_archive(&[("manifest.toml", m), ("a", b"x")], None),
            ContainerError::SignatureMissing,
        ),
        (
            raw_archive(&[("manifest.toml", m)], None),
            ContainerError::SignatureMissing,
        ),
    ];
    for (archive, want) in cases {
        assert_eq!(open(&archive).unwrap_err(), want);
        assert_eq!(
            Container::inspect(&archive, &Limits::default()).unwrap_err(),
            want
        );
    }

    // SIGNATURE not last: sign, then append a file after it.
    let line = sign_digest(
        &SEED,
        &signature::digest_of([("manifest.toml", 0o644, m), ("a", 0o644, &b"x"[..])].into_iter()),
    );
    let archive = raw_archive(
        &[
            ("manifest.toml", m),
            ("a", b"x"),
            ("SIGNATURE", &line.to_bytes()),
            ("b", b"y"),
        ],
        None,
    );
    assert_eq!(
        open(&archive).unwrap_err(),
        ContainerError::SignatureNotLast { index: 2 }
    );

    // SIGNATURE twice (the builder refuses, so rename a third entry in place).
    let sig = line.to_bytes();
    let mut archive = raw_archive(
        &[
            ("manifest.toml", m),
            ("a", b"x"),
            ("SIGNATURX", &sig),
            ("SIGNATURE", &sig),
        ],
        None,
    );
    let header = 512 * 4; // manifest (1 + 1 blocks), a (1 + 1)
    assert_eq!(&archive[header..header + 9], b"SIGNATURX");
    archive[header + 8] = b'E';
    fix_checksum(&mut archive, header);
    assert!(matches!(
        open(&archive).unwrap_err(),
        ContainerError::Tar(TarError::Duplicate { index: 3, .. })
    ));

    // A second manifest.toml.
    let mut archive = raw_archive(
        &[("manifest.toml", m), ("a", b"x"), ("manifest.tomX", m)],
        Some(&SEED),
    );
    archive[header + 12] = b'l';
    fix_checksum(&mut archive, header);
    assert!(matches!(
        open(&archive).unwrap_err(),
        ContainerError::Tar(TarError::Duplicate { index: 2, .. })
    ));
}

#[test]
fn hostile_names_are_refused_by_the_archive_layer() {
    for name in ["../etc/passwd", "/etc/passwd", "a/../../b", "a\\b"] {
        // Written around the builder: a valid name patched in the header.
        let placeholder = "x".repeat(name.len());
        let mut archive = raw_archive(
            &[
                ("manifest.toml", MINIMAL.as_bytes()),
                ("a", b"x"),
                (&placeholder, b"y"),
            ],
            Some(&SEED),
        );
        let header = 512 * 4;
        archive[header..header + name.len()].copy_from_slice(name.as_bytes());
        fix_checksum(&mut archive, header);
        let err = open(&archive).unwrap_err();
        assert!(
            matches!(err, ContainerError::Tar(TarError::BadName { index: 2, .. })),
            "{name}: {err:?}"
        );
    }
    // Non-UTF-8 name.
    let mut archive = raw_archive(
        &[
            ("manifest.toml", MINIMAL.as_bytes()),
            ("a", b"x"),
            ("bb", b"y"),
        ],
        Some(&SEED),
    );
    archive[512 * 4] = 0xff;
    fix_checksum(&mut archive, 512 * 4);
    assert!(matches!(
        open(&archive).unwrap_err(),
        ContainerError::Tar(TarError::BadName {
            reason: plinth_tar::NameError::NotUtf8,
            ..
        })
    ));
    // pack refuses the same names, through the manifest or the builder.
    assert!(matches!(
        pack(MINIMAL, &[("a", 0o755, b"x"), ("../b", 0o644, b"y")], &SEED),
        Err(ContainerError::Tar(TarError::BadName { .. }))
    ));
    assert_manifest_err(
        &MINIMAL.replace("entry = \"a\"", "entry = \"../a\""),
        3,
        9,
        "`.` or `..` component",
    );
    assert_manifest_err(
        &MINIMAL.replace("entry = \"a\"", "entry = \"/bin/a\""),
        3,
        9,
        "absolute path",
    );
}

#[test]
fn missing_referenced_files() {
    let err = pack(MANIFEST, &[("bin/web", 0o755, b"x")], &SEED).unwrap_err();
    assert_eq!(
        err,
        ContainerError::MissingFile {
            field: "config",
            path: "etc/web.toml".to_string(),
            line: 5,
            col: 11
        }
    );
    assert_eq!(
        err.to_string(),
        "manifest.toml:5:11: config file \"etc/web.toml\" is not in the container"
    );
    let err = pack(MANIFEST, &[("etc/web.toml", 0o644, b"x")], &SEED).unwrap_err();
    assert_eq!(
        err,
        ContainerError::MissingFile {
            field: "entry",
            path: "bin/web".to_string(),
            line: 3,
            col: 9
        }
    );
    // And in a signed archive made around pack.
    let archive = raw_archive(
        &[("manifest.toml", MANIFEST.as_bytes()), ("bin/web", b"x")],
        Some(&SEED),
    );
    assert!(matches!(
        open(&archive).unwrap_err(),
        ContainerError::MissingFile {
            field: "config",
            line: 5,
            col: 11,
            ..
        }
    ));
    assert!(matches!(
        Container::inspect(&archive, &Limits::default()).unwrap_err(),
        ContainerError::MissingFile {
            field: "config",
            ..
        }
    ));
}

#[test]
fn reserved_names_in_pack() {
    for name in ["manifest.toml", "SIGNATURE"] {
        assert_eq!(
            pack(MINIMAL, &[("a", 0o755, b"x"), (name, 0o644, b"y")], &SEED).unwrap_err(),
            ContainerError::ReservedName {
                name: name.to_string()
            }
        );
    }
    assert_manifest_err(
        &MINIMAL.replace("entry = \"a\"", "entry = \"SIGNATURE\""),
        3,
        9,
        "reserved",
    );
}

#[test]
fn manifest_errors_in_a_signed_container_carry_positions() {
    let text = MINIMAL.replace("peak_mib = 1", "peak_mib = 1\nswap = 2");
    let archive = raw_archive(
        &[("manifest.toml", text.as_bytes()), ("a", b"x")],
        Some(&SEED),
    );
    let err = open(&archive).unwrap_err();
    let ContainerError::Manifest(ref m) = err else {
        panic!("{err:?}")
    };
    assert_eq!((m.line, m.col), (10, 1));
    assert!(
        err.to_string()
            .starts_with("manifest.toml:10:1: unknown field `swap`")
    );

    // Not UTF-8: the position of the first bad byte.
    let mut bytes = MINIMAL.as_bytes().to_vec();
    bytes[13] = 0xff; // line 2 starts at byte 11: `ve` then the bad byte, column 3
    let archive = raw_archive(&[("manifest.toml", &bytes), ("a", b"x")], Some(&SEED));
    assert_eq!(
        open(&archive).unwrap_err(),
        ContainerError::ManifestNotUtf8 { line: 2, col: 3 }
    );
}

#[test]
fn manifest_syntax_errors() {
    // Line 2: `version = = "1.0.0"`: the second `=` is at column 11.
    let text = MINIMAL.replace("version = \"0.1.0\"", "version = = \"0.1.0\"");
    let (line, col, _) = manifest_err(&text);
    assert_eq!((line, col), (2, 11));
    // Unterminated string on line 3.
    let text = MINIMAL.replace("entry = \"a\"", "entry = \"a");
    let (line, _, _) = manifest_err(&text);
    assert_eq!(line, 3);
    // Type error: a number where a string goes.
    assert_manifest_err(
        &MINIMAL.replace("entry = \"a\"", "entry = 5"),
        3,
        9,
        "invalid type",
    );
    // Duplicate key.
    let (line, _, m) =
        manifest_err(&MINIMAL.replace("entry = \"a\"", "entry = \"a\"\nentry = \"b\""));
    assert_eq!(line, 4, "{m}");
    // Missing field at the top level points at the start.
    assert_manifest_err(
        &MINIMAL.replace("entry = \"a\"\n", ""),
        1,
        1,
        "missing field `entry`",
    );
    // Negative number for an unsigned field.
    assert_manifest_err(
        &MINIMAL.replace("average_mib = 1", "average_mib = -1"),
        8,
        15,
        "",
    );
    // Empty document.
    assert_manifest_err("", 1, 1, "missing field");
}

#[test]
fn manifest_unknown_fields() {
    assert_manifest_err(
        &format!("{MINIMAL}colour = \"red\"\n"),
        10,
        1,
        "unknown field `colour`",
    );
    assert_manifest_err(
        &MINIMAL.replace("peak_percent = 1", "peak_percent = 1\nturbo = true"),
        7,
        1,
        "unknown field `turbo`",
    );
    assert_manifest_err(
        &format!("{MINIMAL}[resources.gpu]\ncount = 1\n"),
        10,
        12,
        "unknown field `gpu`",
    );
}

#[test]
fn manifest_semantic_errors() {
    // Bad name: position of the value.
    assert_manifest_err(
        &MINIMAL.replace("name = \"a\"", "name = \"Web\""),
        1,
        8,
        "name must start with a lowercase letter or a digit",
    );
    assert_manifest_err(
        &MINIMAL.replace("name = \"a\"", "name = \"we_b\""),
        1,
        8,
        "lowercase letters, digits and `-`",
    );
    assert_manifest_err(
        &MINIMAL.replace("name = \"a\"", &format!("name = \"{}\"", "a".repeat(64))),
        1,
        8,
        "longer than 63",
    );
    assert!(
        Manifest::parse(
            &MINIMAL.replace("name = \"a\"", &format!("name = \"{}\"", "a".repeat(63)))
        )
        .is_ok()
    );
    // Bad version.
    for v in [
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.2.x",
        "v1.2.3",
        "1.2.3-rc1",
        "99999999999.0.0",
    ] {
        assert_manifest_err(
            &MINIMAL.replace("\"0.1.0\"", &format!("{v:?}")),
            2,
            11,
            "version",
        );
    }
    // Peak below average: position of the peak value.
    assert_manifest_err(
        &MINIMAL.replace("peak_mib = 1", "peak_mib = 0"),
        9,
        12,
        "resources.memory.peak_mib = 0 is below average_mib = 1",
    );
    assert_manifest_err(
        &MINIMAL.replace("peak_percent = 1", "peak_percent =  0"),
        6,
        17,
        "peak_percent",
    );
    let disk = "[resources.disk]\naverage_bytes_per_sec = 5\npeak_bytes_per_sec = 5\naverage_iops = 9\npeak_iops = 8\n";
    assert_manifest_err(
        &format!("{MINIMAL}{disk}"),
        14,
        13,
        "peak_iops = 8 is below average_iops = 9",
    );
    let net = "[resources.network]\naverage_bytes_per_sec = 5\npeak_bytes_per_sec = 4\n";
    assert_manifest_err(
        &format!("{MINIMAL}{net}"),
        12,
        22,
        "network.peak_bytes_per_sec",
    );
    // Unknown device: serde's message, at the value.
    assert_manifest_err(
        &format!("devices = [\"net\", \"gpu\"]\n{MINIMAL}"),
        1,
        19,
        "unknown variant `gpu`, expected one of `disk`, `net`, `console`",
    );
    assert_manifest_err(
        &format!("devices = [\"net\", \"net\"]\n{MINIMAL}"),
        1,
        19,
        "device \"net\" is listed twice",
    );
    // Env keys: position of the key.
    assert_manifest_err(
        &format!("{MINIMAL}[env]\nOK = \"1\"\nlower = \"x\"\n"),
        12,
        1,
        "A-Z, 0-9 and `_`",
    );
    assert_manifest_err(
        &format!("{MINIMAL}[env]\n\"9LIVES\" = \"x\"\n"),
        11,
        1,
        "must not start with a digit",
    );
    assert_manifest_err(&format!("{MINIMAL}[env]\nA = \"x\\u0000\"\n"), 11, 5, "NUL");
    // Config listed twice, at the second.
    assert_manifest_err(
        &format!("config = [\"c\", \"c\"]\n{MINIMAL}"),
        1,
        16,
        "listed twice",
    );
    // Display is line:col: message.
    let e = Manifest::parse(&MINIMAL.replace("peak_mib = 1", "peak_mib = 0")).unwrap_err();
    assert!(e.to_string().starts_with("9:12: resources.memory.peak_mib"));
}

#[test]
fn signing_digest_definition() {
    use sha2::{Digest, Sha256};
    let archive = good();
    let entries = plinth_tar::read(&archive, &Limits::default()).unwrap();
    let mut h = Sha256::new();
    for e in entries.iter().filter(|e| e.name != "SIGNATURE") {
        h.update((e.name.len() as u32).to_le_bytes());
        h.update(e.name.as_bytes());
        h.update(e.mode.to_le_bytes());
        h.update((e.data.len() as u64).to_le_bytes());
        h.update(e.data);
    }
    let want: [u8; 32] = h.finalize().into();
    assert_eq!(signing_digest(&entries), want);
    let u = Container::inspect(&archive, &Limits::default()).unwrap();
    assert_eq!(u.digest(), want);
    // Moving bytes between name and data changes the digest (length prefixes).
    let a = signature::digest_of([("ab", 0o644, &b"c"[..])].into_iter());
    let b = signature::digest_of([("a", 0o644, &b"bc"[..])].into_iter());
    assert_ne!(a, b);
    // So does a mode: making a file executable is a change the signer must have made.
    let c = signature::digest_of([("ab", 0o755, &b"c"[..])].into_iter());
    assert_ne!(a, c);
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(42);
    let base = good();
    for _ in 0..300 {
        let mut input = base.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(3000);
            input[at] = rng.byte();
        }
        let cut = rng.below(input.len() + 1);
        let _ = open(&input[..cut]);
        let _ = Container::inspect(&input[..cut], &Limits::default()).map(|u| u.signature());
        if let Ok(text) = core::str::from_utf8(&input[512..512 + MANIFEST.len()]) {
            let _ = Manifest::parse(text);
        }
    }
}
