//! A set of policy files against arbitrary bytes: the first byte picks which parts of a
//! fixed world are known (machine, partitions, agents), the rest is split at NUL bytes
//! into up to eight files, each read as UTF-8 (lossily, as a runtime reading a disk it
//! does not trust would). `PolicySet::check` must never panic; what it rejects must come
//! with diagnostics that are sorted, name a file of the set and a line inside it; what it
//! accepts must render as JSON, and checking the same files again must give the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plinth_policy::policies::PolicySet;
use plinth_policy::{AgentDef, Machine, PartitionDef, Version, World};

fn partition(name: &str, labels: &[&str], memory_mib: u64, cpus: u32) -> PartitionDef {
    PartitionDef {
        name: name.into(),
        labels: labels.iter().map(|l| (*l).into()).collect(),
        memory_mib,
        cpus,
    }
}

fn agent(name: &str, major: u32, minor: u32, patch: u32) -> AgentDef {
    AgentDef {
        name: name.into(),
        version: Version {
            major,
            minor,
            patch,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    // Names and labels a mutated seed is likely to hit; one huge partition for the sums.
    let partitions = [
        partition("mgmt", &["monitoring"], 1024, 2),
        partition("edge-a", &["edge", "monitoring"], 256, 1),
        partition("edge-b", &["edge"], 128, 1),
        partition("tenant-a", &[], 512, 2),
        partition("big", &["edge"], u64::MAX, u32::MAX),
    ];
    let agents = [
        agent("hello", 0, 1, 0),
        agent("hello", 0, 2, 0),
        agent("probe", 1, 0, 0),
        agent("web", 2, 3, 4),
    ];
    let world = World {
        machine: (flags & 1 != 0).then_some(Machine {
            memory_mib: 4096,
            cpus: 4,
        }),
        partitions: (flags & 2 != 0).then_some(&partitions[..]),
        agents: (flags & 4 != 0).then_some(&agents[..]),
    };
    let texts: Vec<String> = rest
        .split(|&b| b == 0)
        .take(8)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let files: Vec<(usize, &str)> = texts.iter().map(String::as_str).enumerate().collect();

    let first = PolicySet::check(&files, &world);
    match &first {
        Ok(set) => {
            let mut json = String::new();
            set.write_json(&mut json).expect("writing to a String cannot fail");
            assert!(json.starts_with("{\"deployments\":[") && json.ends_with('}'));
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty());
            assert!(diagnostics.windows(2).all(|w| w[0] < w[1]));
            for d in diagnostics {
                let text = texts[d.file].as_str();
                let lines = text.split('\n').count();
                assert!(d.line >= 1 && d.line as usize <= lines && d.col >= 1, "{d:?}");
            }
        }
    }
    assert_eq!(PolicySet::check(&files, &world), first);
});
