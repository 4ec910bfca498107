//! Tests of the document reader and the kinds.
//!
//! Policy tests check what a user editing the files sees: each mistake reported at the
//! line and column of the value at fault, with a message saying what is wrong, and every
//! mistake of a file reported at once. The generated tests at the end render random valid
//! sets to TOML and read them back, and feed mutated files to the checker.

extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use plinth_testrng::Rng;

use crate::policies::*;
use crate::{AgentDef, Diagnostic, Machine, PartitionDef, Version, World};

// ---------------------------------------------------------------------------------------
// Fixture and helpers

fn partition(name: &str, labels: &[&str], memory_mib: u64, cpus: u32) -> PartitionDef {
    PartitionDef {
        name: name.to_string(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        memory_mib,
        cpus,
    }
}

fn agent(name: &str, version: &str) -> AgentDef {
    AgentDef {
        name: name.to_string(),
        version: Version::parse(version).unwrap(),
    }
}

/// mgmt and edge-a carry `monitoring`, edge-a and edge-b `edge`; edge-b is the small one.
fn partitions() -> Vec<PartitionDef> {
    vec![
        partition("mgmt", &["monitoring"], 1024, 2),
        partition("edge-a", &["edge", "monitoring"], 256, 1),
        partition("edge-b", &["edge"], 128, 1),
        partition("tenant-a", &[], 512, 2),
        partition("tenant-b", &[], 512, 2),
    ]
}

fn agents() -> Vec<AgentDef> {
    vec![
        agent("hello", "0.2.0"),
        agent("hello", "0.1.0"),
        agent("probe", "1.0.0"),
        agent("web", "2.3.4"),
    ]
}

const MACHINE: Machine = Machine {
    memory_mib: 4096,
    cpus: 4,
};

/// Checks `files` (file index = position) against the fixture world.
fn check(files: &[&str]) -> Result<PolicySet, Vec<Diagnostic>> {
    let (ps, ags) = (partitions(), agents());
    let world = World {
        machine: Some(MACHINE),
        partitions: Some(&ps),
        agents: Some(&ags),
    };
    check_in(files, &world)
}

fn check_in(files: &[&str], world: &World<'_>) -> Result<PolicySet, Vec<Diagnostic>> {
    let indexed: Vec<(usize, &str)> = files.iter().copied().enumerate().collect();
    PolicySet::check(&indexed, world)
}

fn ok(files: &[&str]) -> PolicySet {
    match check(files) {
        Ok(set) => set,
        Err(d) => panic!("expected no problems, got:\n{}", show(&d)),
    }
}

fn show(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| format!("  file {} {d}\n", d.file))
        .collect()
}

/// Asserts the diagnostics are exactly `expected`, in order: (file, line, col, a fragment
/// of the message).
fn expect(result: Result<PolicySet, Vec<Diagnostic>>, expected: &[(usize, u32, u32, &str)]) {
    let d = match result {
        Ok(set) => panic!("expected {} problems, got none: {set:?}", expected.len()),
        Err(d) => d,
    };
    let matches = d.len() == expected.len()
        && d.iter()
            .zip(expected)
            .all(|(d, &(file, line, col, fragment))| {
                d.file == file && d.line == line && d.col == col && d.message.contains(fragment)
            });
    assert!(
        matches,
        "expected:\n{}got:\n{}",
        expected
            .iter()
            .map(|(f, l, c, m)| format!("  file {f} {l}:{c}: …{m}…\n"))
            .collect::<String>(),
        show(&d)
    );
}

fn errors(files: &[&str], expected: &[(usize, u32, u32, &str)]) {
    expect(check(files), expected);
}

fn json(set: &PolicySet) -> String {
    let mut s = String::new();
    set.write_json(&mut s).unwrap();
    s
}

// ---------------------------------------------------------------------------------------
// Kinds and files

#[test]
fn an_appliance_spec_or_unknown_kind_is_not_a_policy() {
    errors(
        &[
            "kind = \"appliance\"\n",
            "# policy\nkind = \"deploy\"\n",
            "[[deploy]]\n",
        ],
        &[
            (0, 1, 8, "an appliance spec is not a policy file"),
            (
                1,
                2,
                8,
                "unknown kind \"deploy\"; a policy's `kind` is one of: deployment, protection, troubleshooting, tenants",
            ),
            (2, 1, 1, "missing key `kind`"),
        ],
    );
}

#[test]
fn a_syntax_error_does_not_stop_the_other_files() {
    errors(
        &[
            "kind = \"deployment\"\n[[deploy]\n",
            "kind = \"tenants\"\n[[pool]]\nname = \"p\"\nranges = [\"0\"]\n",
        ],
        &[(0, 2, 10, ""), (1, 4, 11, "VLAN ID 0 is out of range")],
    );
}

#[test]
fn unknown_keys_are_reported_with_the_known_ones() {
    errors(
        &[
            "kind = \"deployment\"\nversion = 1\n\n[[deploy]]\nagent = \"hello\"\nversoin = \"0.1.0\"\nto = [\"mgmt\"]\n",
        ],
        &[
            (
                0,
                2,
                1,
                "unknown key `version` at the top level; expected one of: kind, deploy",
            ),
            (0, 4, 1, "missing key `deploy[0].version`"),
            (
                0,
                6,
                1,
                "unknown key `versoin` in `deploy[0]`; expected one of: agent, version, to, window",
            ),
        ],
    );
}

#[test]
fn one_file_with_three_mistakes_reports_three() {
    let file = "\
kind = \"protection\"

[contention]
cpu_busy_percent = 150

[[limit]]
agent = \"hello\"
cpu = { weight = 100, cap_percent = 50 }
memory = { cap_mib = \"64\" }

[[limit]]
partition = \"edge-b\"
disk = { iops_burst = 10 }
";
    errors(
        &[file],
        &[
            (
                0,
                4,
                20,
                "`contention.cpu_busy_percent` = 150 is out of range; expected 1..=100",
            ),
            (
                0,
                9,
                22,
                "`limit[0].memory.cap_mib` must be an integer, found a string",
            ),
            (
                0,
                13,
                23,
                "`limit[1].disk.iops_burst` needs `limit[1].disk.iops`",
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// deployment

const DEPLOY: &str = "kind = \"deployment\"\n\n";

#[test]
fn deployment_reads_with_labels_expanded_and_defaults() {
    let set = ok(&[&format!(
        "{DEPLOY}[[deploy]]
agent = \"hello\"
version = \"0.1.0\"
to = [\"tenant-a\", \"label:monitoring\"]

[deploy.window]
days = [\"fri\", \"mon\"]
start = \"22:30\"
end = \"01:00\"

[[deploy]]
agent = \"probe\"
version = \"1.0.0\"
to = [\"label:edge\"]
window = {{ start = \"02:00\", end = \"04:00\" }}
"
    )]);
    assert_eq!(
        set.deployments,
        vec![
            Deployment {
                agent: "hello".into(),
                version: Version::parse("0.1.0").unwrap(),
                to: vec!["tenant-a".into(), "label:monitoring".into()],
                partitions: vec!["tenant-a".into(), "mgmt".into(), "edge-a".into()],
                window: Some(Window {
                    days: vec![Day::Mon, Day::Fri],
                    start: TimeOfDay::new(22, 30).unwrap(),
                    end: TimeOfDay::new(1, 0).unwrap(),
                }),
            },
            Deployment {
                agent: "probe".into(),
                version: Version::parse("1.0.0").unwrap(),
                to: vec!["label:edge".into()],
                partitions: vec!["edge-a".into(), "edge-b".into()],
                window: Some(Window {
                    days: Day::ALL.to_vec(),
                    start: TimeOfDay::new(2, 0).unwrap(),
                    end: TimeOfDay::new(4, 0).unwrap(),
                }),
            },
        ]
    );
}

#[test]
fn deployment_names_versions_and_targets_are_checked_where_written() {
    errors(
        &[&format!(
            "{DEPLOY}[[deploy]]
agent = \"Hello\"
version = \"1.0\"
to = [\"mgmt\", \"label:Edge\", \"edge_a\", 7]

[[deploy]]
agent = \"web\"
version = \"2.3.4\"
to = []
"
        )],
        &[
            (
                0,
                4,
                9,
                "`deploy[0].agent` = \"Hello\": name must start with a lowercase letter or a digit",
            ),
            (
                0,
                5,
                11,
                "`deploy[0].version` = \"1.0\": expected MAJOR.MINOR.PATCH",
            ),
            (0, 6, 15, "`deploy[0].to` = \"Edge\": name must start"),
            (
                0,
                6,
                29,
                "`deploy[0].to` = \"edge_a\": name may only hold lowercase letters, digits and `-`",
            ),
            (
                0,
                6,
                39,
                "`deploy[0].to[3]` must be a string, found an integer",
            ),
            (0, 11, 6, "`deploy[1].to` is empty"),
        ],
    );
}

#[test]
fn deployment_without_to_or_with_to_of_the_wrong_type() {
    errors(
        &[&format!(
            "{DEPLOY}[[deploy]]
agent = \"web\"
version = \"2.3.4\"

[[deploy]]
agent = \"web\"
version = \"2.3.4\"
to = \"mgmt\"
"
        )],
        &[
            (0, 3, 1, "missing key `deploy[0].to`"),
            (0, 10, 6, "`deploy[1].to` must be an array, found a string"),
        ],
    );
}

#[test]
fn deployment_windows_are_checked() {
    errors(
        &[&format!(
            "{DEPLOY}[[deploy]]
agent = \"web\"
version = \"2.3.4\"
to = [\"mgmt\"]
window = {{ days = [\"mon\", \"monday\", \"mon\"], start = \"24:00\", end = \"2:00\" }}

[[deploy]]
agent = \"web\"
version = \"2.3.4\"
to = [\"edge-a\"]
[deploy.window]
days = []
start = \"03:15\"
end = \"03:15\"
"
        )],
        &[
            (
                0,
                7,
                27,
                "`deploy[0].window.days`: unknown day \"monday\"; expected one of: mon, tue, wed, thu, fri, sat, sun",
            ),
            (0, 7, 37, "`deploy[0].window.days` names mon twice"),
            (
                0,
                7,
                53,
                "`deploy[0].window.start` = \"24:00\" is not a time of day; expected HH:MM",
            ),
            (
                0,
                7,
                68,
                "`deploy[0].window.end` = \"2:00\" is not a time of day",
            ),
            (
                0,
                14,
                8,
                "`deploy[1].window.days` is empty; leave it out for every day",
            ),
            (0, 16, 7, "`deploy[1].window.end` equals `start`"),
        ],
    );
}

#[test]
fn window_is_open_wraps_past_midnight() {
    let at = |h, m| TimeOfDay::new(h, m).unwrap();
    let w = Window {
        days: vec![Day::Mon, Day::Sun],
        start: at(22, 0),
        end: at(2, 0),
    };
    assert!(w.is_open(Day::Mon, at(22, 0)));
    assert!(w.is_open(Day::Mon, at(23, 59)));
    assert!(
        w.is_open(Day::Tue, at(1, 59)),
        "Monday's window runs into Tuesday"
    );
    assert!(!w.is_open(Day::Tue, at(2, 0)), "the end is outside");
    assert!(
        !w.is_open(Day::Tue, at(22, 0)),
        "Tuesday is not a day of the window"
    );
    assert!(
        w.is_open(Day::Mon, at(0, 30)),
        "Sunday's window runs into Monday"
    );
    assert!(!w.is_open(Day::Sat, at(23, 0)));
    let day = Window {
        days: vec![Day::Wed],
        start: at(9, 0),
        end: at(17, 0),
    };
    assert!(day.is_open(Day::Wed, at(9, 0)) && !day.is_open(Day::Wed, at(17, 0)));
    assert!(!day.is_open(Day::Thu, at(10, 0)) && !day.is_open(Day::Wed, at(8, 59)));
    assert_eq!(TimeOfDay::parse("00:00"), Some(at(0, 0)));
    assert_eq!(TimeOfDay::parse("23:59"), Some(at(23, 59)));
    for bad in [
        "23:60", "24:00", "1:00", "01:0", "01-00", "0a:00", "", "01:00 ", "+1:00",
    ] {
        assert_eq!(TimeOfDay::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn deployment_references_are_checked_against_the_appliance() {
    errors(
        &[&format!(
            "{DEPLOY}[[deploy]]
agent = \"nope\"
version = \"1.0.0\"
to = [\"mgmt\"]

[[deploy]]
agent = \"hello\"
version = \"0.3.0\"
to = [\"db\", \"label:gpu\", \"edge-a\"]
"
        )],
        &[
            (0, 4, 9, "agent `nope` is not in the appliance"),
            (
                0,
                10,
                11,
                "agent `hello` has no version 0.3.0 in the appliance; it has 0.1.0, 0.2.0",
            ),
            (0, 11, 7, "partition `db` is not in the appliance"),
            (
                0,
                11,
                13,
                "label `gpu` matches no partition of the appliance",
            ),
        ],
    );
}

#[test]
fn an_agent_deployed_twice_to_a_partition_is_reported_at_the_second_entry() {
    errors(
        &[&format!(
            "{DEPLOY}[[deploy]]
agent = \"hello\"
version = \"0.1.0\"
to = [\"mgmt\", \"label:monitoring\"]

[[deploy]]
agent = \"probe\"
version = \"1.0.0\"
to = [\"mgmt\", \"edge-a\"]
"
        )],
        &[(
            0,
            6,
            15,
            "agent `hello` is already deployed to partition `mgmt` (line 6)",
        )],
    );
}

#[test]
fn a_label_overlapping_several_earlier_entries_names_each() {
    errors(
        &[&format!(
            "{DEPLOY}[[deploy]]
agent = \"web\"
version = \"2.3.4\"
to = [\"edge-a\"]

[[deploy]]
agent = \"web\"
version = \"2.3.4\"
to = [\"edge-b\", \"tenant-a\"]

[[deploy]]
agent = \"web\"
version = \"2.3.4\"
to = [\"label:edge\", \"tenant-a\"]
"
        )],
        &[
            (
                0,
                16,
                7,
                "agent `web` is already deployed to partitions `edge-a` (line 6), `edge-b` (line 11)",
            ),
            (
                0,
                16,
                21,
                "agent `web` is already deployed to partition `tenant-a` (line 11)",
            ),
        ],
    );
}

#[test]
fn an_agent_deployed_twice_across_files_names_the_first_file_and_line() {
    // Two versions of one agent on one partition is a mistake too: only one can run.
    let first = format!(
        "{DEPLOY}[[deploy]]\nagent = \"hello\"\nversion = \"0.1.0\"\nto = [\"edge-a\", \"edge-b\"]\n"
    );
    let second = format!(
        "{DEPLOY}[[deploy]]\nagent = \"hello\"\nversion = \"0.2.0\"\nto = [\"mgmt\", \"label:edge\"]\n"
    );
    errors(
        &[&first, &second],
        &[(
            1,
            6,
            15,
            "agent `hello` is already deployed to partitions `edge-a`, `edge-b` (line 6 of file 0)",
        )],
    );
}

#[test]
fn without_a_world_references_are_not_checked_and_labels_select_nothing() {
    let text = format!(
        "{DEPLOY}[[deploy]]\nagent = \"ghost\"\nversion = \"9.9.9\"\nto = [\"nowhere\", \"label:any\"]\n"
    );
    let set = check_in(&[&text], &World::default()).unwrap();
    assert_eq!(set.deployments[0].partitions, vec![String::from("nowhere")]);
    assert_eq!(
        set.deployments[0].to,
        vec![String::from("nowhere"), String::from("label:any")]
    );
    // The same file against the fixture: every reference is wrong.
    errors(
        &[&text],
        &[
            (0, 4, 9, "agent `ghost` is not in the appliance"),
            (0, 6, 7, "partition `nowhere` is not in the appliance"),
            (0, 6, 18, "label `any` matches no partition"),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// protection

const PROTECT: &str = "kind = \"protection\"\n\n";

#[test]
fn protection_reads_with_defaults_filled_in() {
    let set = ok(&[&format!(
        "{PROTECT}[contention]
cpu_busy_percent = 85
network_busy_percent = 80

[[limit]]
agent = \"hello\"
cpu = {{ cap_percent = 50 }}
memory = {{ cap_mib = 64 }}
disk = {{ iops = 500, iops_burst = 1000, bytes_per_sec = 50000000 }}

[[limit]]
partition = \"mgmt\"
[limit.network]
packets_per_sec = 10000
packets_burst = 10000
"
    )]);
    assert_eq!(
        set.contention,
        Contention {
            cpu_busy_percent: Some(85),
            memory_used_percent: None,
            disk_busy_percent: None,
            network_busy_percent: Some(80),
            cpu_throttle_floor_percent: None,
            disk_throttle_floor_percent: None,
            memory_throttle_floor_percent: None,
        }
    );
    assert_eq!(
        set.limits,
        vec![
            Limit {
                target: Target::Agent("hello".into()),
                protected: false,
                cpu: Some(CpuLimit {
                    weight: 100,
                    cap_percent: Some(50)
                }),
                memory: Some(MemoryLimit {
                    cap_mib: 64,
                    high_mib: None,
                }),
                disk: Some(DiskLimit {
                    iops: Some(Bucket {
                        rate: 500,
                        burst: 1000
                    }),
                    bytes: Some(Bucket {
                        rate: 50_000_000,
                        burst: 50_000_000
                    }),
                }),
                network: None,
            },
            Limit {
                target: Target::Partition("mgmt".into()),
                protected: false,
                cpu: None,
                memory: None,
                disk: None,
                network: Some(NetworkLimit {
                    bytes: None,
                    packets: Some(Bucket {
                        rate: 10_000,
                        burst: 10_000
                    }),
                }),
            },
        ]
    );
}

#[test]
fn a_memory_high_water_mark_is_a_partitions_and_below_its_cap() {
    let set = ok(&[&format!(
        "{PROTECT}[[limit]]\npartition = \"mgmt\"\nmemory = {{ cap_mib = 32, high_mib = 24 }}\n"
    )]);
    assert_eq!(
        set.limits[0].memory,
        Some(MemoryLimit {
            cap_mib: 32,
            high_mib: Some(24)
        })
    );
    errors(
        &[&format!(
            "{PROTECT}[[limit]]
partition = \"mgmt\"
memory = {{ cap_mib = 16, high_mib = 17 }}

[[limit]]
agent = \"hello\"
memory = {{ cap_mib = 8, high_mib = 4 }}

[[limit]]
partition = \"edge-a\"
memory = {{ cap_mib = 8, high_mib = 0 }}
"
        )],
        &[
            (
                0,
                5,
                37,
                "`limit[0].memory.high_mib` = 17 is above the cap (16 MiB): the high-water \
                 mark comes before the cap",
            ),
            (
                0,
                9,
                36,
                "`limit[1].memory.high_mib`: agent hello cannot have a high-water mark: memory \
                 is charged to partitions, so the mark is a partition's",
            ),
            (
                0,
                13,
                36,
                "`limit[2].memory.high_mib` = 0 is out of range; expected at least 1",
            ),
        ],
    );
}

#[test]
fn limit_values_are_checked() {
    errors(
        &[&format!(
            "{PROTECT}[[limit]]
agent = \"hello\"
partition = \"mgmt\"

[[limit]]
cpu = {{ weight = 0, cap_percent = 0 }}

[[limit]]
agent = \"web\"
memory = {{ cap_mib = 0 }}
network = {{ bytes_per_sec = 100, bytes_burst = 99, packets_per_sec = -1, packets_burst = 5 }}
"
        )],
        &[
            (
                0,
                5,
                13,
                "give exactly one of `limit[0].agent` and `limit[0].partition`, not both",
            ),
            (
                0,
                7,
                1,
                "missing key `limit[1].agent` or `limit[1].partition` (exactly one)",
            ),
            (
                0,
                8,
                18,
                "`limit[1].cpu.weight` = 0 is out of range; expected 1..=10000",
            ),
            (
                0,
                8,
                35,
                "`limit[1].cpu.cap_percent` = 0 is out of range; expected at least 1",
            ),
            (
                0,
                12,
                22,
                "`limit[2].memory.cap_mib` = 0 is out of range; expected at least 1",
            ),
            (
                0,
                13,
                48,
                "`limit[2].network.bytes_burst` = 99 is below `limit[2].network.bytes_per_sec` = 100",
            ),
            (
                0,
                13,
                70,
                "`limit[2].network.packets_per_sec` must not be negative",
            ),
        ],
    );
}

#[test]
fn a_protected_limit_names_a_partition() {
    let set = ok(&[&format!(
        "{PROTECT}[contention]\ncpu_busy_percent = 80\ncpu_throttle_floor_percent = 5\n\n\
         [[limit]]\npartition = \"mgmt\"\nprotected = true\n"
    )]);
    assert_eq!(set.contention.cpu_throttle_floor_percent, Some(5));
    assert!(set.limits[0].protected);
    let floors = ok(&[&format!(
        "{PROTECT}[contention]\ndisk_busy_percent = 30\ndisk_throttle_floor_percent = 2\n\
         memory_used_percent = 40\nmemory_throttle_floor_percent = 20\n"
    )]);
    let c = floors.contention;
    assert_eq!(
        (
            c.disk_busy_percent,
            c.disk_throttle_floor_percent,
            c.memory_used_percent,
            c.memory_throttle_floor_percent
        ),
        (Some(30), Some(2), Some(40), Some(20))
    );
    errors(
        &[&format!(
            "{PROTECT}[[limit]]\nagent = \"hello\"\nprotected = true\n"
        )],
        &[(0, 5, 13, "agent hello cannot be protected")],
    );
    errors(
        &[&format!(
            "{PROTECT}[[limit]]\npartition = \"mgmt\"\nprotected = 1\n"
        )],
        &[(0, 5, 13, "protected")],
    );
}

#[test]
fn contention_thresholds_are_percentages_set_once_across_files() {
    let first = format!("{PROTECT}[contention]\ncpu_busy_percent = 85\ndisk_busy_percent = 0\n");
    let second =
        format!("{PROTECT}[contention]\nmemory_used_percent = 90\ncpu_busy_percent = 80\n");
    errors(
        &[&first, &second],
        &[
            (
                0,
                5,
                21,
                "`contention.disk_busy_percent` = 0 is out of range; expected 1..=100",
            ),
            (
                1,
                5,
                20,
                "`contention.cpu_busy_percent` is already set at line 4 of file 0",
            ),
        ],
    );
}

#[test]
fn a_target_has_one_limit_across_files() {
    let first = format!("{PROTECT}[[limit]]\nagent = \"hello\"\nmemory = {{ cap_mib = 8 }}\n");
    let second = format!(
        "{PROTECT}[[limit]]\npartition = \"hello\"\n\n[[limit]]\nagent = \"hello\"\ncpu = {{ weight = 5 }}\n"
    );
    // A partition named like the agent is another target (and here not in the appliance).
    errors(
        &[&first, &second],
        &[
            (1, 4, 13, "partition `hello` is not in the appliance"),
            (
                1,
                7,
                9,
                "agent `hello` already has a limit, at line 4 of file 0",
            ),
        ],
    );
}

#[test]
fn limit_targets_and_caps_are_checked_against_the_world() {
    errors(
        &[&format!(
            "{PROTECT}[[limit]]
agent = \"ghost\"
cpu = {{ cap_percent = 401 }}
memory = {{ cap_mib = 4097 }}

[[limit]]
partition = \"edge-b\"
cpu = {{ cap_percent = 101 }}
memory = {{ cap_mib = 129 }}

[[limit]]
partition = \"tenant-a\"
cpu = {{ cap_percent = 200 }}
memory = {{ cap_mib = 512 }}
"
        )],
        &[
            (0, 4, 9, "agent `ghost` is not in the appliance"),
            (
                0,
                5,
                23,
                "CPU cap 401% is more than the machine gives with 4 CPUs (400%)",
            ),
            (
                0,
                6,
                22,
                "memory cap 4097 MiB is more than the machine has (4096 MiB)",
            ),
            (
                0,
                10,
                23,
                "CPU cap 101% is more than partition `edge-b` gives with 1 CPUs (100%)",
            ),
            (
                0,
                11,
                22,
                "memory cap 129 MiB is more than partition `edge-b` has (128 MiB)",
            ),
        ],
    );
}

#[test]
fn an_agents_caps_must_fit_each_partition_it_is_deployed_to() {
    let deploy = format!(
        "{DEPLOY}[[deploy]]\nagent = \"web\"\nversion = \"2.3.4\"\nto = [\"mgmt\", \"label:edge\"]\n"
    );
    let protect = format!(
        "{PROTECT}[[limit]]\nagent = \"web\"\ncpu = {{ cap_percent = 150 }}\nmemory = {{ cap_mib = 200 }}\n"
    );
    errors(
        &[&deploy, &protect],
        &[
            (
                1,
                5,
                23,
                "CPU cap 150% of agent `web` is more than partition `edge-a`, where it is deployed, gives with 1 CPUs (100%)",
            ),
            (
                1,
                5,
                23,
                "CPU cap 150% of agent `web` is more than partition `edge-b`",
            ),
            (
                1,
                6,
                22,
                "memory cap 200 MiB of agent `web` is more than partition `edge-b`, where it is deployed, has (128 MiB)",
            ),
        ],
    );
}

#[test]
fn the_memory_caps_of_agents_on_a_partition_must_add_up_to_at_most_its_memory() {
    let deploy = format!(
        "{DEPLOY}[[deploy]]
agent = \"web\"
version = \"2.3.4\"
to = [\"label:edge\"]

[[deploy]]
agent = \"probe\"
version = \"1.0.0\"
to = [\"edge-b\"]

[[deploy]]
agent = \"hello\"
version = \"0.1.0\"
to = [\"edge-a\", \"edge-b\"]
"
    );
    let protect = format!(
        "{PROTECT}[[limit]]
agent = \"web\"
memory = {{ cap_mib = 64 }}

[[limit]]
agent = \"probe\"
memory = {{ cap_mib = 32 }}

[[limit]]
agent = \"hello\"
memory = {{ cap_mib = 40 }}
"
    );
    // edge-b (128 MiB): 64 + 32 + 40 = 136, over at hello's cap; edge-a (256) holds
    // web and hello.
    errors(
        &[&deploy, &protect],
        &[(
            1,
            13,
            22,
            "the memory caps of the agents deployed to partition `edge-b` add up to 136 MiB (`web` 64, `probe` 32, `hello` 40), more than its 128 MiB",
        )],
    );
    // Without the deployment there is nothing to add up.
    assert!(check(&[&protect]).is_ok());
}

// ---------------------------------------------------------------------------------------
// troubleshooting

const TROUBLE: &str = "kind = \"troubleshooting\"\n\n";

#[test]
fn restart_rules_read_with_defaults_filled_in() {
    let set = ok(&[&format!(
        "{TROUBLE}[[rule]]
agent = \"hello\"
restart = \"on-failure\"
max_restarts = 5
window_secs = 300
on_exhausted = [\"alert\", \"quarantine\"]

[[rule]]
partition = \"mgmt\"
restart = \"always\"
max_restarts = 1
window_secs = 1
backoff = {{ initial_ms = 1, multiplier = 10 }}
on_exhausted = [\"alert\"]

[[rule]]
agent = \"probe\"
restart = \"never\"
"
    )]);
    let budget = |max_restarts, window_secs, backoff, quarantine| RestartBudget {
        max_restarts,
        window_secs,
        backoff,
        on_exhausted: OnExhausted {
            quarantine,
            alert: true,
        },
    };
    assert_eq!(
        set.restart_rules,
        vec![
            RestartRule {
                target: Target::Agent("hello".into()),
                restart: Restart::OnFailure(budget(5, 300, Backoff::default(), true)),
                heartbeat_timeout_ms: None,
            },
            RestartRule {
                target: Target::Partition("mgmt".into()),
                restart: Restart::Always(budget(
                    1,
                    1,
                    Backoff {
                        initial_ms: 1,
                        max_ms: 30_000,
                        multiplier: 10
                    },
                    false
                )),
                heartbeat_timeout_ms: None,
            },
            RestartRule {
                target: Target::Agent("probe".into()),
                restart: Restart::Never,
                heartbeat_timeout_ms: None,
            },
        ]
    );
    assert_eq!(
        Backoff::default(),
        Backoff {
            initial_ms: 100,
            max_ms: 30_000,
            multiplier: 2
        }
    );
}

/// The watchdog interval: read with any restart mode, refused outside its range (the
/// rule left out), absent means not watched.
#[test]
fn heartbeat_timeout_is_read_and_checked() {
    let set = ok(&[&format!(
        "{TROUBLE}[[rule]]\nagent = \"hello\"\nrestart = \"never\"\nheartbeat_timeout_ms = 50\n\n\
         [[rule]]\nagent = \"web\"\nrestart = \"never\"\n"
    )]);
    let watch: Vec<Option<u32>> = set
        .restart_rules
        .iter()
        .map(|r| r.heartbeat_timeout_ms)
        .collect();
    assert_eq!(watch, [Some(50), None]);
    errors(
        &[&format!(
            "{TROUBLE}[[rule]]\nagent = \"hello\"\nrestart = \"never\"\nheartbeat_timeout_ms = 49\n\n\
             [[rule]]\nagent = \"web\"\nrestart = \"never\"\nheartbeat_timeout_ms = 86400001\n\n\
             [[rule]]\nagent = \"probe\"\nrestart = \"never\"\nheartbeat_timeout_ms = \"1s\"\n"
        )],
        &[
            (
                0,
                6,
                24,
                "`rule[0].heartbeat_timeout_ms` = 49 is out of range; expected at least 50",
            ),
            (
                0,
                11,
                24,
                "`rule[1].heartbeat_timeout_ms` = 86400001 is too large",
            ),
            (0, 16, 24, "heartbeat_timeout_ms"),
        ],
    );
}

#[test]
fn restart_never_takes_no_budget_and_the_others_need_one() {
    errors(
        &[&format!(
            "{TROUBLE}[[rule]]
agent = \"hello\"
restart = \"never\"
max_restarts = 3
backoff = {{ initial_ms = 5 }}

[[rule]]
agent = \"web\"
restart = \"on-failure\"

[[rule]]
agent = \"probe\"
restart = \"sometimes\"
max_restarts = 0
"
        )],
        &[
            (
                0,
                6,
                16,
                "`rule[0].max_restarts` is not used with `restart = \"never\"`; leave it out",
            ),
            (
                0,
                7,
                11,
                "`rule[0].backoff` is not used with `restart = \"never\"`",
            ),
            (0, 9, 1, "missing key `rule[1].max_restarts`"),
            (0, 9, 1, "missing key `rule[1].on_exhausted`"),
            (0, 9, 1, "missing key `rule[1].window_secs`"),
            (
                0,
                15,
                11,
                "`rule[2].restart` = \"sometimes\"; expected one of: never, on-failure, always",
            ),
            (0, 16, 16, "`rule[2].max_restarts` = 0 is out of range"),
        ],
    );
}

#[test]
fn backoff_and_on_exhausted_are_checked() {
    let rule = |backoff: &str, on_exhausted: &str| {
        format!(
            "[[rule]]\nagent = \"hello\"\nrestart = \"always\"\nmax_restarts = 2\nwindow_secs = 60\nbackoff = {backoff}\non_exhausted = {on_exhausted}\n\n"
        )
    };
    let text = format!(
        "{TROUBLE}{}{}{}{}",
        rule(
            "{ initial_ms = 0, multiplier = 11 }",
            "[\"quarantine\", \"page\"]"
        ),
        rule(
            "{ initial_ms = 500, max_ms = 400 }",
            "[\"alert\", \"alert\"]"
        ),
        rule("{ initial_ms = 40000 }", "[]"),
        rule("{ max_ms = 99 }", "\"alert\""),
    );
    // Rules 1–3 repeat agent `hello`; their own mistakes are reported all the same.
    errors(
        &[&text],
        &[
            (
                0,
                8,
                26,
                "`rule[0].backoff.initial_ms` = 0 is out of range; expected at least 1",
            ),
            (
                0,
                8,
                42,
                "`rule[0].backoff.multiplier` = 11 is out of range; expected 1..=10",
            ),
            (
                0,
                9,
                31,
                "`rule[0].on_exhausted`: unknown action \"page\"; expected one of: quarantine, alert",
            ),
            (
                0,
                12,
                9,
                "agent `hello` already has a restart rule, at line 4",
            ),
            (
                0,
                16,
                40,
                "`rule[1].backoff.max_ms` = 400 is below `initial_ms` (500)",
            ),
            (0, 17, 26, "`rule[1].on_exhausted` names `alert` twice"),
            (
                0,
                20,
                9,
                "agent `hello` already has a restart rule, at line 4",
            ),
            (
                0,
                24,
                26,
                "`rule[2].backoff.initial_ms` = 40000 is above the default `max_ms` (30000)",
            ),
            (0, 25, 16, "`rule[2].on_exhausted` is empty"),
            (0, 28, 9, "agent `hello` already has a restart rule"),
            (
                0,
                32,
                22,
                "`rule[3].backoff.max_ms` = 99 is below `initial_ms` (100)",
            ),
            (
                0,
                33,
                16,
                "`rule[3].on_exhausted` must be an array, found a string",
            ),
        ],
    );
}

#[test]
fn a_target_has_one_restart_rule_across_files_and_must_exist() {
    let first = format!("{TROUBLE}[[rule]]\npartition = \"mgmt\"\nrestart = \"never\"\n");
    let second = format!(
        "{TROUBLE}[[rule]]\npartition = \"db\"\nrestart = \"never\"\n\n[[rule]]\npartition = \"mgmt\"\nrestart = \"never\"\n"
    );
    errors(
        &[&first, &second],
        &[
            (1, 4, 13, "partition `db` is not in the appliance"),
            (
                1,
                8,
                13,
                "partition `mgmt` already has a restart rule, at line 4 of file 0",
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// tenants

const TENANTS: &str = "kind = \"tenants\"\n\n";

#[test]
fn tenants_get_the_lowest_free_id_in_file_order_after_static_ids() {
    let first = format!(
        "{TENANTS}[[pool]]
name = \"tenant-vlans\"
ranges = [\"300\", \"100-102\"]

[[tenant]]
name = \"acme\"
pool = \"tenant-vlans\"
partitions = [\"tenant-a\"]

[[tenant]]
name = \"ops\"
vlan = 4094
"
    );
    let second = format!(
        "{TENANTS}[[tenant]]
name = \"beta\"
pool = \"tenant-vlans\"

[[tenant]]
name = \"fixed\"
vlan = 101
partitions = [\"tenant-b\", \"edge-b\"]

[[tenant]]
name = \"gamma\"
pool = \"tenant-vlans\"
"
    );
    let set = ok(&[&first, &second]);
    assert_eq!(
        set.pools,
        vec![Pool {
            name: "tenant-vlans".into(),
            ranges: vec![(300, 300), (100, 102)],
        }]
    );
    let vlans: Vec<(&str, u16, Option<&str>)> = set
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t.vlan, t.pool.as_deref()))
        .collect();
    // 101 is fixed's (static, in a later file), so beta skips it.
    assert_eq!(
        vlans,
        vec![
            ("acme", 100, Some("tenant-vlans")),
            ("ops", 4094, None),
            ("beta", 102, Some("tenant-vlans")),
            ("fixed", 101, None),
            ("gamma", 300, Some("tenant-vlans")),
        ]
    );
    assert_eq!(
        set.tenants[3].partitions,
        vec![String::from("tenant-b"), String::from("edge-b")]
    );
}

#[test]
fn an_exhausted_pool_names_the_tenant_left_without_an_id() {
    errors(
        &[&format!(
            "{TENANTS}[[pool]]
name = \"tenant-vlans\"
ranges = [\"100-101\"]

[[tenant]]
name = \"acme\"
pool = \"tenant-vlans\"

[[tenant]]
name = \"beta\"
vlan = 101

[[tenant]]
name = \"gamma\"
pool = \"tenant-vlans\"
"
        )],
        &[(
            0,
            17,
            8,
            "pool `tenant-vlans` is exhausted (2 IDs, 2 taken): tenant `gamma` gets no VLAN ID",
        )],
    );
}

#[test]
fn pool_ranges_are_checked_and_must_not_overlap() {
    let first = format!(
        "{TENANTS}[[pool]]
name = \"a\"
ranges = [\"0-10\", \"200-100\", \"abc\", \"5000\", \"1-2-3\", \"100-199\", \"150\"]
"
    );
    let second = format!(
        "{TENANTS}[[pool]]
name = \"b\"
ranges = [\"190-250\", \"4094\"]

[[pool]]
name = \"a\"
ranges = [\"4000\"]

[[pool]]
name = \"c\"
ranges = []
"
    );
    errors(
        &[&first, &second],
        &[
            (
                0,
                5,
                11,
                "`pool[0].ranges`: \"0-10\": VLAN ID 0 is out of range; expected 1..=4094",
            ),
            (
                0,
                5,
                19,
                "\"200-100\": the range runs backwards; write 100-200",
            ),
            (0, 5, 30, "\"abc\": expected a VLAN ID or a range LO-HI"),
            (0, 5, 37, "VLAN ID 5000 is out of range"),
            (0, 5, 45, "\"1-2-3\": expected a VLAN ID"),
            (
                0,
                5,
                65,
                "VLAN range 150-150 overlaps 100-199 of pool `a` (line 5)",
            ),
            (
                1,
                5,
                11,
                "VLAN range 190-250 overlaps 100-199 of pool `a` (line 5 of file 0)",
            ),
            (1, 8, 8, "pool `a` is already defined at line 4 of file 0"),
            (1, 13, 10, "`pool[2].ranges` is empty"),
        ],
    );
}

#[test]
fn static_ids_and_names_are_unique_and_references_exist() {
    let first = format!(
        "{TENANTS}[[pool]]
name = \"p\"
ranges = [\"10-20\"]

[[tenant]]
name = \"acme\"
vlan = 42
partitions = [\"tenant-a\"]
"
    );
    let second = format!(
        "{TENANTS}[[tenant]]
name = \"beta\"
vlan = 42
partitions = [\"tenant-b\", \"tenant-a\", \"db\"]

[[tenant]]
name = \"acme\"
pool = \"p\"

[[tenant]]
name = \"gamma\"
pool = \"q\"

[[tenant]]
name = \"delta\"
pool = \"p\"
vlan = 0

[[tenant]]
name = \"eps\"
vlan = 4095
"
    );
    errors(
        &[&first, &second],
        &[
            (
                1,
                5,
                8,
                "VLAN ID 42 is already tenant `acme`'s (line 9 of file 0); tenant `beta` cannot have it too",
            ),
            (
                1,
                6,
                27,
                "partition `tenant-a` is already on tenant `acme`'s VLAN (line 10 of file 0)",
            ),
            (1, 6, 39, "partition `db` is not in the appliance"),
            (
                1,
                9,
                8,
                "tenant `acme` is already defined at line 8 of file 0",
            ),
            (1, 14, 8, "pool `q` is not defined (pools: p)"),
            (
                1,
                19,
                8,
                "`tenant[3].vlan` = 0 is out of range; expected 1..=4094",
            ),
            (
                1,
                19,
                8,
                "give exactly one of `tenant[3].pool` and `tenant[3].vlan`, not both",
            ),
            (
                1,
                23,
                8,
                "`tenant[4].vlan` = 4095 is out of range; expected 1..=4094",
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// JSON

/// What `json_of_a_small_set_is_exact` renders; docs/policies.md shows it spaced out.
const SMALL_SET_JSON: &str = concat!(
    r#"{"deployments":["#,
    r#"{"agent":"hello","version":"0.1.0","to":["label:edge"],"partitions":["edge-a","edge-b"],"window":{"days":["mon","tue"],"start":"02:00","end":"04:30"}},"#,
    r#"{"agent":"web","version":"2.3.4","to":["mgmt"],"partitions":["mgmt"],"window":null}],"#,
    r#""contention":{"cpu_busy_percent":null,"memory_used_percent":90,"disk_busy_percent":null,"network_busy_percent":null,"cpu_throttle_floor_percent":null,"disk_throttle_floor_percent":null,"memory_throttle_floor_percent":null},"#,
    r#""limits":[{"agent":null,"partition":"mgmt","protected":false,"cpu":{"weight":200,"cap_percent":null},"memory":null,"disk":null,"#,
    r#""network":{"bytes_per_sec":1000,"bytes_burst":2000,"packets_per_sec":null,"packets_burst":null}}],"#,
    r#""restart_rules":[{"agent":"web","partition":null,"restart":"on-failure","max_restarts":3,"window_secs":60,"#,
    r#""backoff":{"initial_ms":100,"max_ms":30000,"multiplier":2},"on_exhausted":["alert"],"heartbeat_timeout_ms":1500},"#,
    r#"{"agent":null,"partition":"mgmt","restart":"never","max_restarts":null,"window_secs":null,"backoff":null,"on_exhausted":null,"heartbeat_timeout_ms":null}],"#,
    r#""pools":[{"name":"v","ranges":[[100,199],[300,300]]}],"#,
    r#""tenants":[{"name":"acme","vlan":100,"pool":"v","partitions":["tenant-a"]},{"name":"ops","vlan":7,"pool":null,"partitions":[]}]}"#,
);

#[test]
fn json_of_a_small_set_is_exact() {
    let set = ok(&[
        &format!(
            "{DEPLOY}[[deploy]]\nagent = \"hello\"\nversion = \"0.1.0\"\nto = [\"label:edge\"]\nwindow = {{ days = [\"tue\", \"mon\"], start = \"02:00\", end = \"04:30\" }}\n\n[[deploy]]\nagent = \"web\"\nversion = \"2.3.4\"\nto = [\"mgmt\"]\n"
        ),
        &format!(
            "{PROTECT}[contention]\nmemory_used_percent = 90\n\n[[limit]]\npartition = \"mgmt\"\ncpu = {{ weight = 200 }}\nnetwork = {{ bytes_per_sec = 1000, bytes_burst = 2000 }}\n"
        ),
        &format!(
            "{TROUBLE}[[rule]]\nagent = \"web\"\nrestart = \"on-failure\"\nmax_restarts = 3\nwindow_secs = 60\non_exhausted = [\"alert\"]\nheartbeat_timeout_ms = 1500\n\n[[rule]]\npartition = \"mgmt\"\nrestart = \"never\"\n"
        ),
        &format!(
            "{TENANTS}[[pool]]\nname = \"v\"\nranges = [\"100-199\", \"300\"]\n\n[[tenant]]\nname = \"acme\"\npool = \"v\"\npartitions = [\"tenant-a\"]\n\n[[tenant]]\nname = \"ops\"\nvlan = 7\n"
        ),
    ]);
    assert_eq!(json(&set), SMALL_SET_JSON);
    assert_eq!(
        json(&PolicySet::default()),
        r#"{"deployments":[],"contention":{"cpu_busy_percent":null,"memory_used_percent":null,"disk_busy_percent":null,"network_busy_percent":null,"cpu_throttle_floor_percent":null,"disk_throttle_floor_percent":null,"memory_throttle_floor_percent":null},"limits":[],"restart_rules":[],"pools":[],"tenants":[]}"#
    );
}

#[test]
fn json_escapes_what_the_world_names() {
    // Partition names come from the appliance, which may not follow the name rule; a
    // label selects them into the JSON as they are.
    let ps = vec![partition("we\"ird\\\n\u{1}\u{7f}é", &["odd"], 64, 1)];
    let world = World {
        machine: None,
        partitions: Some(&ps),
        agents: None,
    };
    let text =
        format!("{DEPLOY}[[deploy]]\nagent = \"a\"\nversion = \"1.0.0\"\nto = [\"label:odd\"]\n");
    let set = check_in(&[&text], &world).unwrap();
    assert!(
        json(&set).contains(r#""partitions":["we\"ird\\\n\u0001\u007fé"]"#),
        "{}",
        json(&set)
    );
    let mut s = String::new();
    crate::policies::json_write_str(&mut s, "\t\r\u{1f}\u{85}x").unwrap();
    assert_eq!(s, r#""\t\r\u001f\u0085x""#);
}

#[test]
fn huge_numbers_are_refused_or_compared_without_overflow() {
    errors(
        &[&format!(
            "{PROTECT}[[limit]]\nagent = \"web\"\nmemory = {{ cap_mib = 99999999999999999999 }}\ncpu = {{ cap_percent = 4294967296 }}\n"
        )],
        &[
            (0, 5, 22, "`limit[0].memory.cap_mib` is too large"),
            (
                0,
                6,
                23,
                "`limit[0].cpu.cap_percent` = 4294967296 is too large; at most 4294967295 is accepted",
            ),
        ],
    );
    // Two caps that fit the partition alone but wrap a u64 together.
    let ps = vec![partition("big", &[], u64::MAX, u32::MAX)];
    let ags = vec![agent("a", "1.0.0"), agent("b", "1.0.0")];
    let world = World {
        machine: Some(Machine {
            memory_mib: u64::MAX,
            cpus: u32::MAX,
        }),
        partitions: Some(&ps),
        agents: Some(&ags),
    };
    let deploy = format!(
        "{DEPLOY}[[deploy]]\nagent = \"a\"\nversion = \"1.0.0\"\nto = [\"big\"]\n\n[[deploy]]\nagent = \"b\"\nversion = \"1.0.0\"\nto = [\"big\"]\n"
    );
    let protect = format!(
        "{PROTECT}[[limit]]\nagent = \"a\"\nmemory = {{ cap_mib = 9223372036854775808 }}\ncpu = {{ cap_percent = 4294967295 }}\n\n[[limit]]\nagent = \"b\"\nmemory = {{ cap_mib = 9223372036854775808 }}\n"
    );
    expect(
        check_in(&[&deploy, &protect], &world),
        &[(1, 10, 22, "add up to 18446744073709551616 MiB")],
    );
}

// ---------------------------------------------------------------------------------------
// Generated sets: a random valid model, rendered to TOML in random styles and split over
// several files, must read back as exactly the model.

/// A random subset of `items` (each kept `percent` times in 100), in random order.
fn some<T: Clone>(rng: &mut Rng, items: &[T], percent: u32) -> Vec<T> {
    let mut v: Vec<T> = items
        .iter()
        .filter(|_| rng.chance(percent))
        .cloned()
        .collect();
    rng.shuffle(&mut v);
    v
}

struct Generated {
    partitions: Vec<PartitionDef>,
    agents: Vec<AgentDef>,
    files: Vec<String>,
    expected: PolicySet,
}

impl Generated {
    fn check(&self) -> Result<PolicySet, Vec<Diagnostic>> {
        let world = World {
            machine: Some(Machine {
                memory_mib: 65536,
                cpus: 16,
            }),
            partitions: Some(&self.partitions),
            agents: Some(&self.agents),
        };
        let files: Vec<&str> = self.files.iter().map(String::as_str).collect();
        check_in(&files, &world)
    }
}

fn q(s: &str) -> String {
    format!("\"{s}\"")
}

fn str_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// The files of one kind; entries go to them in order (a later entry never to an earlier
/// file), so the set's lists are in the order generated.
struct KindFiles {
    texts: Vec<String>,
    current: usize,
}

impl KindFiles {
    fn new(rng: &mut Rng, kind: &str) -> Self {
        let n = rng.range(1, 3) as usize;
        KindFiles {
            texts: (0..n)
                .map(|_| format!("# generated\nkind = \"{kind}\"\n\n"))
                .collect(),
            current: 0,
        }
    }
    /// The file the next entry goes to.
    fn next(&mut self, rng: &mut Rng) -> &mut String {
        if rng.chance(30) && self.current + 1 < self.texts.len() {
            self.current += 1;
        }
        &mut self.texts[self.current]
    }
}

/// An inline table `{ k = v, … }` or a `[prefix.name]` section, for `(key, value)` pairs.
fn sub_table(rng: &mut Rng, prefix: &str, name: &str, pairs: &[(&str, String)]) -> (bool, String) {
    let inline = rng.chance(50);
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    if inline {
        (true, format!("{name} = {{ {} }}\n", body.join(", ")))
    } else {
        let mut s = format!("[{prefix}.{name}]\n");
        for line in body {
            s.push_str(&line);
            s.push('\n');
        }
        (false, s)
    }
}

/// Writes a table entry: plain keys, then inline sub-tables, then sections.
fn entry(out: &mut String, header: &str, keys: &[String], subs: Vec<(bool, String)>) {
    out.push_str(&format!("[[{header}]]\n"));
    for k in keys {
        out.push_str(k);
        out.push('\n');
    }
    for (_, s) in subs.iter().filter(|(inline, _)| *inline) {
        out.push_str(s);
    }
    for (_, s) in subs.iter().filter(|(inline, _)| !*inline) {
        out.push_str(s);
    }
    out.push('\n');
}

fn target_key(t: &Target) -> String {
    match t {
        Target::Agent(n) => format!("agent = {}", q(n)),
        Target::Partition(n) => format!("partition = {}", q(n)),
    }
}

fn generate(seed: u64) -> Generated {
    let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let rng = &mut rng;

    // The world.
    let mut names = vec!["mgmt", "edge-a", "edge-b", "tenant-a", "db", "0day"];
    rng.shuffle(&mut names);
    let partitions: Vec<PartitionDef> = names[..rng.range(1, 5) as usize]
        .iter()
        .map(|n| {
            let labels = some(rng, &["edge", "monitoring", "gpu"], 40);
            partition(n, &labels, rng.range(64, 4096), rng.range(1, 4) as u32)
        })
        .collect();
    let mut agent_names = vec!["hello", "probe", "web", "db-sync", "x"];
    rng.shuffle(&mut agent_names);
    agent_names.truncate(rng.range(1, 4) as usize);
    let mut agents = Vec::new();
    for n in &agent_names {
        for _ in 0..rng.range(1, 2) {
            let v = Version {
                major: rng.range(0, 3) as u32,
                minor: rng.range(0, 20) as u32,
                patch: rng.range(0, 20) as u32,
            };
            if !agents
                .iter()
                .any(|a: &AgentDef| a.name == *n && a.version == v)
            {
                agents.push(AgentDef {
                    name: n.to_string(),
                    version: v,
                });
            }
        }
    }
    let mut expected = PolicySet::default();

    // deployment
    let mut deploy_files = KindFiles::new(rng, "deployment");
    let mut labels: Vec<&str> = partitions
        .iter()
        .flat_map(|p| p.labels.iter().map(String::as_str))
        .collect();
    labels.sort();
    labels.dedup();
    let mut placed: Vec<(String, String)> = Vec::new();
    for _ in 0..rng.range(0, 5) {
        let a = agents[rng.below(agents.len())].clone();
        let mut candidates: Vec<(String, Vec<String>)> = partitions
            .iter()
            .map(|p| (p.name.clone(), vec![p.name.clone()]))
            .chain(labels.iter().map(|l| {
                let selected = partitions
                    .iter()
                    .filter(|p| p.labels.iter().any(|x| x == l))
                    .map(|p| p.name.clone())
                    .collect();
                (format!("label:{l}"), selected)
            }))
            .collect();
        rng.shuffle(&mut candidates);
        let (mut to, mut selected) = (Vec::new(), Vec::<String>::new());
        for (written, ps) in candidates {
            let free = ps
                .iter()
                .all(|p| !selected.contains(p) && !placed.contains(&(a.name.clone(), p.clone())));
            if to.len() < 3 && free && rng.chance(50) {
                to.push(written);
                selected.extend(ps);
            }
        }
        if to.is_empty() {
            continue;
        }
        placed.extend(selected.iter().map(|p| (a.name.clone(), p.clone())));
        let window = rng.chance(60).then(|| {
            let mut days = if rng.chance(30) {
                Day::ALL.to_vec()
            } else {
                some(rng, &Day::ALL, 50)
            };
            if days.is_empty() {
                days.push(Day::Sat);
            }
            days.sort();
            let start = TimeOfDay::new(rng.range(0, 23) as u8, rng.range(0, 59) as u8).unwrap();
            let mut end = TimeOfDay::new(rng.range(0, 23) as u8, rng.range(0, 59) as u8).unwrap();
            if end == start {
                end = TimeOfDay::new((start.hour() + 1) % 24, start.minute()).unwrap();
            }
            Window { days, start, end }
        });

        let mut keys = vec![
            format!("agent = {}", q(&a.name)),
            format!("version = \"{}\"", a.version),
            format!("to = {}", str_list(&to)),
        ];
        rng.shuffle(&mut keys);
        let mut subs = Vec::new();
        if let Some(w) = &window {
            let mut pairs = vec![
                ("start", q(&w.start.to_string())),
                ("end", q(&w.end.to_string())),
            ];
            if w.days.len() < 7 || rng.chance(50) {
                let mut days: Vec<&str> = w.days.iter().map(|d| d.as_str()).collect();
                rng.shuffle(&mut days);
                pairs.push(("days", str_list(&days)));
            }
            rng.shuffle(&mut pairs);
            subs.push(sub_table(rng, "deploy", "window", &pairs));
        }
        entry(deploy_files.next(rng), "deploy", &keys, subs);
        expected.deployments.push(Deployment {
            agent: a.name,
            version: a.version,
            to,
            partitions: selected,
            window,
        });
    }

    // protection
    let mut protect_files = KindFiles::new(rng, "protection");
    let mut contention_keys: Vec<Vec<String>> = vec![Vec::new(); protect_files.texts.len()];
    for (i, key) in [
        "cpu_busy_percent",
        "memory_used_percent",
        "disk_busy_percent",
        "network_busy_percent",
    ]
    .into_iter()
    .enumerate()
    {
        if rng.chance(50) {
            let v = rng.range(1, 100) as u8;
            let c = &mut expected.contention;
            *[
                &mut c.cpu_busy_percent,
                &mut c.memory_used_percent,
                &mut c.disk_busy_percent,
                &mut c.network_busy_percent,
            ][i] = Some(v);
            let file = rng.below(contention_keys.len());
            contention_keys[file].push(format!("{key} = {v}"));
        }
    }
    for (text, keys) in protect_files.texts.iter_mut().zip(&contention_keys) {
        if !keys.is_empty() || rng.chance(20) {
            text.push_str("[contention]\n");
            for k in keys {
                text.push_str(k);
                text.push('\n');
            }
            text.push('\n');
        }
    }
    let targets: Vec<Target> = agent_names
        .iter()
        .map(|n| Target::Agent(n.to_string()))
        .chain(partitions.iter().map(|p| Target::Partition(p.name.clone())))
        .collect();
    for target in some(rng, &targets, 50) {
        let (cpu_most, memory_most) = match &target {
            Target::Agent(_) => (100, 8),
            Target::Partition(n) => {
                let p = partitions.iter().find(|p| p.name == *n).unwrap();
                (100 * u64::from(p.cpus), p.memory_mib)
            }
        };
        let bucket = |rng: &mut Rng| {
            rng.chance(60).then(|| {
                let rate = rng.range(1, 1_000_000_000_000);
                let burst = if rng.chance(50) {
                    rate
                } else {
                    rng.range(rate, rate * 4)
                };
                Bucket { rate, burst }
            })
        };
        let limit = Limit {
            target: target.clone(),
            protected: false,
            cpu: rng.chance(50).then(|| CpuLimit {
                weight: if rng.chance(50) {
                    100
                } else {
                    rng.range(1, 10_000) as u32
                },
                cap_percent: rng.chance(50).then(|| rng.range(1, cpu_most) as u32),
            }),
            memory: rng.chance(50).then(|| {
                let cap_mib = rng.range(1, memory_most);
                // A high-water mark is a partition's.
                let high = matches!(target, Target::Partition(_)) && rng.chance(50);
                MemoryLimit {
                    cap_mib,
                    high_mib: high.then(|| rng.range(1, cap_mib)),
                }
            }),
            disk: rng.chance(40).then(|| DiskLimit {
                iops: bucket(rng),
                bytes: bucket(rng),
            }),
            network: rng.chance(40).then(|| NetworkLimit {
                bytes: bucket(rng),
                packets: bucket(rng),
            }),
        };
        let bucket_pairs = |rng: &mut Rng,
                            pairs: &mut Vec<(&'static str, String)>,
                            keys: (&'static str, &'static str),
                            b: Option<Bucket>| {
            if let Some(b) = b {
                pairs.push((keys.0, b.rate.to_string()));
                if b.burst != b.rate || rng.chance(50) {
                    pairs.push((keys.1, b.burst.to_string()));
                }
            }
        };
        let mut subs = Vec::new();
        if let Some(c) = limit.cpu {
            let mut pairs = Vec::new();
            if c.weight != 100 || rng.chance(50) {
                pairs.push(("weight", c.weight.to_string()));
            }
            if let Some(cap) = c.cap_percent {
                pairs.push(("cap_percent", cap.to_string()));
            }
            subs.push(sub_table(rng, "limit", "cpu", &pairs));
        }
        if let Some(m) = limit.memory {
            subs.push(sub_table(
                rng,
                "limit",
                "memory",
                &m.high_mib.map_or_else(
                    || vec![("cap_mib", m.cap_mib.to_string())],
                    |h| {
                        vec![
                            ("cap_mib", m.cap_mib.to_string()),
                            ("high_mib", h.to_string()),
                        ]
                    },
                ),
            ));
        }
        if let Some(d) = limit.disk {
            let mut pairs = Vec::new();
            bucket_pairs(rng, &mut pairs, ("iops", "iops_burst"), d.iops);
            bucket_pairs(rng, &mut pairs, ("bytes_per_sec", "bytes_burst"), d.bytes);
            rng.shuffle(&mut pairs);
            subs.push(sub_table(rng, "limit", "disk", &pairs));
        }
        if let Some(n) = limit.network {
            let mut pairs = Vec::new();
            bucket_pairs(rng, &mut pairs, ("bytes_per_sec", "bytes_burst"), n.bytes);
            bucket_pairs(
                rng,
                &mut pairs,
                ("packets_per_sec", "packets_burst"),
                n.packets,
            );
            rng.shuffle(&mut pairs);
            subs.push(sub_table(rng, "limit", "network", &pairs));
        }
        rng.shuffle(&mut subs);
        entry(
            protect_files.next(rng),
            "limit",
            &[target_key(&target)],
            subs,
        );
        expected.limits.push(limit);
    }

    // troubleshooting
    let mut trouble_files = KindFiles::new(rng, "troubleshooting");
    for target in some(rng, &targets, 50) {
        let restart = if rng.chance(25) {
            Restart::Never
        } else {
            let initial_ms = if rng.chance(50) {
                100
            } else {
                rng.range(1, 1000) as u32
            };
            let budget = RestartBudget {
                max_restarts: rng.range(1, 20) as u32,
                window_secs: rng.range(1, 86_400) as u32,
                backoff: Backoff {
                    initial_ms,
                    max_ms: if rng.chance(50) {
                        30_000
                    } else {
                        rng.range(u64::from(initial_ms), 60_000) as u32
                    },
                    multiplier: if rng.chance(50) {
                        2
                    } else {
                        rng.range(1, 10) as u32
                    },
                },
                on_exhausted: match rng.range(0, 2) {
                    0 => OnExhausted {
                        quarantine: true,
                        alert: false,
                    },
                    1 => OnExhausted {
                        quarantine: false,
                        alert: true,
                    },
                    _ => OnExhausted {
                        quarantine: true,
                        alert: true,
                    },
                },
            };
            if rng.chance(50) {
                Restart::OnFailure(budget)
            } else {
                Restart::Always(budget)
            }
        };
        let mut keys = vec![
            target_key(&target),
            format!("restart = {}", q(restart.as_str())),
        ];
        let mut subs = Vec::new();
        if let Some(b) = restart.budget() {
            keys.push(format!("max_restarts = {}", b.max_restarts));
            keys.push(format!("window_secs = {}", b.window_secs));
            let mut actions = Vec::new();
            if b.on_exhausted.quarantine {
                actions.push("quarantine");
            }
            if b.on_exhausted.alert {
                actions.push("alert");
            }
            rng.shuffle(&mut actions);
            keys.push(format!("on_exhausted = {}", str_list(&actions)));
            let d = Backoff::default();
            let mut pairs = Vec::new();
            for (key, value, default) in [
                ("initial_ms", b.backoff.initial_ms, d.initial_ms),
                ("max_ms", b.backoff.max_ms, d.max_ms),
                ("multiplier", b.backoff.multiplier, d.multiplier),
            ] {
                if value != default || rng.chance(30) {
                    pairs.push((key, value.to_string()));
                }
            }
            if !pairs.is_empty() || rng.chance(30) {
                subs.push(sub_table(rng, "rule", "backoff", &pairs));
            }
        }
        let heartbeat_timeout_ms = rng
            .chance(30)
            .then(|| rng.range(MIN_HEARTBEAT_TIMEOUT_MS, MAX_HEARTBEAT_TIMEOUT_MS + 1) as u32);
        if let Some(ms) = heartbeat_timeout_ms {
            keys.push(format!("heartbeat_timeout_ms = {ms}"));
        }
        rng.shuffle(&mut keys);
        entry(trouble_files.next(rng), "rule", &keys, subs);
        expected.restart_rules.push(RestartRule {
            target,
            restart,
            heartbeat_timeout_ms,
        });
    }

    // tenants
    let mut tenant_files = KindFiles::new(rng, "tenants");
    let pool_names = some(rng, &["tenant-vlans", "lab", "dmz"], 50);
    let mut segments = Vec::new();
    let mut cursor = rng.range(1, 50) as u16;
    for _ in 0..pool_names.len() * 3 {
        let lo = cursor + rng.range(0, 30) as u16;
        let hi = lo + rng.range(0, 4) as u16;
        segments.push((lo, hi));
        cursor = hi + 1 + rng.range(0, 3) as u16;
    }
    rng.shuffle(&mut segments);
    for name in &pool_names {
        let n = rng.range(1, 3) as usize;
        expected.pools.push(Pool {
            name: name.to_string(),
            ranges: segments.drain(..n).collect(),
        });
    }
    let mut tenants: Vec<(Tenant, bool)> = Vec::new();
    let mut free_partitions: Vec<String> = partitions.iter().map(|p| p.name.clone()).collect();
    rng.shuffle(&mut free_partitions);
    let mut statics: Vec<u16> = Vec::new();
    for name in some(rng, &["acme", "beta", "gamma", "delta", "eps", "zeta"], 60) {
        let take = rng.range(0, 2).min(free_partitions.len() as u64) as usize;
        let partitions: Vec<String> = free_partitions.drain(..take).collect();
        let pool = (!expected.pools.is_empty() && rng.chance(70))
            .then(|| expected.pools[rng.below(expected.pools.len())].name.clone());
        let vlan = match &pool {
            Some(_) => 0, // assigned below
            None => loop {
                // Often inside a pool's ranges, where it is reserved.
                let id = if rng.chance(50) && !expected.pools.is_empty() {
                    let p = &expected.pools[rng.below(expected.pools.len())];
                    let (lo, hi) = p.ranges[rng.below(p.ranges.len())];
                    rng.range(u64::from(lo), u64::from(hi)) as u16
                } else {
                    rng.range(1, 4094) as u16
                };
                if !statics.contains(&id) {
                    statics.push(id);
                    break id;
                }
            },
        };
        let explicit_empty = partitions.is_empty() && rng.chance(30);
        tenants.push((
            Tenant {
                name: name.to_string(),
                vlan,
                pool,
                partitions,
            },
            explicit_empty,
        ));
    }
    // Pool IDs: lowest free in order, after every static ID; a tenant left without one
    // is not generated (that is the exhaustion error, tested on its own).
    let mut taken = statics.clone();
    tenants.retain_mut(|(t, _)| {
        let Some(pool) = &t.pool else { return true };
        let p = expected.pools.iter().find(|p| p.name == *pool).unwrap();
        let mut ranges = p.ranges.clone();
        ranges.sort();
        match ranges
            .iter()
            .flat_map(|&(lo, hi)| lo..=hi)
            .find(|id| !taken.contains(id))
        {
            Some(id) => {
                taken.push(id);
                t.vlan = id;
                true
            }
            None => false,
        }
    });
    // Pools and tenants each go to the tenants files in order; within a file, pools
    // first.
    let n = tenant_files.texts.len();
    let mut pool_text = vec![String::new(); n];
    let mut tenant_text = vec![String::new(); n];
    let mut file = 0;
    for p in &expected.pools {
        if rng.chance(30) && file + 1 < n {
            file += 1;
        }
        let ranges: Vec<String> = p
            .ranges
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi && rng.chance(70) {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        entry(
            &mut pool_text[file],
            "pool",
            &[
                format!("name = {}", q(&p.name)),
                format!("ranges = {}", str_list(&ranges)),
            ],
            Vec::new(),
        );
    }
    file = 0;
    for (t, explicit_empty) in &tenants {
        if rng.chance(30) && file + 1 < n {
            file += 1;
        }
        let mut keys = vec![format!("name = {}", q(&t.name))];
        match &t.pool {
            Some(p) => keys.push(format!("pool = {}", q(p))),
            None => keys.push(format!("vlan = {}", t.vlan)),
        }
        if !t.partitions.is_empty() || *explicit_empty {
            keys.push(format!("partitions = {}", str_list(&t.partitions)));
        }
        rng.shuffle(&mut keys);
        entry(&mut tenant_text[file], "tenant", &keys, Vec::new());
    }
    for (i, text) in tenant_files.texts.iter_mut().enumerate() {
        text.push_str(&pool_text[i]);
        text.push_str(&tenant_text[i]);
    }
    expected.tenants = tenants.into_iter().map(|(t, _)| t).collect();

    // Interleave the kinds' files, keeping each kind's in order.
    let mut kinds: Vec<std::collections::VecDeque<String>> =
        [deploy_files, protect_files, trouble_files, tenant_files]
            .into_iter()
            .map(|k| k.texts.into())
            .collect();
    let mut files = Vec::new();
    while kinds.iter().any(|k| !k.is_empty()) {
        let k = rng.below(kinds.len());
        if let Some(f) = kinds[k].pop_front() {
            files.push(f);
        }
    }
    Generated {
        partitions,
        agents,
        files,
        expected,
    }
}

#[test]
fn generated_sets_read_back_as_generated() {
    let mut nonempty = [0usize; 6];
    for seed in 1..=400 {
        let g = generate(seed);
        match g.check() {
            Ok(set) => assert_eq!(
                set,
                g.expected,
                "seed {seed}, files:\n{}",
                g.files.join("\n----\n")
            ),
            Err(d) => panic!(
                "seed {seed}: {}\nfiles:\n{}",
                show(&d),
                g.files.join("\n----\n")
            ),
        }
        let e = &g.expected;
        for (i, n) in [
            e.deployments.len(),
            e.limits.len(),
            e.restart_rules.len(),
            e.pools.len(),
            e.tenants.len(),
            usize::from(e.contention != Contention::default()),
        ]
        .into_iter()
        .enumerate()
        {
            nonempty[i] += usize::from(n > 0);
        }
    }
    // The generator really exercises every part (not just empty sets).
    assert!(nonempty.iter().all(|&n| n > 100), "{nonempty:?}");
}

/// Lines and columns of every diagnostic point into the file they name.
fn assert_in_bounds(files: &[&str], d: &[Diagnostic]) {
    for x in d {
        let text = files[x.file];
        let lines = text.split('\n').count() as u32;
        assert!(x.line >= 1 && x.line <= lines, "{x:?} in {text:?}");
        assert!(x.col >= 1, "{x:?}");
    }
    assert!(
        d.windows(2).all(|w| w[0] < w[1]),
        "sorted and without duplicates"
    );
}

#[test]
fn mutated_files_never_panic_and_diagnostics_point_into_them() {
    const BYTES: &[u8] = b"\"'[]{}=,.#\n-:0123456789azAZ_ \t\\\x00\xff\xc3";
    let mut rng = Rng::new(0x5eed_f00d);
    let (mut rejected, mut runs) = (0, 0);
    for seed in 1..=150 {
        let g = generate(seed);
        for _ in 0..8 {
            let mut files: Vec<Vec<u8>> = g.files.iter().map(|f| f.as_bytes().to_vec()).collect();
            for _ in 0..rng.range(1, 4) {
                let f = &mut files[rng.below(g.files.len())];
                if f.is_empty() {
                    continue;
                }
                let i = rng.below(f.len());
                match rng.range(0, 4) {
                    0 => f[i] = BYTES[rng.below(BYTES.len())],
                    1 => {
                        f.remove(i);
                    }
                    2 => f.insert(i, BYTES[rng.below(BYTES.len())]),
                    3 => {
                        // A digit run grown past any integer type.
                        f.splice(i..i, b"99999999999999999999".iter().copied());
                    }
                    _ => {
                        // A copy of the line at i, inserted at another line start.
                        let start = f[..i]
                            .iter()
                            .rposition(|&b| b == b'\n')
                            .map_or(0, |p| p + 1);
                        let end = f[i..]
                            .iter()
                            .position(|&b| b == b'\n')
                            .map_or(f.len(), |p| i + p + 1);
                        let line = f[start..end].to_vec();
                        let at = f.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
                        f.splice(at..at, line);
                    }
                }
            }
            let texts: Vec<String> = files
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let world_partitions = g.partitions.clone();
            let world_agents = g.agents.clone();
            let world = World {
                machine: Some(Machine {
                    memory_mib: 1024,
                    cpus: 2,
                }),
                partitions: Some(&world_partitions),
                agents: Some(&world_agents),
            };
            for w in [world, World::default()] {
                runs += 1;
                match check_in(&texts, &w) {
                    Ok(set) => assert!(json(&set).starts_with("{\"deployments\":[")),
                    Err(d) => {
                        rejected += 1;
                        assert!(!d.is_empty());
                        assert_in_bounds(&texts, &d);
                    }
                }
            }
        }
    }
    // Most mutations break something; the test is not only running valid files.
    assert!(rejected > runs / 2, "{rejected} of {runs} rejected");
}
#[test]
fn deeply_nested_values_are_refused_without_exhausting_the_stack() {
    // The runtime parses these files from a disk it does not trust and from its API, on
    // a small stack.
    let n = 100_000;
    let arrays = format!(
        "kind = \"tenants\"\nx = {}{}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    let tables = format!(
        "kind = \"tenants\"\nx = {}1{}\n",
        "{a=".repeat(n),
        "}".repeat(n)
    );
    for text in [arrays, tables] {
        let d = check(&[&text]).unwrap_err();
        assert_eq!(d.len(), 1, "{}", show(&d));
        // Refused by the nesting scan before toml's parser descends at all.
        assert!(
            d[0].line == 2 && d[0].message.contains("nested more than 16 deep"),
            "{}",
            show(&d)
        );
    }
}

// ---------------------------------------------------------------------------------------
// docs/policies.md

const DOCS: &str = include_str!("../../../docs/policies.md");

/// The fenced blocks of `lang` in the docs.
fn doc_blocks(lang: &str) -> Vec<&'static str> {
    let fence = format!("```{lang}\n");
    DOCS.split(fence.as_str())
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect()
}

#[test]
fn the_documented_examples_check_and_render_as_documented() {
    let blocks = doc_blocks("toml");
    assert_eq!(blocks.len(), 4, "one example per kind");
    let ps = vec![
        partition("mgmt", &[], 1024, 2),
        partition("mon-a", &["monitoring"], 256, 1),
        partition("edge-a", &["edge"], 256, 1),
        partition("tenant-a", &[], 512, 1),
    ];
    let ags = vec![agent("hello", "0.1.0"), agent("probe", "1.0.0")];
    let world = World {
        machine: Some(MACHINE),
        partitions: Some(&ps),
        agents: Some(&ags),
    };
    let set = match check_in(&blocks, &world) {
        Ok(set) => set,
        Err(d) => panic!("{}", show(&d)),
    };
    assert_eq!(set.deployments.len(), 2);
    assert_eq!(
        set.deployments[0].partitions,
        vec![String::from("mgmt"), String::from("mon-a")]
    );
    assert_eq!((set.limits.len(), set.restart_rules.len()), (2, 3));
    let vlans: Vec<(&str, u16)> = set
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t.vlan))
        .collect();
    assert_eq!(vlans, vec![("acme", 100), ("ops", 150)]);

    let documented: String = doc_blocks("json")[0].split_whitespace().collect();
    assert_eq!(documented, SMALL_SET_JSON);
}

#[test]
fn check_named_names_the_other_file_in_messages() {
    let first = format!("{TROUBLE}[[rule]]\nagent = \"web\"\nrestart = \"never\"\n");
    let second = format!("{TROUBLE}[[rule]]\nagent = \"web\"\nrestart = \"never\"\n");
    let world = World::default();
    let files = [(3, first.as_str()), (4, second.as_str())];
    expect(
        PolicySet::check_named(&files, &[(3, "policies/restart.toml")], &world),
        &[(
            4,
            4,
            9,
            "agent `web` already has a restart rule, at line 4 of policies/restart.toml",
        )],
    );
    // Without a name, the index the caller gave.
    expect(
        PolicySet::check(&files, &world),
        &[(
            4,
            4,
            9,
            "agent `web` already has a restart rule, at line 4 of file 3",
        )],
    );
}

#[test]
fn nesting_is_counted_outside_strings_and_comments_only() {
    use crate::doc::{MAX_NESTING, too_deep};
    let nest = |n: usize| format!("x = {}1{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(too_deep(&nest(MAX_NESTING), MAX_NESTING), None);
    assert_eq!(
        too_deep(&nest(MAX_NESTING + 1), MAX_NESTING),
        Some(4 + MAX_NESTING)
    );
    let deep = "[".repeat(100);
    for quiet in [
        format!("a = \"{deep}\"\n"),
        format!("a = '{deep}'\n"),
        format!("a = \"\"\"\n{deep}\n\"\"\"\n"),
        format!("a = '''{deep}'''\n"),
        format!("# {deep}\n"),
        format!("a = \"\\\"{deep}\"\n"),
        format!("\"{deep}\" = 1\n"),
        // A multi-line string may end in up to two more quotes.
        format!("a = \"\"\"x\"\"\"\"\"\nb = \"{deep}\"\n"),
        // Table headers open and close on their line.
        "[[a]]\n[[a]]\n[b.c]\n".repeat(50),
        // A string left open runs to the end.
        format!("a = \"{deep}"),
    ] {
        assert_eq!(too_deep(&quiet, MAX_NESTING), None, "{quiet}");
    }
    // A one-line string's escape does not reach past its line, as toml's lexer has it.
    let escaped = format!("a = \"\\\n{}", nest(20));
    assert!(too_deep(&escaped, MAX_NESTING).is_some(), "{escaped}");
    // A closer of the other kind closes nothing: toml stays inside the array.
    let mismatched = format!(
        "x = {}",
        format!("{}{}", "[".repeat(10), "}".repeat(10)).repeat(3)
    );
    assert!(too_deep(&mismatched, MAX_NESTING).is_some(), "{mismatched}");
    let after = format!("a = \"]]]]\"\n{}", nest(20));
    assert!(
        too_deep(&after, MAX_NESTING).is_some(),
        "strings do not close levels"
    );
    // Inline tables count as arrays do.
    let tables = format!("x = {}1{}", "{a=".repeat(17), "}".repeat(17));
    assert!(too_deep(&tables, MAX_NESTING).is_some());
    // Whatever the bytes, the scan ends.
    for n in 0..200u32 {
        let junk: String = (0..n)
            .map(|i| ['"', '\'', '\\', '[', '#', '\n', '{'][(i * 5 % 7) as usize])
            .collect();
        let _ = too_deep(&junk, MAX_NESTING);
    }
}
