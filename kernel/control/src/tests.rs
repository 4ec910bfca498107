extern crate std;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};
use std::collections::BTreeSet;

use plinth_testrng::Rng;

use crate::fuzzing;
use crate::*;

const P: &str = PREFIX;

fn dec(method: &str, path: &str, body: &str) -> Result<Command, ControlError> {
    decode(method, path, body.as_bytes())
}

fn create(body: &str) -> Result<Command, ControlError> {
    dec("POST", P, body)
}

/// The field of an `Invalid` error, or a panic naming what came instead.
#[track_caller]
fn invalid_field(r: Result<Command, ControlError>) -> &'static str {
    match r {
        Err(ControlError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The message of a `BadJson` error, or a panic naming what came instead.
#[track_caller]
fn bad_json(r: Result<Command, ControlError>) -> String {
    match r {
        Err(ControlError::BadJson { message }) => message,
        other => panic!("expected BadJson, got {other:?}"),
    }
}

#[track_caller]
fn ok(r: Result<Command, ControlError>) -> Command {
    r.unwrap_or_else(|e| panic!("expected a command, got {e:?}: {e}"))
}

fn name_of(len: usize) -> String {
    "a".repeat(len)
}

fn with_memory(v: &str) -> String {
    format!(r#"{{"name":"p","memory_mib":{v}}}"#)
}

fn with(field: &str, v: &str) -> String {
    format!(r#"{{"name":"p","memory_mib":64,"{field}":{v}}}"#)
}

fn full_create() -> CreatePartition {
    CreatePartition {
        name: "tenant-a".into(),
        memory_mib: 64,
        cpu_weight: Some(50),
        cpu_cap_percent: Some(20),
        tenant: Some("acme".into()),
        labels: vec!["web".into(), "eu-1".into()],
        disk: Some("tenant-a".into()),
        agents: vec![
            AgentRef {
                name: "hello".into(),
                version: Some("0.1.0".into()),
            },
            AgentRef {
                name: "pinger".into(),
                version: None,
            },
        ],
        nics: vec![NicSpec::new(Some("02:00:5e:10:00:01")), NicSpec::default()],
    }
}

/// One command of every kind (and every action).
fn every_command() -> Vec<Command> {
    let name = String::from("web-1");
    let mut v = vec![
        Command::List,
        Command::Get { name: name.clone() },
        Command::Create(full_create()),
        Command::Create(CreatePartition::new("m", 1)),
        Command::Terminate { name: name.clone() },
        Command::Resize {
            name: name.clone(),
            resize: Resize {
                memory_mib: Some(128),
                cpu_cap_percent: Some(100),
                ..Resize::default()
            },
        },
        Command::Resize {
            name: name.clone(),
            resize: Resize {
                net_bytes_per_sec: Some(1 << 20),
                net_bytes_burst: Some(4 << 20),
                net_packets_per_sec: Some(0),
                ..Resize::default()
            },
        },
        Command::AttachDisk {
            name: name.clone(),
            disk: AttachDisk {
                extent: "data-0".into(),
            },
        },
        Command::DetachDisk { name: name.clone() },
        Command::AttachNic {
            name: name.clone(),
            nic: NicSpec::default(),
        },
        Command::AttachNic {
            name: name.clone(),
            nic: NicSpec::new(Some("0A:1b:2C:3d:4E:5f")),
        },
        Command::DetachNic {
            name: name.clone(),
            index: 7,
        },
    ];
    for action in Action::ALL {
        v.push(Command::Act {
            name: name.clone(),
            action,
        });
    }
    v
}

// ---- routes ----------------------------------------------------------------------------

#[test]
fn every_route_decodes_with_its_method() {
    let n = || String::from("web-1");
    let item = format!("{P}/web-1");
    assert_eq!(ok(dec("GET", P, "")), Command::List);
    assert_eq!(ok(dec("HEAD", P, "")), Command::List);
    assert_eq!(ok(dec("GET", &item, "")), Command::Get { name: n() });
    assert_eq!(ok(dec("HEAD", &item, "")), Command::Get { name: n() });
    assert_eq!(
        ok(create(r#"{"name":"web-1","memory_mib":64}"#)),
        Command::Create(CreatePartition::new("web-1", 64))
    );
    for action in Action::ALL {
        let path = format!("{item}/{}", action.as_str());
        assert_eq!(
            ok(dec("POST", &path, "")),
            Command::Act { name: n(), action }
        );
    }
    assert_eq!(
        ok(dec("DELETE", &item, "")),
        Command::Terminate { name: n() }
    );
    assert_eq!(
        ok(dec(
            "POST",
            &format!("{item}/resize"),
            r#"{"cpu_weight":7}"#
        )),
        Command::Resize {
            name: n(),
            resize: Resize {
                cpu_weight: Some(7),
                ..Resize::default()
            }
        }
    );
    assert_eq!(
        ok(dec("PUT", &format!("{item}/disk"), r#"{"extent":"web-1"}"#)),
        Command::AttachDisk {
            name: n(),
            disk: AttachDisk { extent: n() }
        }
    );
    assert_eq!(
        ok(dec("DELETE", &format!("{item}/disk"), "")),
        Command::DetachDisk { name: n() }
    );
    assert_eq!(
        ok(dec("POST", &format!("{item}/nics"), "{}")),
        Command::AttachNic {
            name: n(),
            nic: NicSpec::default()
        }
    );
    assert_eq!(
        ok(dec(
            "POST",
            &format!("{item}/nics"),
            r#"{"mac":"02:00:00:00:00:01"}"#
        )),
        Command::AttachNic {
            name: n(),
            nic: NicSpec::new(Some("02:00:00:00:00:01"))
        }
    );
    for index in 0..MAX_NICS as u8 {
        assert_eq!(
            ok(dec("DELETE", &format!("{item}/nics/{index}"), "")),
            Command::DetachNic { name: n(), index }
        );
    }
}

#[test]
fn every_other_method_is_refused_with_the_allow_list() {
    let item = format!("{P}/web-1");
    let routes: [(String, &str); 8] = [
        (P.to_string(), "GET, HEAD, POST"),
        (item.clone(), "GET, HEAD, DELETE"),
        (format!("{item}/start"), "POST"),
        (format!("{item}/restart"), "POST"),
        (format!("{item}/resize"), "POST"),
        (format!("{item}/disk"), "PUT, DELETE"),
        (format!("{item}/nics"), "POST"),
        (format!("{item}/nics/3"), "DELETE"),
    ];
    let methods = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "get", "post", "",
    ];
    let mut refused = 0;
    for (path, allow) in &routes {
        for m in methods {
            let allowed = allow.split(", ").any(|a| a == m);
            match dec(m, path, "") {
                Err(ControlError::MethodNotAllowed { allow: a }) => {
                    assert!(!allowed, "{m} {path} refused");
                    assert_eq!(a, *allow, "{m} {path}");
                    refused += 1;
                }
                // Allowed methods get past the method check (a body may still be missing).
                r => assert!(allowed, "{m} {path}: {r:?}"),
            }
        }
    }
    assert_eq!(refused, 8 * methods.len() - 13);
    let e = dec("PATCH", P, "").unwrap_err();
    assert_eq!(e.status(), 405);
    assert_eq!(
        e.to_string(),
        "method not allowed here (allowed: GET, HEAD, POST)"
    );
}

#[test]
fn other_paths_have_no_route() {
    for path in [
        "",
        "/",
        "/api",
        "/api/v1",
        "/api/v1/",
        "/api/v1/partition",
        "/api/v1/partitionsx",
        "/api/v1/partitions/",
        "/api/v1/partitions?x=1",
        "/api/v2/partitions",
        "/API/v1/partitions",
        "api/v1/partitions",
        "//api/v1/partitions",
        "/api/v1/partitions//",
        "/api/v1/partitions//start",
        "/api/v1/partitions/a/",
        "/api/v1/partitions/a//",
        "/api/v1/partitions/a/start/",
        "/api/v1/partitions/a/b/c",
        "/api/v1/partitions/a/start/now",
        "/api/v1/partitions/a/disk/x",
        "/api/v1/partitions/a/fly",
        "/api/v1/partitions/a/Start",
        "/api/v1/partitions/a/START",
        "/api/v1/partitions/a/disks",
        "/api/v1/partitions/a/resize/",
        "/api/v1/partitions/a/resize/0",
        "/api/v1/partitions/a/start/0",
        "/api/v1/partitions/a/nic",
        "/api/v1/partitions/a/NICS",
        "/api/v1/partitions/a/nics/",
        "/api/v1/partitions/a/nics//",
        "/api/v1/partitions/a/nics//0",
        "/api/v1/partitions/a/nics/0/",
        "/api/v1/partitions/a/nics/0/x",
        "/api/v1/partitions/a/nics/0/0",
        "/api/v1/partitions/a/%73tart",
        "/api/v1/status",
        "/api/v1/health",
    ] {
        for m in ["GET", "POST", "PUT", "DELETE"] {
            let e = dec(m, path, "").unwrap_err();
            assert_eq!(e, ControlError::NoRoute, "{m} {path:?}");
            assert_eq!(e.status(), 404);
        }
    }
}

#[test]
fn a_bad_name_in_the_path_is_invalid_on_every_route() {
    let bad = [
        "A",
        "-a",
        "a_b",
        "a.b",
        "a%20b",
        "a b",
        "é",
        "a?x=1",
        &name_of(MAX_NAME + 1),
    ];
    for name in bad {
        for (m, suffix, body) in [
            ("GET", "", ""),
            ("HEAD", "", ""),
            ("DELETE", "", ""),
            ("POST", "/start", ""),
            ("POST", "/stop", ""),
            ("POST", "/restart", ""),
            ("POST", "/resize", r#"{"memory_mib":1}"#),
            ("PUT", "/disk", r#"{"extent":"x"}"#),
            ("DELETE", "/disk", ""),
            ("POST", "/nics", "{}"),
            ("DELETE", "/nics/0", ""),
            // The name is checked before the index.
            ("DELETE", "/nics/x", ""),
        ] {
            let path = format!("{P}/{name}{suffix}");
            assert_eq!(invalid_field(dec(m, &path, body)), "name", "{m} {path}");
        }
    }
    // The name is checked before the body is read.
    assert_eq!(
        invalid_field(dec("POST", &format!("{P}/A/resize"), "garbage")),
        "name"
    );
}

// ---- names -----------------------------------------------------------------------------

/// Whether an appliance spec accepts a partition of this name: the rule the API's must
/// match, since a partition created over the API may take a data extent, and extents
/// carry their partition's name in the GPT entry as the spec's do.
fn spec_accepts(name: &str) -> bool {
    // A TOML basic string; control characters as `\uXXXX`.
    let mut quoted = String::from("\"");
    for c in name.chars() {
        match c {
            '"' | '\\' => quoted.extend(['\\', c]),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    let spec = format!(
        "kind = \"appliance\"\nname = \"edge\"\nversion = \"1.0.0\"\n\
         trusted_keys = [\"keys/ops.pub\"]\n\n\
         [machine]\nmemory_mib = 256\ncpus = 1\n\n\
         [[partition]]\nname = {quoted}\nmemory_mib = 4\ncpus = 1\n"
    );
    plinth_policy::appliance::Appliance::parse(&spec, 0).is_ok()
}

#[test]
fn name_rule_matches_appliance_partition_names() {
    // The GPT entry's name field holds 36 UTF-16 code units: 36 ASCII characters fit, 37
    // do not, whatever the constants say.
    assert!(spec_accepts(&name_of(36)) && check_name(&name_of(36)).is_ok());
    assert!(!spec_accepts(&name_of(37)) && check_name(&name_of(37)).is_err());
    for good in [
        "a",
        "0",
        "mgmt",
        "tenant-a",
        "9lives",
        "a-",
        "a--b",
        &name_of(MAX_NAME),
    ] {
        assert_eq!(check_name(good), Ok(()), "{good:?}");
        assert!(spec_accepts(good), "{good:?} is refused in a spec");
        assert_eq!(
            ok(create(&format!(r#"{{"name":"{good}","memory_mib":1}}"#))),
            Command::Create(CreatePartition::new(good, 1))
        );
    }
    for bad in [
        "",
        "-",
        "-a",
        "A",
        "aB",
        "a_b",
        "a b",
        " a",
        "a/b",
        "a.b",
        "ä",
        "a\u{0}",
        "a\n",
        &name_of(MAX_NAME + 1),
        &name_of(63),
        &name_of(64),
        &name_of(1000),
    ] {
        let e = check_name(bad).unwrap_err();
        assert!(!spec_accepts(bad), "{bad:?} is accepted in a spec");
        assert_eq!(e.status(), 422);
        assert!(
            matches!(&e, ControlError::Invalid { field: "name", .. }),
            "{bad:?}: {e:?}"
        );
        let text = e.to_string();
        assert!(!text.contains('\n') && text.len() < 160, "{text}");
    }
    assert_eq!(
        check_name("Web").unwrap_err().to_string(),
        "invalid name: \"Web\" must start with a lowercase letter or a digit"
    );
    assert_eq!(
        check_name(&name_of(37)).unwrap_err().to_string(),
        format!(
            "invalid name: \"{}\" is 37 characters; at most 36 fit the GPT entry of a data extent",
            name_of(37)
        )
    );
}
// ---- create: field bounds --------------------------------------------------------------

#[test]
fn memory_bounds() {
    assert!(create(&with_memory("1")).is_ok());
    assert!(create(&with_memory("1048576")).is_ok());
    for v in ["0", "1048577", "4294967296", "18446744073709551615"] {
        assert_eq!(invalid_field(create(&with_memory(v))), "memory_mib", "{v}");
    }
    for v in [
        "18446744073709551616",
        "-1",
        "1.5",
        "1e3",
        "\"64\"",
        "null",
        "true",
        "[]",
        "{}",
        "01",
        "+1",
        "",
    ] {
        bad_json(create(&with_memory(v)));
    }
    assert_eq!(
        create(&with_memory("0")).unwrap_err().to_string(),
        "invalid memory_mib: 0 is out of range: 1 to 1048576 MiB"
    );
}

#[test]
fn cpu_weight_and_cap_bounds() {
    for (field, max) in [("cpu_weight", MAX_CPU_WEIGHT), ("cpu_cap_percent", 100)] {
        assert!(create(&with(field, "1")).is_ok());
        assert!(create(&with(field, &max.to_string())).is_ok());
        assert!(create(&with(field, "null")).is_ok());
        for v in ["0".to_string(), (max + 1).to_string(), u32::MAX.to_string()] {
            assert_eq!(
                invalid_field(create(&with(field, &v))),
                field,
                "{field}={v}"
            );
        }
        for v in ["4294967296", "-1", "50.0", "\"50\"", "[50]"] {
            bad_json(create(&with(field, v)));
        }
        // The same bounds in a resize.
        let resize = format!("{P}/p/resize");
        assert!(dec("POST", &resize, &format!(r#"{{"{field}":1}}"#)).is_ok());
        assert!(dec("POST", &resize, &format!(r#"{{"{field}":{max}}}"#)).is_ok());
        for v in [0, max + 1] {
            let body = format!(r#"{{"{field}":{v}}}"#);
            assert_eq!(invalid_field(dec("POST", &resize, &body)), field);
        }
    }
}

#[test]
fn tenant_rule() {
    assert!(create(&with("tenant", r#""acme""#)).is_ok());
    assert!(create(&with("tenant", &format!("\"{}\"", name_of(63)))).is_ok());
    assert!(create(&with("tenant", "null")).is_ok());
    for v in [
        "\"\"",
        "\"Acme\"",
        "\"-a\"",
        "\"a b\"",
        &format!("\"{}\"", name_of(64)),
    ] {
        assert_eq!(invalid_field(create(&with("tenant", v))), "tenant", "{v}");
    }
    for v in ["1", "[\"a\"]", "{}"] {
        bad_json(create(&with("tenant", v)));
    }
}

#[test]
fn label_rules() {
    let labels = |n: usize| {
        let l: Vec<String> = (0..n).map(|i| format!("\"l{i}\"")).collect();
        format!("[{}]", l.join(","))
    };
    assert!(create(&with("labels", "[]")).is_ok());
    assert!(create(&with("labels", &labels(MAX_LABELS))).is_ok());
    assert!(create(&with("labels", &format!("[\"{}\"]", name_of(63)))).is_ok());
    assert_eq!(
        invalid_field(create(&with("labels", &labels(MAX_LABELS + 1)))),
        "labels"
    );
    for v in [
        "[\"\"]",
        "[\"Web\"]",
        "[\"a\",\"-b\"]",
        "[\"a\",\"a\"]",
        &format!("[\"{}\"]", name_of(64)),
    ] {
        assert_eq!(invalid_field(create(&with("labels", v))), "labels", "{v}");
    }
    for v in [
        "null", "\"web\"", "[1]", "[null]", "[[]]", "{}", "[\"a\",]", "[,]",
    ] {
        bad_json(create(&with("labels", v)));
    }
    assert_eq!(
        create(&with("labels", "[\"a\",\"a\"]"))
            .unwrap_err()
            .to_string(),
        "invalid labels: \"a\" is listed twice"
    );
}

#[test]
fn disk_and_extent_rule() {
    assert!(create(&with("disk", r#""data-1""#)).is_ok());
    assert!(create(&with("disk", &format!("\"{}\"", name_of(MAX_NAME)))).is_ok());
    for v in [
        "\"\"",
        "\"D\"",
        "\"-d\"",
        &format!("\"{}\"", name_of(MAX_NAME + 1)),
    ] {
        assert_eq!(invalid_field(create(&with("disk", v))), "disk", "{v}");
    }
    bad_json(create(&with("disk", "7")));
    let disk = format!("{P}/p/disk");
    assert!(dec("PUT", &disk, r#"{"extent":"x"}"#).is_ok());
    let long = format!(r#"{{"extent":"{}"}}"#, name_of(MAX_NAME + 1));
    for body in [r#"{"extent":""}"#, r#"{"extent":"X"}"#, long.as_str()] {
        assert_eq!(invalid_field(dec("PUT", &disk, body)), "extent", "{body}");
    }
    for body in [
        "",
        "{}",
        r#"{"extent":null}"#,
        r#"{"extent":1}"#,
        r#"{"disk":"x"}"#,
    ] {
        bad_json(dec("PUT", &disk, body));
    }
    assert_eq!(
        bad_json(dec("PUT", &disk, "{}")),
        "missing field extent in a disk attachment"
    );
}

#[test]
fn agent_rules() {
    let agents = |n: usize| {
        let a: Vec<String> = (0..n).map(|i| format!(r#"{{"name":"a{i}"}}"#)).collect();
        format!("[{}]", a.join(","))
    };
    let one = |a: &str| with("agents", &format!("[{a}]"));
    assert!(create(&with("agents", "[]")).is_ok());
    assert!(create(&with("agents", &agents(MAX_AGENTS))).is_ok());
    assert!(create(&one(r#"{"name":"hello","version":"0.1.0"}"#)).is_ok());
    assert!(create(&one(r#"{"name":"hello","version":null}"#)).is_ok());
    assert!(create(&one(r#"{"name":"hello","version":"4294967295.0.10"}"#)).is_ok());
    assert_eq!(
        invalid_field(create(&with("agents", &agents(MAX_AGENTS + 1)))),
        "agents"
    );
    for a in [
        r#"{"name":""}"#,
        r#"{"name":"Hello"}"#,
        r#"{"name":"-x"}"#,
        r#"{"name":"hello","version":""}"#,
        r#"{"name":"hello","version":"1"}"#,
        r#"{"name":"hello","version":"1.0"}"#,
        r#"{"name":"hello","version":"1.0.0.0"}"#,
        r#"{"name":"hello","version":"01.0.0"}"#,
        r#"{"name":"hello","version":"v1.0.0"}"#,
        r#"{"name":"hello","version":"1.0.0-rc1"}"#,
        r#"{"name":"hello","version":"1.0.x"}"#,
        r#"{"name":"hello","version":"4294967296.0.0"}"#,
        r#"{"name":"hello"},{"name":"hello","version":"0.1.0"}"#,
    ] {
        assert_eq!(invalid_field(create(&one(a))), "agents", "{a}");
    }
    let long = format!(r#"{{"name":"{}"}}"#, name_of(64));
    assert_eq!(invalid_field(create(&one(&long))), "agents");
    for a in [
        r#""hello""#,
        r#"{}"#,
        r#"{"version":"0.1.0"}"#,
        r#"{"name":"hello","nme":"x"}"#,
        r#"{"name":"hello","version":1}"#,
        r#"{"name":"a","name":"b"}"#,
        r#"null"#,
    ] {
        bad_json(create(&one(a)));
    }
    assert_eq!(
        bad_json(create(&one(
            r#"{"name":"hello"},{"name":"x","vers":"1.0.0"}"#
        ))),
        "unknown field \"agents[1].vers\" in an agent; it takes name, version"
    );
    assert_eq!(
        bad_json(create(&one(r#"{"version":"0.1.0"}"#))),
        "missing field agents[0].name in an agent"
    );
    assert_eq!(
        create(&one(r#"{"name":"hello","version":"1.0"}"#))
            .unwrap_err()
            .to_string(),
        "invalid agents: agent hello version \"1.0\": expected MAJOR.MINOR.PATCH"
    );
}

#[test]
fn mac_addresses() {
    for (text, mac) in [
        ("02:00:00:00:00:01", [2, 0, 0, 0, 0, 1]),
        ("52:54:00:12:34:56", [0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        ("0A:1b:2C:3d:4E:5f", [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]),
        ("fe:ff:ff:ff:ff:ff", [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ("00:00:00:00:00:01", [0, 0, 0, 0, 0, 1]),
    ] {
        assert_eq!(parse_mac(text), Ok(mac), "{text}");
        assert_eq!(parse_mac(&format_mac(mac)), Ok(mac));
        assert_eq!(format_mac(mac), text.to_ascii_lowercase());
    }
    for bad in [
        "",
        ":",
        "02",
        "02:00:00:00:00",
        "02:00:00:00:00:01:",
        "02:00:00:00:00:01:02",
        ":02:00:00:00:00:01",
        "02:00:00:00:00:1",
        "02:00:00:00:00:001",
        "02-00-00-00-00-01",
        "0200.0000.0001",
        "020000000001",
        "02:00:00:00:00:0g",
        "02:00:00:00:00:+1",
        "02:00:00:00:00:-1",
        "02:00:00:00:00: 1",
        " 02:00:00:00:00:01",
        "02:00:00:00:00:01\n",
        "02::00:00:00:00:01",
        "０2:00:00:00:00:01",
        "02:00:00:00:00:é",
    ] {
        let e = parse_mac(bad).unwrap_err();
        assert!(
            matches!(&e, ControlError::Invalid { field: "mac", .. }),
            "{bad:?}: {e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("is not a MAC address") && !text.contains('\n'),
            "{text}"
        );
    }
    // Multicast (and broadcast) addresses are no NIC's; nor is all zeros.
    for multicast in [
        "01:00:5e:00:00:01",
        "33:33:00:00:00:01",
        "ff:ff:ff:ff:ff:ff",
        "03:00:00:00:00:00",
    ] {
        let text = parse_mac(multicast).unwrap_err().to_string();
        assert!(text.contains("multicast"), "{text}");
    }
    assert_eq!(
        parse_mac("01:00:5e:00:00:01").unwrap_err().to_string(),
        "invalid mac: \"01:00:5e:00:00:01\" is a multicast address (the first octet's low \
         bit is set); a NIC needs a unicast one"
    );
    assert_eq!(
        parse_mac("00:00:00:00:00:00").unwrap_err().to_string(),
        "invalid mac: \"00:00:00:00:00:00\" is all zeros, which is no station's address"
    );
    assert_eq!(
        parse_mac("nope").unwrap_err().to_string(),
        "invalid mac: \"nope\" is not a MAC address: expected xx:xx:xx:xx:xx:xx in hex"
    );
    assert_eq!(NicSpec::new(None).parsed_mac(), Ok(None));
    assert_eq!(
        NicSpec::new(Some("02:00:00:00:00:0a")).parsed_mac(),
        Ok(Some([2, 0, 0, 0, 0, 10]))
    );
}

#[test]
fn nics_at_creation() {
    let nics = |n: usize| {
        let v: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"mac":"02:00:00:00:00:{i:02x}"}}"#))
            .collect();
        format!("[{}]", v.join(","))
    };
    assert!(create(&with("nics", "[]")).is_ok());
    assert!(create(&with("nics", "[{}]")).is_ok());
    assert!(create(&with("nics", "[{},{},{}]")).is_ok());
    assert!(create(&with("nics", r#"[{"mac":null}]"#)).is_ok());
    assert!(create(&with("nics", &nics(MAX_NICS))).is_ok());
    let many = format!("[{}]", ["{}"; MAX_NICS + 1].join(","));
    assert_eq!(invalid_field(create(&with("nics", &many))), "nics");
    assert_eq!(
        invalid_field(create(&with("nics", &nics(MAX_NICS + 1)))),
        "nics"
    );
    assert_eq!(
        create(&with("nics", &many)).unwrap_err().to_string(),
        "invalid nics: 9 NICs; at most 8"
    );
    match ok(create(&with("nics", r#"[{},{"mac":"02:AA:00:00:00:01"}]"#))) {
        Command::Create(c) => assert_eq!(
            c.nics,
            [NicSpec::default(), NicSpec::new(Some("02:AA:00:00:00:01"))]
        ),
        other => panic!("{other:?}"),
    }
    for v in [
        r#"[{"mac":""}]"#,
        r#"[{"mac":"01:00:00:00:00:01"}]"#,
        r#"[{},{"mac":"02:00:00:00:00"}]"#,
        r#"[{"mac":"00:00:00:00:00:00"}]"#,
        // One MAC twice, however it is written.
        r#"[{"mac":"02:00:00:00:00:0a"},{"mac":"02:00:00:00:00:0A"}]"#,
    ] {
        assert_eq!(invalid_field(create(&with("nics", v))), "nics", "{v}");
    }
    assert_eq!(
        create(&with("nics", r#"[{},{"mac":"x"}]"#))
            .unwrap_err()
            .to_string(),
        "invalid nics: NIC 1: \"x\" is not a MAC address: expected xx:xx:xx:xx:xx:xx in hex"
    );
    assert_eq!(
        create(&with(
            "nics",
            r#"[{"mac":"02:00:00:00:00:0a"},{"mac":"02:00:00:00:00:0A"}]"#
        ))
        .unwrap_err()
        .to_string(),
        "invalid nics: NIC 1: MAC 02:00:00:00:00:0a is listed twice"
    );
    for v in [
        "{}",
        "null",
        r#""02:00:00:00:00:01""#,
        r#"["02:00:00:00:00:01"]"#,
        "[null]",
        "[[]]",
        r#"[{"mac":1}]"#,
        r#"[{"mac":["02:00:00:00:00:01"]}]"#,
        r#"[{"mac":"a","mac":"b"}]"#,
        r#"[{"macaddr":"02:00:00:00:00:01"}]"#,
        "[{},]",
    ] {
        bad_json(create(&with("nics", v)));
    }
    // The nested fields are named, in whichever nested array they are.
    assert_eq!(
        bad_json(create(&with("nics", r#"[{},{"mc":"02:00:00:00:00:01"}]"#))),
        "unknown field \"nics[1].mc\" in a NIC; it takes mac"
    );
    assert_eq!(
        bad_json(create(&with("nics", r#"[{"mac":"a","mac":"b"}]"#))),
        "field nics[0].mac is given twice"
    );
    let both = r#"{"name":"p","memory_mib":1,"nics":[{}],"agents":[{"name":"a","x":1}]}"#;
    assert_eq!(
        bad_json(create(both)),
        "unknown field \"agents[0].x\" in an agent; it takes name, version"
    );
    let both = r#"{"name":"p","memory_mib":1,"agents":[{"name":"a"}],"nics":[{"x":1}]}"#;
    assert_eq!(
        bad_json(create(both)),
        "unknown field \"nics[0].x\" in a NIC; it takes mac"
    );
}

#[test]
fn attach_nic_bodies() {
    let path = format!("{P}/p/nics");
    let attach = |body: &str| dec("POST", &path, body);
    for (body, mac) in [
        ("{}", None),
        (" { } ", None),
        (r#"{"mac":null}"#, None),
        (r#"{"mac":"02:00:00:00:00:01"}"#, Some("02:00:00:00:00:01")),
        (
            r#"{"m\u0061c":"02:00:00:00:00:01"}"#,
            Some("02:00:00:00:00:01"),
        ),
        (
            r#"{"mac":"\u0030\u0032:00:00:00:00:01"}"#,
            Some("02:00:00:00:00:01"),
        ),
    ] {
        assert_eq!(
            ok(attach(body)),
            Command::AttachNic {
                name: "p".into(),
                nic: NicSpec::new(mac)
            },
            "{body}"
        );
    }
    for body in [
        r#"{"mac":""}"#,
        r#"{"mac":"ff:ff:ff:ff:ff:ff"}"#,
        r#"{"mac":"02:00:00:00:00:01 "}"#,
        r#"{"mac":"02:00:00:00:00:01\n"}"#,
        r#"{"mac":"02:00:00:00:00:01\u0000"}"#,
    ] {
        assert_eq!(invalid_field(attach(body)), "mac", "{body}");
    }
    for body in [
        "",
        "null",
        "[]",
        r#"[{}]"#,
        r#""02:00:00:00:00:01""#,
        r#"{"mac":2}"#,
        r#"{"mac":{}}"#,
        r#"{"index":1}"#,
        r#"{"mac":null,"mac":null}"#,
        "{",
    ] {
        bad_json(attach(body));
    }
    assert_eq!(
        bad_json(attach(r#"{"vlan":10}"#)),
        "unknown field \"vlan\" in a NIC; it takes mac"
    );
    assert_eq!(
        bad_json(attach("")),
        "expected a JSON object describing a NIC"
    );
}

#[test]
fn nic_index_in_the_path() {
    let detach = |index: &str| dec("DELETE", &format!("{P}/p/nics/{index}"), "");
    for i in 0..MAX_NICS {
        assert_eq!(
            ok(detach(&i.to_string())),
            Command::DetachNic {
                name: "p".into(),
                index: i as u8
            }
        );
    }
    for bad in [
        "8",
        "9",
        "10",
        "255",
        "256",
        "1000",
        "99999999999999999999999",
        "00",
        "01",
        "007",
        "+1",
        "-1",
        "1.0",
        "0x1",
        "1e0",
        " 1",
        "1 ",
        "a",
        "%30",
        "٣",
        "١",
    ] {
        let e = detach(bad).unwrap_err();
        assert!(
            matches!(&e, ControlError::Invalid { field: "index", .. }),
            "{bad:?}: {e:?}"
        );
        assert_eq!(e.status(), 422);
        assert!(!e.to_string().contains('\n'), "{e}");
    }
    assert_eq!(
        detach("8").unwrap_err().to_string(),
        "invalid index: 8 is out of range: 0 to 7"
    );
    assert_eq!(
        detach("256").unwrap_err().to_string(),
        "invalid index: \"256\" is out of range: 0 to 7"
    );
    assert_eq!(
        detach("01").unwrap_err().to_string(),
        "invalid index: \"01\" is not a NIC number: 0 to 7, in decimal without leading zeros"
    );
    // The index is checked before the body; a body is refused after it.
    assert_eq!(
        invalid_field(dec("DELETE", &format!("{P}/p/nics/x"), "{}")),
        "index"
    );
    assert_eq!(
        bad_json(dec("DELETE", &format!("{P}/p/nics/0"), "{}")),
        "no body expected"
    );
    // A command built with an index out of range does not validate.
    let c = Command::DetachNic {
        name: "p".into(),
        index: MAX_NICS as u8,
    };
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "invalid index: 8 is out of range: 0 to 7"
    );
}

#[test]
fn network_rates_in_a_resize() {
    let path = format!("{P}/p/resize");
    let resize = |body: &str| dec("POST", &path, body);
    let get = |body: &str| match ok(resize(body)) {
        Command::Resize { resize, .. } => resize,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        get(r#"{"net_bytes_per_sec":1048576}"#),
        Resize {
            net_bytes_per_sec: Some(1 << 20),
            ..Resize::default()
        }
    );
    assert_eq!(
        get(
            r#"{"net_bytes_per_sec":1,"net_bytes_burst":1,"net_packets_per_sec":18446744073709551615,"net_packets_burst":18446744073709551615}"#
        ),
        Resize {
            net_bytes_per_sec: Some(1),
            net_bytes_burst: Some(1),
            net_packets_per_sec: Some(u64::MAX),
            net_packets_burst: Some(u64::MAX),
            ..Resize::default()
        }
    );
    // 0 removes a limit; with the memory in one request.
    let off = get(r#"{"memory_mib":64,"net_bytes_per_sec":0,"net_packets_per_sec":0}"#);
    assert_eq!(
        (
            off.memory_mib,
            off.net_bytes_per_sec,
            off.net_packets_per_sec
        ),
        (Some(64), Some(0), Some(0))
    );
    assert!(off.has_network() && !Resize::default().has_network());
    for (body, field) in [
        (r#"{"net_bytes_burst":10}"#, "net_bytes_burst"),
        (r#"{"net_packets_burst":10}"#, "net_packets_burst"),
        (
            r#"{"net_bytes_per_sec":null,"net_bytes_burst":10}"#,
            "net_bytes_burst",
        ),
        (
            r#"{"net_bytes_per_sec":0,"net_bytes_burst":10}"#,
            "net_bytes_burst",
        ),
        (
            r#"{"net_bytes_per_sec":0,"net_bytes_burst":0}"#,
            "net_bytes_burst",
        ),
        (
            r#"{"net_bytes_per_sec":10,"net_bytes_burst":9}"#,
            "net_bytes_burst",
        ),
        (
            r#"{"net_bytes_per_sec":10,"net_bytes_burst":0}"#,
            "net_bytes_burst",
        ),
        (
            r#"{"net_packets_per_sec":10,"net_packets_burst":9}"#,
            "net_packets_burst",
        ),
        // A burst given with the other bucket's rate is still without its own.
        (
            r#"{"net_packets_per_sec":10,"net_bytes_burst":10}"#,
            "net_bytes_burst",
        ),
        // The other fields are checked first.
        (r#"{"memory_mib":0,"net_bytes_burst":10}"#, "memory_mib"),
    ] {
        assert_eq!(invalid_field(resize(body)), field, "{body}");
    }
    assert_eq!(
        resize(r#"{"net_bytes_burst":10}"#).unwrap_err().to_string(),
        "invalid net_bytes_burst: a burst needs net_bytes_per_sec in the same resize"
    );
    assert_eq!(
        resize(r#"{"net_packets_per_sec":10,"net_packets_burst":9}"#)
            .unwrap_err()
            .to_string(),
        "invalid net_packets_burst: 9 is below net_packets_per_sec 10; a burst holds at \
         least one second of the rate"
    );
    assert_eq!(
        resize(r#"{"net_bytes_per_sec":0,"net_bytes_burst":10}"#)
            .unwrap_err()
            .to_string(),
        "invalid net_bytes_burst: net_bytes_per_sec 0 removes the limit; a burst has \
         nothing to hold"
    );
    for body in [
        r#"{"net_bytes_per_sec":-1}"#,
        r#"{"net_bytes_per_sec":18446744073709551616}"#,
        r#"{"net_bytes_per_sec":1.5}"#,
        r#"{"net_bytes_per_sec":"1MiB"}"#,
        r#"{"net_bytes_per_sec":1e6}"#,
        r#"{"net_packets_burst":[1]}"#,
        r#"{"net_rate":1}"#,
    ] {
        bad_json(resize(body));
    }
}

// ---- bodies ----------------------------------------------------------------------------

#[test]
fn unknown_duplicate_and_missing_fields_are_named() {
    assert_eq!(
        bad_json(create(r#"{"name":"p","memory_mib":1,"nme":"x"}"#)),
        "unknown field \"nme\" in a new partition; it takes name, memory_mib, cpu_weight, \
         cpu_cap_percent, tenant, labels, disk, agents, nics"
    );
    assert_eq!(
        bad_json(create(r#"{"name":"p","name":"q","memory_mib":1}"#)),
        "field name is given twice"
    );
    assert_eq!(
        bad_json(create(r#"{"name":"p"}"#)),
        "missing field memory_mib in a new partition"
    );
    assert_eq!(
        bad_json(create("{}")),
        "missing field name in a new partition"
    );
    // An escaped key is the key it spells.
    assert!(create(r#"{"n\u0061me":"p","memory_mib":1}"#).is_ok());
    assert_eq!(
        bad_json(create(r#"{"name":"p","memory_mib":1,"\u00e9":1}"#)),
        "unknown field \"é\" in a new partition; it takes name, memory_mib, cpu_weight, \
         cpu_cap_percent, tenant, labels, disk, agents, nics"
    );
    let resize = format!("{P}/p/resize");
    assert_eq!(
        bad_json(dec("POST", &resize, r#"{"memory":64}"#)),
        "unknown field \"memory\" in a resize; it takes memory_mib, cpu_weight, \
         cpu_cap_percent, net_bytes_per_sec, net_bytes_burst, net_packets_per_sec, \
         net_packets_burst, memory_high_mib, disk_iops, disk_iops_burst, disk_bytes_per_sec, \
         disk_bytes_burst"
    );
    // A long unknown key is cut in the message (no 64-byte buffer to overflow).
    let key = "é".repeat(200);
    let msg = bad_json(create(&format!(r#"{{"{key}":1}}"#)));
    assert!(
        msg.starts_with("unknown field \"éééé") && msg.len() < 250,
        "{msg}"
    );
}

#[test]
fn deep_nesting_is_refused_without_deep_recursion() {
    // An unknown field sends the body to the key scan, which skips values by recursion:
    // past a few levels it does not scan at all. (The typed decoder refuses a nested value
    // where its field's type has none, at the first bracket.)
    let deep = |n: usize| format!(r#"{{"x":{}{}}}"#, "[".repeat(n), "]".repeat(n));
    assert_eq!(
        bad_json(create(&deep(MAX_BODY / 2 - 4))),
        "the body does not describe a new partition"
    );
    assert!(bad_json(create(&deep(3))).starts_with("unknown field \"x\""));
    let deep_value = format!(
        r#"{{"name":"p","memory_mib":1,"labels":{}}}"#,
        "[".repeat(MAX_BODY / 2)
    );
    bad_json(create(&deep_value));
    // Brackets inside strings do not count.
    let quoted = format!(r#"{{"x":"{}\"[","name":"p"}}"#, "[".repeat(100));
    assert!(bad_json(create(&quoted)).starts_with("unknown field \"x\""));
    let nested = r#"{"name":"p","memory_mib":1,"agents":[{"name":"a","x":{"y":[{}]}}]}"#;
    assert_eq!(
        bad_json(create(nested)),
        "unknown field \"agents[0].x\" in an agent; it takes name, version"
    );
}

#[test]
fn wrong_types_are_bad_json() {
    for body in [
        r#"[]"#,
        r#""p""#,
        r#"null"#,
        r#"5"#,
        r#"true"#,
        r#"{"name":5,"memory_mib":1}"#,
        r#"{"name":null,"memory_mib":1}"#,
        r#"{"name":["p"],"memory_mib":1}"#,
        r#"{"name":{"x":1},"memory_mib":1}"#,
        r#"{"name":"p","memory_mib":"1"}"#,
        r#"{"name":"p","memory_mib":1,"labels":"a"}"#,
        r#"{"name":"p","memory_mib":1,"agents":{}}"#,
        r#"{"name":"p","memory_mib":1,"agents":["hello"]}"#,
        r#"{name:"p","memory_mib":1}"#,
        r#"{'name':'p','memory_mib':1}"#,
    ] {
        let m = bad_json(create(body));
        assert!(!m.contains('\n'), "{m}");
    }
}

#[test]
fn syntax_errors_and_trailing_data_are_bad_json() {
    for body in [
        "{",
        "}",
        r#"{"name":"p","memory_mib":1,}"#,
        r#"{"name":"p","memory_mib":1} x"#,
        r#"{"name":"p","memory_mib":1}{}"#,
        r#"{"name":"p" "memory_mib":1}"#,
        r#"{"name":"p","memory_mib"1}"#,
        r#"{"name":"p,"memory_mib":1}"#,
        "\u{feff}{\"name\":\"p\",\"memory_mib\":1}",
    ] {
        bad_json(create(body));
    }
    // Whitespace around the value is JSON.
    assert!(create(" \r\n\t{ \"name\" : \"p\" , \"memory_mib\" : 1 } \n").is_ok());
    // Invalid UTF-8 in a string.
    bad_json(decode("POST", P, b"{\"name\":\"\xff\",\"memory_mib\":1}"));
}

#[test]
fn escapes_are_decoded_or_refused() {
    assert_eq!(
        ok(create(r#"{"name":"\u0061b\u0063","memory_mib":1}"#)),
        Command::Create(CreatePartition::new("abc", 1))
    );
    assert_eq!(
        ok(create(r#"{"name":"a\u002d","memory_mib":1}"#)),
        Command::Create(CreatePartition::new("a-", 1))
    );
    // Escapes that decode to characters names cannot hold: refused as a bad name.
    for name in [
        r#"a\nb"#,
        r#"a\"b"#,
        r#"a\\b"#,
        r#"a\/b"#,
        r#"a\u0000"#,
        r#"\u00e9"#,
    ] {
        let body = format!(r#"{{"name":"{name}","memory_mib":1}}"#);
        assert_eq!(invalid_field(create(&body)), "name", "{body}");
    }
    assert_eq!(
        create(r#"{"name":"a\"b","memory_mib":1}"#)
            .unwrap_err()
            .to_string(),
        "invalid name: \"a\\\"b\" may only hold lowercase letters, digits and `-`"
    );
    // Escapes the decoder cannot take: refused as bad JSON.
    for s in [r#"\x41"#, r#"\u00"#, r#"\u12g4"#, r#"\ud83d\ude00"#, r#"\"#] {
        let body = format!(r#"{{"name":"{s}","memory_mib":1}}"#);
        bad_json(create(&body));
    }
    assert_eq!(
        bad_json(create(r#"{"name":"\ud83d\ude00","memory_mib":1}"#)),
        "a string holds an escape sequence that is not supported (e.g. a surrogate pair)"
    );
}

#[test]
fn body_presence_and_size() {
    let item = format!("{P}/p");
    for (m, path) in [
        ("GET", P.to_string()),
        ("HEAD", P.to_string()),
        ("GET", item.clone()),
        ("DELETE", item.clone()),
        ("POST", format!("{item}/start")),
        ("POST", format!("{item}/stop")),
        ("POST", format!("{item}/restart")),
        ("DELETE", format!("{item}/disk")),
        ("DELETE", format!("{item}/nics/0")),
    ] {
        for body in ["{}", " ", "null", "x"] {
            assert_eq!(
                bad_json(dec(m, &path, body)),
                "no body expected",
                "{m} {path}"
            );
        }
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            decode(m, &path, &big),
            Err(ControlError::BodyTooLarge),
            "{m} {path}"
        );
    }
    for (m, path) in [
        ("POST", P.to_string()),
        ("POST", format!("{item}/resize")),
        ("PUT", format!("{item}/disk")),
        ("POST", format!("{item}/nics")),
    ] {
        for body in ["", " ", "\r\n"] {
            let msg = bad_json(dec(m, &path, body));
            assert!(
                msg.starts_with("expected a JSON object describing"),
                "{msg}"
            );
        }
    }
    // Exactly the limit is fine; one byte more is not, even as whitespace.
    let mut body = br#"{"name":"p","memory_mib":1}"#.to_vec();
    body.resize(MAX_BODY, b' ');
    assert!(decode("POST", P, &body).is_ok());
    body.push(b' ');
    let e = decode("POST", P, &body).unwrap_err();
    assert_eq!(e, ControlError::BodyTooLarge);
    assert_eq!(e.status(), 413);
    assert_eq!(e.to_string(), "request body is larger than 8192 bytes");
}

#[test]
fn disk_rates_in_a_resize() {
    let path = format!("{P}/p/resize");
    let resize = |body: &str| dec("POST", &path, body);
    let get = |body: &str| match ok(resize(body)) {
        Command::Resize { resize, .. } => resize,
        other => panic!("{other:?}"),
    };
    let r = get(r#"{"disk_iops":200,"disk_iops_burst":400,"disk_bytes_per_sec":1048576}"#);
    assert_eq!(
        r,
        Resize {
            disk_iops: Some(200),
            disk_iops_burst: Some(400),
            disk_bytes_per_sec: Some(1 << 20),
            ..Resize::default()
        }
    );
    assert!(r.has_disk() && !r.has_network() && !Resize::default().has_disk());
    // 0 lifts a limit, alone.
    assert_eq!(get(r#"{"disk_iops":0}"#).disk_iops, Some(0));
    // The memory mark: 0 removes it; otherwise a memory size.
    assert_eq!(get(r#"{"memory_high_mib":12}"#).memory_high_mib, Some(12));
    assert_eq!(get(r#"{"memory_high_mib":0}"#).memory_high_mib, Some(0));
    assert_eq!(
        invalid_field(resize(r#"{"memory_high_mib":1048577}"#)),
        "memory_high_mib"
    );
    for (body, field) in [
        (r#"{"disk_iops_burst":10}"#, "disk_iops_burst"),
        (r#"{"disk_bytes_burst":10}"#, "disk_bytes_burst"),
        (r#"{"disk_iops":0,"disk_iops_burst":10}"#, "disk_iops_burst"),
        (r#"{"disk_iops":10,"disk_iops_burst":9}"#, "disk_iops_burst"),
        (
            r#"{"disk_bytes_per_sec":4096,"disk_bytes_burst":4095}"#,
            "disk_bytes_burst",
        ),
        // A burst with the other rate is still without its own.
        (
            r#"{"disk_iops":10,"disk_bytes_burst":10}"#,
            "disk_bytes_burst",
        ),
    ] {
        assert_eq!(invalid_field(resize(body)), field, "{body}");
    }
    assert_eq!(
        resize(r#"{"disk_iops":10,"disk_iops_burst":9}"#)
            .unwrap_err()
            .to_string(),
        "invalid disk_iops_burst: 9 is below disk_iops 10; a burst holds at least one \
         second of the rate"
    );
    for body in [
        r#"{"disk_iops":-1}"#,
        r#"{"disk_iops":1.5}"#,
        r#"{"disk_bytes_per_sec":"1MiB"}"#,
        r#"{"disk_iops":18446744073709551616}"#,
        r#"{"disk_rate":1}"#,
    ] {
        bad_json(resize(body));
    }
}

#[test]
fn resize_needs_a_field() {
    let path = format!("{P}/p/resize");
    for body in [
        "{}",
        r#"{"memory_mib":null}"#,
        r#"{"memory_mib":null,"cpu_weight":null}"#,
        r#"{"net_bytes_per_sec":null,"net_packets_burst":null}"#,
    ] {
        assert_eq!(invalid_field(dec("POST", &path, body)), "body", "{body}");
    }
    assert_eq!(
        dec("POST", &path, "{}").unwrap_err().to_string(),
        "invalid body: a resize needs memory_mib, cpu_weight, cpu_cap_percent, \
         net_bytes_per_sec, net_packets_per_sec, memory_high_mib, disk_iops or \
         disk_bytes_per_sec"
    );
    for (body, expect) in [
        (
            r#"{"memory_mib":1}"#,
            Resize {
                memory_mib: Some(1),
                ..Resize::default()
            },
        ),
        (
            r#"{"cpu_weight":10000}"#,
            Resize {
                cpu_weight: Some(10000),
                ..Resize::default()
            },
        ),
        (
            r#"{"cpu_cap_percent":1}"#,
            Resize {
                cpu_cap_percent: Some(1),
                ..Resize::default()
            },
        ),
    ] {
        assert_eq!(
            ok(dec("POST", &path, body)),
            Command::Resize {
                name: "p".into(),
                resize: expect
            }
        );
    }
    for v in ["0", "1048577"] {
        let body = format!(r#"{{"memory_mib":{v}}}"#);
        assert_eq!(invalid_field(dec("POST", &path, &body)), "memory_mib");
    }
    bad_json(dec("POST", &path, r#"{"memory_mib":-1}"#));
    bad_json(dec("POST", &path, r#"{"name":"p"}"#));
}

#[test]
fn errors_have_statuses_and_one_line_messages() {
    let cases = [
        (ControlError::NoRoute, 404, "no such partition route"),
        (
            ControlError::MethodNotAllowed { allow: "POST" },
            405,
            "method not allowed here (allowed: POST)",
        ),
        (
            ControlError::BodyTooLarge,
            413,
            "request body is larger than 8192 bytes",
        ),
        (
            ControlError::BadJson {
                message: "x".into(),
            },
            400,
            "bad request body: x",
        ),
        (
            ControlError::Invalid {
                field: "name",
                message: "y".into(),
            },
            422,
            "invalid name: y",
        ),
    ];
    for (e, status, text) in cases {
        assert_eq!(e.status(), status);
        assert_eq!(e.to_string(), text);
    }
    // Quoted values in messages are escaped and cut.
    let e = check_name(&format!("{}\n", "x".repeat(100))).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains('\n') && text.contains('…'), "{text}");
}

// ---- encoding and round trips ----------------------------------------------------------

#[test]
fn method_and_path_of_every_command() {
    let want = [
        ("GET", "/api/v1/partitions"),
        ("GET", "/api/v1/partitions/web-1"),
        ("POST", "/api/v1/partitions"),
        ("POST", "/api/v1/partitions"),
        ("DELETE", "/api/v1/partitions/web-1"),
        ("POST", "/api/v1/partitions/web-1/resize"),
        ("POST", "/api/v1/partitions/web-1/resize"),
        ("PUT", "/api/v1/partitions/web-1/disk"),
        ("DELETE", "/api/v1/partitions/web-1/disk"),
        ("POST", "/api/v1/partitions/web-1/nics"),
        ("POST", "/api/v1/partitions/web-1/nics"),
        ("DELETE", "/api/v1/partitions/web-1/nics/7"),
        ("POST", "/api/v1/partitions/web-1/start"),
        ("POST", "/api/v1/partitions/web-1/stop"),
        ("POST", "/api/v1/partitions/web-1/restart"),
    ];
    assert_eq!(every_command().len(), want.len());
    for (c, (m, p)) in every_command().iter().zip(want) {
        assert_eq!((c.method(), c.path().as_str()), (m, p), "{c:?}");
        assert_eq!(c.validate(), Ok(()));
    }
}

#[test]
fn serde_json_bodies_decode_back_equal() {
    for c in every_command() {
        let body = match &c {
            Command::Create(b) => serde_json::to_vec(b).unwrap(),
            Command::Resize { resize, .. } => serde_json::to_vec(resize).unwrap(),
            Command::AttachDisk { disk, .. } => serde_json::to_vec(disk).unwrap(),
            Command::AttachNic { nic, .. } => serde_json::to_vec(nic).unwrap(),
            _ => Vec::new(),
        };
        assert_eq!(decode(c.method(), &c.path(), &body), Ok(c.clone()));
        // Pretty-printed too, and with `null` for the absent options.
        if !body.is_empty() {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let pretty = serde_json::to_vec_pretty(&v).unwrap();
            assert_eq!(decode(c.method(), &c.path(), &pretty), Ok(c.clone()));
        }
        // serde-json-core's encoder agrees.
        assert_eq!(fuzzing::check(c.method(), &c.path(), &body), Some(c));
    }
    let mut with_nulls = serde_json::to_value(CreatePartition::new("p", 1)).unwrap();
    for k in ["cpu_weight", "cpu_cap_percent", "tenant", "disk"] {
        with_nulls[k] = serde_json::Value::Null;
    }
    let body = serde_json::to_vec(&with_nulls).unwrap();
    assert_eq!(
        decode("POST", P, &body),
        Ok(Command::Create(CreatePartition::new("p", 1)))
    );
    // Absent options are left out of the encoding.
    assert_eq!(
        serde_json::to_string(&CreatePartition::new("p", 1)).unwrap(),
        r#"{"name":"p","memory_mib":1}"#
    );
    assert_eq!(
        serde_json::to_string(&full_create().agents).unwrap(),
        r#"[{"name":"hello","version":"0.1.0"},{"name":"pinger"}]"#
    );
    assert_eq!(
        serde_json::to_string(&full_create().nics).unwrap(),
        r#"[{"mac":"02:00:5e:10:00:01"},{}]"#
    );
}

#[test]
fn shapes_list_exactly_the_struct_fields() {
    let keys = |v: serde_json::Value| -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    let set = |s: &[&str]| -> BTreeSet<String> { s.iter().map(|k| k.to_string()).collect() };
    let c = serde_json::to_value(full_create()).unwrap();
    assert_eq!(keys(c.clone()), set(CREATE_SHAPE.fields));
    assert_eq!(keys(c["agents"][0].clone()), set(AGENT_SHAPE.fields));
    assert_eq!(keys(c["nics"][0].clone()), set(NIC_SHAPE.fields));
    let nested: Vec<(&str, &str)> = CREATE_SHAPE
        .nested
        .iter()
        .map(|(f, s)| (*f, s.what))
        .collect();
    assert_eq!(
        nested,
        [("agents", AGENT_SHAPE.what), ("nics", NIC_SHAPE.what)]
    );
    let r = Resize {
        memory_mib: Some(1),
        cpu_weight: Some(1),
        cpu_cap_percent: Some(1),
        net_bytes_per_sec: Some(1),
        net_bytes_burst: Some(1),
        net_packets_per_sec: Some(1),
        net_packets_burst: Some(1),
        memory_high_mib: Some(1),
        disk_iops: Some(1),
        disk_iops_burst: Some(1),
        disk_bytes_per_sec: Some(1),
        disk_bytes_burst: Some(1),
    };
    assert_eq!(
        keys(serde_json::to_value(r).unwrap()),
        set(RESIZE_SHAPE.fields)
    );
    let a = AttachDisk { extent: "x".into() };
    assert_eq!(
        keys(serde_json::to_value(a).unwrap()),
        set(ATTACH_SHAPE.fields)
    );
    // The required fields are the ones without a default.
    assert_eq!(
        keys(serde_json::to_value(CreatePartition::new("p", 1)).unwrap()),
        set(CREATE_SHAPE.required)
    );
}

#[test]
fn the_largest_valid_body_fits_the_limit() {
    let v = "4294967295.4294967295.4294967295";
    let c = CreatePartition {
        name: name_of(MAX_NAME),
        memory_mib: MAX_MEMORY_MIB,
        cpu_weight: Some(MAX_CPU_WEIGHT),
        cpu_cap_percent: Some(MAX_CAP_PERCENT),
        tenant: Some(name_of(63)),
        labels: (0..MAX_LABELS).map(|i| format!("{i:x<63}")).collect(),
        disk: Some(name_of(MAX_NAME)),
        agents: (0..MAX_AGENTS)
            .map(|i| AgentRef {
                name: format!("{i:y<63}"),
                version: Some(v.into()),
            })
            .collect(),
        nics: (0..MAX_NICS)
            .map(|i| NicSpec::new(Some(&format!("02:ff:ff:ff:ff:{i:02x}"))))
            .collect(),
    };
    assert_eq!(c.validate(), Ok(()));
    let pretty = serde_json::to_vec_pretty(&c).unwrap();
    assert!(pretty.len() < MAX_BODY, "{}", pretty.len());
    assert_eq!(decode("POST", P, &pretty), Ok(Command::Create(c)));
}

#[test]
fn agent_specs_parse_and_print() {
    assert_eq!(
        AgentRef::parse("hello@0.1.0"),
        AgentRef {
            name: "hello".into(),
            version: Some("0.1.0".into())
        }
    );
    assert_eq!(AgentRef::parse("hello").version, None);
    assert_eq!(AgentRef::parse("hello@0.1.0").to_string(), "hello@0.1.0");
    assert_eq!(AgentRef::parse("a@b@c").version.as_deref(), Some("b@c"));
    for a in Action::ALL {
        assert_eq!(Action::from_segment(a.as_str()), Some(a));
    }
    assert_eq!(Action::from_segment("kill"), None);
}

// ---- robustness ------------------------------------------------------------------------

/// Compact valid bodies, with the method and path that take them.
fn valid_requests() -> Vec<(&'static str, String, Vec<u8>)> {
    every_command()
        .iter()
        .map(|c| (c.method(), c.path(), fuzzing::body_of(c)))
        .collect()
}

#[test]
fn every_truncation_of_a_valid_body_is_refused_without_panicking() {
    let mut checked = 0;
    for (m, path, body) in valid_requests() {
        if body.is_empty() {
            continue;
        }
        assert!(fuzzing::check(m, &path, &body).is_some());
        for len in 0..body.len() {
            let r = decode(m, &path, &body[..len]);
            assert!(
                matches!(r, Err(ControlError::BadJson { .. })),
                "{len}: {r:?}"
            );
            fuzzing::check(m, &path, &body[..len]);
            checked += 1;
        }
    }
    assert!(checked > 250, "{checked}");
}

#[test]
fn random_mutations_never_panic_and_decode_only_valid_commands() {
    const TOKENS: [&[u8]; 29] = [
        b"\"",
        b"\\",
        b"\\u0000",
        b"\\ud83d",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"null",
        b"0",
        b"-1",
        b"18446744073709551616",
        b"4294967296",
        b"1e9",
        b"\"name\":",
        b"\"memory_mib\":",
        b"\"agents\":[{\"name\":\"x\"}]",
        b"\"labels\":[\"a\",\"a\"]",
        b"\xff",
        "é".as_bytes(),
        b" ",
        b"\"version\":\"1.0.0\"",
        b"\"nics\":[{},{\"mac\":\"02:00:00:00:00:02\"}]",
        b"\"mac\":",
        b"\"02:00:00:00:00:01\"",
        b"\"net_bytes_per_sec\":",
        b"\"net_packets_burst\":",
    ];
    let requests = valid_requests();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..3000 {
        let (m, path, body) = &requests[rng.below(requests.len())];
        let mut b = if body.is_empty() {
            br#"{"name":"p","memory_mib":1}"#.to_vec()
        } else {
            body.clone()
        };
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len() + 1);
            match rng.below(6) {
                0 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                1 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] = rng.byte();
                }
                2 if at < b.len() => {
                    let end = (at + 1 + rng.below(8)).min(b.len());
                    b.drain(at..end);
                }
                3 => {
                    let t = TOKENS[rng.below(TOKENS.len())];
                    b.splice(at..at, t.iter().copied());
                }
                4 if at < b.len() => {
                    let end = (at + 1 + rng.below(16)).min(b.len());
                    let copy = b[at..end].to_vec();
                    b.splice(at..at, copy);
                }
                _ => b.truncate(at),
            }
        }
        // Also through the fuzz input format, with a random method.
        let mut input = vec![rng.byte()];
        input.extend_from_slice(path.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(&b);
        fuzzing::request(&input);
        match fuzzing::check(m, path, &b) {
            Some(c) => {
                assert_eq!(c.validate(), Ok(()));
                accepted += 1;
            }
            None => refused += 1,
        }
    }
    assert_eq!(accepted + refused, 3000);
    assert!(
        accepted > 0 && refused > 1000,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn fuzz_input_format() {
    // Selector 2 is POST; the path ends at the first newline.
    let mut input = vec![2u8];
    input.extend_from_slice(b"/api/v1/partitions\n{\"name\":\"p\",\"memory_mib\":1}");
    fuzzing::request(&input);
    fuzzing::request(&[]);
    fuzzing::request(&[0]);
    fuzzing::request(b"\x00/api/v1/partitions/\xff\xfe");
    assert_eq!(fuzzing::check("HEAD", P, b""), Some(Command::List));
}
