//! Round trips (fixed and randomized), every hostile input the reader must refuse, random
//! corruption of valid archives, and interoperability with the host's GNU tar.

extern crate std;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use plinth_testrng::Rng;

use super::*;

/// `len` random bytes, one step each.
fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    rng.fill_bytes(&mut v);
    v
}

fn build(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = Builder::new();
    for (name, mode, data) in files {
        b.add_file(name, *mode, data)
            .unwrap_or_else(|e| panic!("add {name:?}: {e}"));
    }
    b.finish()
}

fn read_default(archive: &[u8]) -> Result<Vec<Entry<'_>>, TarError> {
    read(archive, &Limits::default())
}

/// Names, modes and data, owned, for comparisons.
fn summary(entries: &[Entry<'_>]) -> Vec<(String, u32, Vec<u8>)> {
    entries
        .iter()
        .map(|e| (e.name.to_string(), e.mode, e.data.to_vec()))
        .collect()
}

/// Recomputes the checksum of the header at `offset`, after a test changed it, so the
/// reader gets past the checksum to the check under test.
fn fix_checksum(archive: &mut [u8], offset: usize) {
    let block: &mut [u8; BLOCK_SIZE] = (&mut archive[offset..offset + BLOCK_SIZE])
        .try_into()
        .unwrap();
    let sum = header::checksum(block);
    header::write_octal(&mut block[148..155], sum);
    block[155] = b' ';
}

/// Overwrites a field of the header at `offset` (zero-filled first) and fixes the checksum.
fn set_field(archive: &mut [u8], offset: usize, range: core::ops::Range<usize>, value: &[u8]) {
    let field = &mut archive[offset + range.start..offset + range.end];
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
    fix_checksum(archive, offset);
}

/// A one-file archive whose header is then given `name` (bytes the builder would refuse).
fn with_raw_name(name: &[u8]) -> Vec<u8> {
    let mut a = build(&[("placeholder", 0o644, b"data")]);
    set_field(&mut a, 0, header::NAME, name);
    a
}

/// What the fuzz target checks, for the unit tests to run on corrupted archives: no
/// panic, entries inside the input with valid names, and a rebuild reads back the same.
/// Whether the input was accepted.
fn check_invariants(input: &[u8]) -> bool {
    let Ok(entries) = read_default(input) else {
        return false;
    };
    let range = input.as_ptr_range();
    for e in &entries {
        let r = e.data.as_ptr_range();
        assert!(range.start <= r.start && r.end <= range.end);
        assert_eq!(check_name(&e.name), Ok(()));
        assert!(e.mode <= 0o7777);
    }
    let mut b = Builder::new();
    for e in &entries {
        b.add_file(&e.name, e.mode, e.data).unwrap();
    }
    let rebuilt = b.finish();
    assert_eq!(summary(&read_default(&rebuilt).unwrap()), summary(&entries));
    true
}

// ---- round trips ----

#[test]
fn round_trip_preserves_names_data_modes_and_order() {
    let big: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
    let files: Vec<(&str, u32, &[u8])> = vec![
        ("zeta", 0o644, b"last letter first"),
        ("bin/agent", 0o755, &big),
        ("empty", 0o600, b""),
        ("etc/agent.toml", 0o644, b"x = 1\n"),
        (&long, 0o4755, b"long"),
        ("unicode/\u{e9}t\u{e9}", 0o644, b"\xff\x00"),
    ];
    let archive = build(&files);
    assert_eq!(archive.len() % RECORD_SIZE, 0);
    let entries = read_default(&archive).unwrap();
    let expected: Vec<_> = files
        .iter()
        .map(|(n, m, d)| (n.to_string(), *m, d.to_vec()))
        .collect();
    assert_eq!(summary(&entries), expected);
    assert!(entries.iter().all(|e| e.kind == EntryKind::File));
    // Short names borrow from the header; only prefixed ones are joined.
    assert!(matches!(entries[1].name, Cow::Borrowed(_)));
    assert!(matches!(entries[4].name, Cow::Owned(_)));
}

#[test]
fn builder_is_deterministic() {
    let files: &[(&str, u32, &[u8])] = &[("a", 0o644, b"1"), ("b/c", 0o755, b"22")];
    assert_eq!(build(files), build(files));
}

#[test]
fn header_fields_are_what_tar_expects() {
    let a = build(&[("hello.txt", 0o644, b"hello")]);
    assert_eq!(&a[0..10], b"hello.txt\0");
    assert_eq!(&a[100..108], b"0000644\0");
    assert_eq!(&a[108..116], b"0000000\0");
    assert_eq!(&a[124..136], b"00000000005\0");
    assert_eq!(&a[136..148], b"00000000000\0");
    assert_eq!(a[155], b' ');
    assert_eq!(a[154], 0);
    assert_eq!(a[156], b'0');
    assert_eq!(&a[257..265], b"ustar\x0000");
    assert_eq!(&a[265..270], b"root\0");
    assert_eq!(&a[512..517], b"hello");
    assert!(a[517..].iter().all(|&b| b == 0));
}

#[test]
fn empty_archive() {
    let a = Builder::new().finish();
    assert_eq!(a.len(), RECORD_SIZE);
    assert_eq!(read_default(&a).unwrap(), vec![]);
    assert_eq!(read_default(&[0; BLOCK_SIZE]).unwrap(), vec![]);
}

#[test]
fn sizes_around_block_boundaries() {
    for size in [0, 1, 511, 512, 513, 1023, 1024, 1025, 10240] {
        let data = vec![0xa5; size];
        let a = build(&[("f", 0o644, &data), ("g", 0o644, b"after")]);
        let e = read_default(&a).unwrap();
        assert_eq!(e[0].data, &data[..], "size {size}");
        assert_eq!(e[1].data, b"after", "size {size}");
    }
}

#[test]
fn randomized_round_trips() {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+@ ";
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let mut builder = Builder::new();
        let mut expected = Vec::new();
        for _ in 0..rng.below(12) {
            let components = 1 + rng.below(6);
            let long = rng.below(3) == 0;
            let mut name = String::new();
            for c in 0..components {
                if c > 0 {
                    name.push('/');
                }
                let len = 1 + rng.below(if long { 60 } else { 12 });
                for _ in 0..len {
                    name.push(ALPHABET[rng.below(ALPHABET.len())] as char);
                }
            }
            let size = match rng.below(8) {
                0 => 0,
                1 => 511,
                2 => 512,
                3 => 513,
                _ => rng.below(3000),
            };
            let data = random_bytes(&mut rng, size);
            let mode = (rng.next_u64() & 0o7777) as u32;
            match builder.add_file(&name, mode, &data) {
                Ok(()) => expected.push((name, mode, data)),
                // Random names may be `.`/`..`, too long to split, or clash with earlier
                // ones; the builder refusing them is the rule, checked elsewhere.
                Err(TarError::BadName { reason, .. }) => {
                    assert!(
                        matches!(reason, NameError::DotComponent | NameError::TooLong),
                        "{name:?}: {reason}"
                    );
                }
                Err(TarError::Duplicate { .. } | TarError::PathConflict { .. }) => {}
                Err(e) => panic!("{name:?}: {e}"),
            }
        }
        let archive = builder.finish();
        assert_eq!(summary(&read_default(&archive).unwrap()), expected);
        assert!(check_invariants(&archive));
    }
}

#[test]
fn name_splitting_uses_the_prefix_field() {
    // 100 bytes fit the name field exactly; 101 must split.
    let exact = "n".repeat(100);
    let a = build(&[(&exact, 0o644, b"")]);
    assert_eq!(&a[0..100], exact.as_bytes());
    assert!(a[345..500].iter().all(|&b| b == 0));

    let split = format!("{}/{}", "p".repeat(155), "n".repeat(100));
    assert_eq!(split.len(), MAX_NAME_BYTES);
    let a = build(&[(&split, 0o644, b"")]);
    assert_eq!(&a[345..500], "p".repeat(155).as_bytes());
    assert_eq!(&a[0..100], "n".repeat(100).as_bytes());
    assert_eq!(read_default(&a).unwrap()[0].name, split);

    // The split takes the last `/` within 155 bytes, leaving the shortest name part.
    let several = format!("{}/{}/{}", "a".repeat(50), "b".repeat(50), "c".repeat(50));
    let a = build(&[(&several, 0o644, b"")]);
    assert_eq!(&a[0..51], format!("{}\0", "c".repeat(50)).as_bytes());
    assert_eq!(read_default(&a).unwrap()[0].name, several);
}

// ---- names ----

#[test]
fn check_name_rules() {
    for ok in ["a", "a/b", "a.b/c..d/.e/f.", "...", "\u{e9}", "with space"] {
        assert_eq!(check_name(ok), Ok(()), "{ok:?}");
    }
    let cases = [
        ("", NameError::Empty),
        ("/etc/passwd", NameError::Absolute),
        ("/", NameError::Absolute),
        ("../x", NameError::DotComponent),
        ("a/../b", NameError::DotComponent),
        ("a/./b", NameError::DotComponent),
        (".", NameError::DotComponent),
        ("a/..", NameError::DotComponent),
        ("a//b", NameError::EmptyComponent),
        ("a/", NameError::EmptyComponent),
        ("a\\b", NameError::Backslash),
        ("..\\x", NameError::Backslash),
        ("a\0b", NameError::Nul),
        ("a\nb", NameError::ControlChar),
        ("a\tb", NameError::ControlChar),
        ("a\u{7f}", NameError::ControlChar),
        ("a\u{85}", NameError::ControlChar),
    ];
    for (name, reason) in cases {
        assert_eq!(check_name(name), Err(reason), "{name:?}");
    }
    // Too long: 257 bytes, a 101-byte last component, a split needing a 156-byte prefix.
    assert_eq!(check_name(&"x".repeat(101)), Err(NameError::TooLong));
    let last_too_long = format!("a/{}", "x".repeat(101));
    assert_eq!(check_name(&last_too_long), Err(NameError::TooLong));
    let prefix_too_long = format!("{}/{}", "p".repeat(156), "n".repeat(10));
    assert_eq!(check_name(&prefix_too_long), Err(NameError::TooLong));
    let over = format!("{}/{}", "p".repeat(155), "n".repeat(101));
    assert_eq!(check_name(&over), Err(NameError::TooLong));
}

#[test]
fn builder_refuses_bad_names_modes_and_clashes() {
    let mut b = Builder::new();
    for name in ["../x", "/etc/passwd", "a/./b", "a//b", "", "a\\b"] {
        assert!(
            matches!(
                b.add_file(name, 0o644, b""),
                Err(TarError::BadName { index: 0, .. })
            ),
            "{name:?}"
        );
    }
    assert_eq!(
        b.add_file("x", 0o10644, b""),
        Err(TarError::BadMode {
            index: 0,
            mode: 0o10644
        })
    );
    b.add_file("a/b", 0o644, b"1").unwrap();
    assert_eq!(
        b.add_file("a/b", 0o644, b"2"),
        Err(TarError::Duplicate {
            index: 1,
            name: "a/b".into()
        })
    );
    assert_eq!(
        b.add_file("a", 0o644, b""),
        Err(TarError::PathConflict {
            index: 1,
            name: "a".into(),
            other: "a/b".into()
        })
    );
    assert_eq!(
        b.add_file("a/b/c", 0o644, b""),
        Err(TarError::PathConflict {
            index: 1,
            name: "a/b/c".into(),
            other: "a/b".into()
        })
    );
    // `a-b` sorts between `a` and `a/…`; it is no clash.
    b.add_file("a-b", 0o644, b"").unwrap();
    b.add_file("a/c", 0o644, b"").unwrap();
    // Failed adds wrote nothing.
    let names: Vec<_> = read_default(&b.finish())
        .unwrap()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    assert_eq!(names, ["a/b", "a-b", "a/c"]);
}

#[test]
fn builder_enforces_limits() {
    let limits = Limits {
        max_entries: 2,
        max_entry_bytes: 10,
        max_total_bytes: 15,
    };
    let mut b = Builder::with_limits(limits);
    assert_eq!(
        b.add_file("big", 0o644, &[0; 11]),
        Err(TarError::EntryTooLarge {
            index: 0,
            size: 11,
            limit: 10
        })
    );
    b.add_file("a", 0o644, &[0; 10]).unwrap();
    assert_eq!(
        b.add_file("b", 0o644, &[0; 6]),
        Err(TarError::TotalTooLarge {
            index: 1,
            limit: 15
        })
    );
    b.add_file("b", 0o644, &[0; 5]).unwrap();
    assert_eq!(
        b.add_file("c", 0o644, b""),
        Err(TarError::TooManyEntries { limit: 2 })
    );
    assert_eq!(read(&b.finish(), &limits).unwrap().len(), 2);
}

#[test]
fn reader_refuses_bad_names() {
    let cases: &[(&[u8], NameError)] = &[
        (b"../x", NameError::DotComponent),
        (b"/etc/passwd", NameError::Absolute),
        (b"a/./b", NameError::DotComponent),
        (b"a/b/..", NameError::DotComponent),
        (b"a//b", NameError::EmptyComponent),
        (b"file/", NameError::EmptyComponent),
        (b"a\\..\\b", NameError::Backslash),
        (b"a\0b", NameError::Nul),
        (b"bad\xff\xfe", NameError::NotUtf8),
        (b"a\x1b[31m", NameError::ControlChar),
        (b"", NameError::Empty),
    ];
    for (name, reason) in cases {
        let a = with_raw_name(name);
        match read_default(&a) {
            Err(TarError::BadName {
                index: 0,
                reason: r,
                ..
            }) if r == *reason => {}
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(name)),
        }
    }
    // The error names the entry, lossily.
    let err = read_default(&with_raw_name(b"../x")).unwrap_err();
    assert_eq!(err.to_string(), "entry 0 (\"../x\"): `.` or `..` component");
}

#[test]
fn reader_refuses_bad_prefix() {
    let mut a = build(&[("x", 0o644, b"")]);
    set_field(&mut a, 0, header::PREFIX, b"../up");
    assert!(matches!(
        read_default(&a),
        Err(TarError::BadName {
            reason: NameError::DotComponent,
            ref name,
            ..
        }) if name == "../up/x"
    ));
    set_field(&mut a, 0, header::PREFIX, b"/abs");
    assert!(matches!(
        read_default(&a),
        Err(TarError::BadName {
            reason: NameError::Absolute,
            ..
        })
    ));
    set_field(&mut a, 0, header::PREFIX, b"p\0q");
    assert!(matches!(
        read_default(&a),
        Err(TarError::BadName {
            reason: NameError::Nul,
            ..
        })
    ));
}

#[test]
fn reader_refuses_duplicates_and_clashes() {
    let mut a = build(&[("a", 0o644, b"1"), ("b", 0o644, b"2")]);
    set_field(&mut a, 1024, header::NAME, b"a");
    assert_eq!(
        read_default(&a),
        Err(TarError::Duplicate {
            index: 1,
            name: "a".into()
        })
    );

    // The same name spelled two ways: whole, and split over prefix and name.
    let mut a = build(&[("d/f", 0o644, b"1"), ("x", 0o644, b"2")]);
    set_field(&mut a, 1024, header::PREFIX, b"d");
    set_field(&mut a, 1024, header::NAME, b"f");
    assert!(matches!(
        read_default(&a),
        Err(TarError::Duplicate { index: 1, .. })
    ));

    let mut a = build(&[("a/b", 0o644, b"1"), ("x", 0o644, b"2")]);
    set_field(&mut a, 1024, header::NAME, b"a");
    assert_eq!(
        read_default(&a),
        Err(TarError::PathConflict {
            index: 1,
            name: "a".into(),
            other: "a/b".into()
        })
    );
}

// ---- header fields ----

#[test]
fn checksum_mismatch() {
    let mut a = build(&[("f", 0o644, b"x")]);
    a[150] ^= 1;
    assert!(matches!(
        read_default(&a),
        Err(TarError::BadChecksum { index: 0, .. })
    ));
    // Any changed byte, not just the checksum field.
    let mut a = build(&[("f", 0o644, b"x")]);
    a[0] = b'g';
    assert!(matches!(
        read_default(&a),
        Err(TarError::BadChecksum { index: 0, .. })
    ));
    // The second header is checked too.
    let mut a = build(&[("f", 0o644, b"x"), ("g", 0o644, b"y")]);
    a[1024 + 101] = b'7';
    assert!(matches!(
        read_default(&a),
        Err(TarError::BadChecksum { index: 1, .. })
    ));
}

#[test]
fn signed_checksum_is_refused() {
    // Non-ASCII bytes make the signed and unsigned sums differ.
    let mut a = build(&[("\u{e9}\u{e9}", 0o644, b"")]);
    let signed: i64 = a[..BLOCK_SIZE]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    let unsigned = header::checksum(a[..BLOCK_SIZE].try_into().unwrap());
    assert_ne!(signed as u64, unsigned);
    header::write_octal(&mut a[148..155], signed as u64);
    assert!(matches!(
        read_default(&a),
        Err(TarError::BadChecksum { index: 0, .. })
    ));
}

#[test]
fn checksum_field_forms() {
    // Seven digits and NUL, leading spaces, trailing spaces: all plain octal.
    let a = build(&[("f", 0o644, b"x")]);
    let sum = header::checksum(a[..BLOCK_SIZE].try_into().unwrap());
    for form in [
        format!("{sum:07o}\0"),
        format!("  {sum:o}\0"),
        format!("{sum:o}   "),
    ] {
        let mut b = a.clone();
        b[148..156].copy_from_slice(form.as_bytes());
        assert!(read_default(&b).is_ok(), "{form:?}");
    }
}

#[test]
fn bad_magic() {
    for magic in [
        &b"\0\0\0\0\0\0\0\0"[..],
        b"ustar\x0001",
        b"ustar \0\0",
        b"USTAR\x0000",
    ] {
        let mut a = build(&[("f", 0o644, b"x")]);
        set_field(&mut a, 0, header::MAGIC, magic);
        assert_eq!(
            read_default(&a),
            Err(TarError::BadMagic { index: 0 }),
            "{magic:?}"
        );
    }
    // Not a tar at all.
    let mut junk = vec![b'A'; 2048];
    junk.extend_from_slice(&[0; 1024]);
    assert_eq!(read_default(&junk), Err(TarError::BadMagic { index: 0 }));
}

#[test]
fn gnu_magic_reads_like_ustar() {
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, header::MAGIC, header::GNU_MAGIC);
    assert_eq!(read_default(&a).unwrap()[0].data, b"x");
    // GNU's fields where ustar has its prefix must be empty (no times, no sparse map).
    set_field(&mut a, 0, 345..357, b"14174175044\0");
    assert_eq!(
        read_default(&a),
        Err(TarError::BadField {
            index: 0,
            field: Field::Reserved
        })
    );
}

#[test]
fn bad_numbers() {
    let cases: &[(core::ops::Range<usize>, Field, &[u8])] = &[
        (header::MODE, Field::Mode, b"00006a4\0"),
        (header::MODE, Field::Mode, b"0000648\0"),
        (header::MODE, Field::Mode, b"\0"),
        (header::MODE, Field::Mode, b"-000644\0"),
        (header::UID, Field::Uid, b"00 0000\0"),
        (header::GID, Field::Gid, b"0x10\0"),
        (header::SIZE, Field::Size, b"\x80\0\0\0\0\0\0\0\0\0\0\x01"),
        (header::SIZE, Field::Size, b"1\0\x001"),
        (header::SIZE, Field::Size, b"+1\0"),
        (header::MTIME, Field::Mtime, b"9\0"),
        (header::DEVMAJOR, Field::DevMajor, b"z\0"),
        (header::DEVMINOR, Field::DevMinor, b"0 1\0"),
        (header::CHKSUM, Field::Checksum, b"garbage!"),
    ];
    for (range, field, value) in cases {
        let mut a = build(&[("f", 0o644, b"x")]);
        set_field(&mut a, 0, range.clone(), value);
        if *field == Field::Checksum {
            // fix_checksum would overwrite it.
            a[148..156].copy_from_slice(value);
        }
        assert_eq!(
            read_default(&a),
            Err(TarError::BadNumber {
                index: 0,
                field: *field
            }),
            "{field} = {value:?}"
        );
    }
    // Empty device numbers are what GNU tar writes for files.
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, header::DEVMAJOR, b"");
    set_field(&mut a, 0, header::DEVMINOR, b"");
    assert!(read_default(&a).is_ok());
    // Twelve digits with no terminator still parse.
    assert_eq!(
        header::parse_octal(b"777777777777", false),
        Some(0o777777777777)
    );
    assert_eq!(header::parse_octal(b"   12 \0 ", false), Some(0o12));
}

#[test]
fn mode_with_type_bits_is_refused() {
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, header::MODE, b"0100644\0");
    assert_eq!(
        read_default(&a),
        Err(TarError::BadMode {
            index: 0,
            mode: 0o100644
        })
    );
}

#[test]
fn unsupported_typeflags() {
    for flag in *b"123467xgLKSDMNVA" {
        let mut a = build(&[("link", 0o777, b"")]);
        set_field(&mut a, 0, header::TYPEFLAG..header::TYPEFLAG + 1, &[flag]);
        assert_eq!(
            read_default(&a),
            Err(TarError::Unsupported {
                index: 0,
                name: "link".into(),
                typeflag: flag
            }),
            "typeflag {}",
            flag as char
        );
    }
    let mut a = build(&[("ok", 0o644, b""), ("evil", 0o777, b"")]);
    set_field(&mut a, 512, header::TYPEFLAG..header::TYPEFLAG + 1, b"2");
    set_field(&mut a, 512, header::LINKNAME, b"/etc/shadow");
    let err = read_default(&a).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry 1 (\"evil\"): unsupported entry type '2' (symbolic link), only regular files and directories are accepted"
    );
    // An old-style NUL typeflag is a regular file.
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, header::TYPEFLAG..header::TYPEFLAG + 1, b"\0");
    assert_eq!(read_default(&a).unwrap()[0].data, b"x");
}

#[test]
fn fields_that_must_be_empty() {
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, header::LINKNAME, b"target");
    assert_eq!(
        read_default(&a),
        Err(TarError::BadField {
            index: 0,
            field: Field::LinkName
        })
    );
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, header::UNAME, b"root\0x");
    assert_eq!(
        read_default(&a),
        Err(TarError::BadField {
            index: 0,
            field: Field::Uname
        })
    );
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, header::GNAME, b"\0\x01");
    assert_eq!(
        read_default(&a),
        Err(TarError::BadField {
            index: 0,
            field: Field::Gname
        })
    );
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, 511..512, b"!");
    assert_eq!(
        read_default(&a),
        Err(TarError::BadField {
            index: 0,
            field: Field::Reserved
        })
    );
    let mut a = build(&[("f", 0o644, b"x")]);
    a[512 + 1] = 1;
    assert_eq!(read_default(&a), Err(TarError::NonZeroPadding { index: 0 }));
}

#[test]
fn directories_are_checked_and_skipped() {
    // A directory header is a file header with typeflag 5, size 0 and a trailing `/`.
    let mut a = build(&[("placeholder", 0o755, b""), ("dir/file", 0o644, b"x")]);
    set_field(&mut a, 0, header::NAME, b"dir/");
    set_field(&mut a, 0, header::TYPEFLAG..header::TYPEFLAG + 1, b"5");
    let e = read_default(&a).unwrap();
    assert_eq!(summary(&e), [("dir/file".to_owned(), 0o644, b"x".to_vec())]);
    // Without the trailing slash too.
    set_field(&mut a, 0, header::NAME, b"dir");
    assert_eq!(read_default(&a).unwrap().len(), 1);

    // With data.
    let mut d = a.clone();
    set_field(&mut d, 0, header::SIZE, b"1\0");
    assert_eq!(
        read_default(&d),
        Err(TarError::BadField {
            index: 0,
            field: Field::Size
        })
    );
    // With a bad name.
    let mut d = a.clone();
    set_field(&mut d, 0, header::NAME, b"../");
    assert!(matches!(
        read_default(&d),
        Err(TarError::BadName {
            index: 0,
            reason: NameError::DotComponent,
            ..
        })
    ));
    let mut d = a.clone();
    set_field(&mut d, 0, header::NAME, b"dir//");
    assert!(matches!(
        read_default(&d),
        Err(TarError::BadName {
            reason: NameError::EmptyComponent,
            ..
        })
    ));
    // A directory named like a file, and a file where a directory is.
    let mut d = build(&[("dir", 0o644, b""), ("placeholder", 0o755, b"")]);
    set_field(&mut d, 512, header::NAME, b"dir/");
    set_field(&mut d, 512, header::TYPEFLAG..header::TYPEFLAG + 1, b"5");
    assert_eq!(
        read_default(&d),
        Err(TarError::Duplicate {
            index: 1,
            name: "dir".into()
        })
    );
    set_field(&mut d, 512, header::NAME, b"dir/sub/");
    assert_eq!(
        read_default(&d),
        Err(TarError::PathConflict {
            index: 1,
            name: "dir/sub".into(),
            other: "dir".into()
        })
    );
}

// ---- sizes and limits ----

#[test]
fn huge_size_is_refused_before_reading() {
    let mut a = build(&[("f", 0o644, b"x")]);
    set_field(&mut a, 0, header::SIZE, b"77777777777\0");
    assert_eq!(
        read_default(&a),
        Err(TarError::EntryTooLarge {
            index: 0,
            size: 0o77777777777,
            limit: Limits::default().max_entry_bytes
        })
    );
}

#[test]
fn size_beyond_input_is_truncation() {
    let mut a = build(&[("f", 0o644, b"x")]);
    // Within the limits, past the end of the input.
    set_field(&mut a, 0, header::SIZE, b"100000\0");
    assert_eq!(read_default(&a), Err(TarError::Truncated { index: 0 }));
}

#[test]
fn total_and_entry_count_limits() {
    let a = build(&[
        ("a", 0o644, &[1; 100]),
        ("b", 0o644, &[2; 100]),
        ("c", 0o644, b""),
    ]);
    let limits = Limits {
        max_total_bytes: 150,
        ..Limits::default()
    };
    assert_eq!(
        read(&a, &limits),
        Err(TarError::TotalTooLarge {
            index: 1,
            limit: 150
        })
    );
    let limits = Limits {
        max_entry_bytes: 99,
        ..Limits::default()
    };
    assert!(matches!(
        read(&a, &limits),
        Err(TarError::EntryTooLarge {
            index: 0,
            size: 100,
            limit: 99
        })
    ));
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert_eq!(
        read(&a, &limits),
        Err(TarError::TooManyEntries { limit: 2 })
    );
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    assert_eq!(read(&a, &limits).unwrap().len(), 3);
}

// ---- end of archive ----

#[test]
fn every_truncation_is_refused() {
    let a = build(&[("a", 0o644, &[7; 600]), ("b/c", 0o644, b"")]);
    // Headers and data end at 512 + 1024 + 512; the end block follows.
    let end_block = 2048;
    for cut in 0..end_block + BLOCK_SIZE {
        let r = read_default(&a[..cut]);
        let index = match cut {
            0..512 => 0,
            512..1536 => 0,
            1536..2048 => 1,
            _ => 2,
        };
        let expected = if cut == 0 || cut == 1536 {
            TarError::NoEndMarker { entries: index }
        } else if cut >= end_block {
            // Zeros short of the end block.
            TarError::NoEndMarker { entries: 2 }
        } else {
            TarError::Truncated { index }
        };
        assert_eq!(r, Err(expected), "cut at {cut}");
    }
    // One zero block (the second missing), and any amount of zeros after it, are fine.
    for len in [
        end_block + BLOCK_SIZE,
        end_block + BLOCK_SIZE + 1,
        end_block + 1024,
        a.len(),
    ] {
        assert_eq!(read_default(&a[..len]).unwrap().len(), 2, "length {len}");
    }
    let mut longer = a.clone();
    longer.extend_from_slice(&[0; 100_000]);
    assert_eq!(read_default(&longer).unwrap().len(), 2);
}

#[test]
fn garbage_after_the_end_is_refused() {
    let clean = build(&[("f", 0o644, b"x")]);
    // The end block is at 1024; a non-zero byte in it makes it a (bad) header.
    let mut a = clean.clone();
    a[1024 + 300] = 1;
    assert_eq!(read_default(&a), Err(TarError::BadMagic { index: 1 }));
    for at in [1536, 1536 + 511, 2048, clean.len() - 1] {
        let mut a = clean.clone();
        a[at] = b'!';
        assert_eq!(
            read_default(&a),
            Err(TarError::TrailingGarbage { offset: at }),
            "at {at}"
        );
    }
    let mut a = clean.clone();
    a.extend_from_slice(b"PK\x03\x04");
    assert_eq!(
        read_default(&a),
        Err(TarError::TrailingGarbage {
            offset: clean.len()
        })
    );
    // Another archive after the end block is garbage too, not more entries.
    let mut a = build(&[("f", 0o644, b"x")])[..1536].to_vec();
    a.extend_from_slice(&build(&[("g", 0o644, b"y")]));
    assert_eq!(
        read_default(&a),
        Err(TarError::TrailingGarbage { offset: 1536 })
    );
}

#[test]
fn display_messages() {
    let e = TarError::BadChecksum {
        index: 2,
        stored: 0o1234,
        computed: 0o4321,
    };
    assert_eq!(
        e.to_string(),
        "entry 2: header checksum 1234 does not match computed 4321"
    );
    assert_eq!(
        TarError::NoEndMarker { entries: 3 }.to_string(),
        "archive ends after 3 entries without an end marker"
    );
    assert_eq!(
        TarError::BadField {
            index: 0,
            field: Field::LinkName
        }
        .to_string(),
        "entry 0: linkname field: a link name on a file or directory"
    );
    assert_eq!(
        TarError::Unsupported {
            index: 4,
            name: "x".into(),
            typeflag: 1
        }
        .to_string(),
        "entry 4 (\"x\"): unsupported entry type 0x01, only regular files and directories are accepted"
    );
}

// ---- random corruption ----

#[test]
fn random_corruption_never_panics() {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let long = format!("{}/{}", "d".repeat(130), "f".repeat(80));
    let base = build(&[
        ("a", 0o644, &[1; 700]),
        ("dir/b", 0o755, b"hello"),
        (&long, 0o600, b""),
    ]);
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut a = base.clone();
        match round % 4 {
            // Flip bytes anywhere, mostly in headers.
            0 | 1 => {
                for _ in 0..1 + rng.below(4) {
                    let at = if rng.below(2) == 0 {
                        [0, 1536, 2048][rng.below(3)] + rng.below(BLOCK_SIZE)
                    } else {
                        rng.below(a.len())
                    };
                    a[at] = rng.byte();
                }
            }
            // Flip a byte and fix the checksum, to reach the checks after it.
            2 => {
                let header = [0, 1536, 2048][rng.below(3)];
                let at = header + rng.below(BLOCK_SIZE);
                a[at] = [b'0', b'7', b'/', b'.', 0, b' ', 0xff, rng.byte()][rng.below(8)];
                if !(148..156).contains(&(at - header)) {
                    fix_checksum(&mut a, header);
                }
            }
            // Cut or extend.
            _ => {
                let len = rng.below(a.len() + 600);
                a.resize(len, if rng.below(2) == 0 { 0 } else { 1 });
            }
        }
        if check_invariants(&a) {
            accepted += 1;
        }
    }
    // Enough corrupted archives still parse for the rebuild check to mean something.
    assert!(accepted > 1000, "{accepted} accepted");
}

// ---- interoperability with the host's tar ----

/// The host's `tar`; the interoperability tests need it (Debian always has GNU tar).
fn tar() -> std::process::Command {
    let probe = std::process::Command::new("tar").arg("--version").output();
    match probe {
        Ok(out) if out.status.success() => std::process::Command::new("tar"),
        _ => panic!("the interoperability tests need a `tar` binary on PATH (GNU tar)"),
    }
}

fn run(cmd: &mut std::process::Command) -> Vec<u8> {
    let out = cmd.output().expect("run tar");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh directory for one test, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("plinth-tar-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn host_tar_lists_and_extracts_our_archives() {
    let tmp = TempDir::new("ours");
    let long = format!("{}/{}/agent.wasm", "d".repeat(100), "e".repeat(40));
    let files: Vec<(&str, u32, Vec<u8>)> = vec![
        ("agent.toml", 0o644, b"name = \"demo\"\n".to_vec()),
        ("bin/agent", 0o755, (0..513u32).map(|i| i as u8).collect()),
        ("empty", 0o644, vec![]),
        ("block", 0o600, vec![9; 512]),
        (&long, 0o644, random_bytes(&mut Rng::new(7), 3000)),
    ];
    let mut b = Builder::new();
    for (name, mode, data) in &files {
        b.add_file(name, *mode, data).unwrap();
    }
    let archive = tmp.0.join("agent.tar");
    std::fs::write(&archive, b.finish()).unwrap();

    let listed = run(tar().arg("tf").arg(&archive));
    let names: Vec<&str> = files.iter().map(|f| f.0).collect();
    assert_eq!(
        String::from_utf8(listed)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        names
    );

    let verbose = String::from_utf8(run(tar().arg("tvf").arg(&archive))).unwrap();
    let agent = verbose.lines().find(|l| l.ends_with(" bin/agent")).unwrap();
    assert!(agent.starts_with("-rwxr-xr-x root/root"), "{agent}");

    let out = tmp.0.join("out");
    std::fs::create_dir(&out).unwrap();
    run(tar().arg("xf").arg(&archive).arg("-C").arg(&out));
    for (name, _, data) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
    }
}

#[test]
fn we_read_host_tar_archives() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = TempDir::new("theirs");
    let src = tmp.0.join("src");
    let long_dir = "l".repeat(90);
    std::fs::create_dir_all(src.join("sub").join(&long_dir)).unwrap();
    let files: Vec<(String, Vec<u8>, u32)> = vec![
        ("a.txt".into(), b"alpha\n".to_vec(), 0o644),
        (
            "sub/b.bin".into(),
            random_bytes(&mut Rng::new(11), 1500),
            0o755,
        ),
        (format!("sub/{long_dir}/{}", "c".repeat(30)), vec![], 0o600),
    ];
    for (name, data, mode) in &files {
        let path = src.join(name);
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let expect = |entries: &[Entry<'_>]| {
        let mut got = summary(entries);
        got.sort();
        let mut want: Vec<_> = files
            .iter()
            .map(|(n, d, m)| (n.clone(), *m, d.clone()))
            .collect();
        want.sort();
        assert_eq!(got, want);
    };

    // ustar, with directory entries and a name that needs the prefix field.
    let ustar = tmp.0.join("ustar.tar");
    run(tar()
        .arg("--format=ustar")
        .arg("-cf")
        .arg(&ustar)
        .arg("-C")
        .arg(&src)
        .arg("a.txt")
        .arg("sub"));
    let bytes = std::fs::read(&ustar).unwrap();
    expect(&read_default(&bytes).unwrap());

    // GNU tar's default format: GNU magic. Names over 100 bytes would need a GNU long-name
    // entry, so only the short ones here.
    let gnu = tmp.0.join("gnu.tar");
    run(tar()
        .arg("--format=gnu")
        .arg("-cf")
        .arg(&gnu)
        .arg("-C")
        .arg(&src)
        .arg("a.txt")
        .arg("sub/b.bin"));
    let bytes = std::fs::read(&gnu).unwrap();
    assert_eq!(&bytes[257..265], header::GNU_MAGIC);
    let entries = read_default(&bytes).unwrap();
    assert_eq!(
        summary(&entries),
        [
            ("a.txt".to_owned(), 0o644, files[0].1.clone()),
            ("sub/b.bin".to_owned(), 0o755, files[1].1.clone())
        ]
    );

    // ... and one with a long name is refused, naming the GNU long-name entry.
    let gnu_long = tmp.0.join("gnu-long.tar");
    run(tar()
        .arg("--format=gnu")
        .arg("-cf")
        .arg(&gnu_long)
        .arg("-C")
        .arg(&src)
        .arg(&files[2].0));
    let bytes = std::fs::read(&gnu_long).unwrap();
    assert!(matches!(
        read_default(&bytes),
        Err(TarError::Unsupported {
            index: 0,
            typeflag: b'L',
            ..
        })
    ));

    // A symlink, as tar writes it, is refused.
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
    let links = tmp.0.join("links.tar");
    run(tar()
        .arg("--format=ustar")
        .arg("-cf")
        .arg(&links)
        .arg("-C")
        .arg(&src)
        .arg("a.txt")
        .arg("link"));
    let bytes = std::fs::read(&links).unwrap();
    assert!(matches!(
        read_default(&bytes),
        Err(TarError::Unsupported {
            index: 1,
            typeflag: b'2',
            ref name,
        }) if name == "link"
    ));
}
