//! `kind = "tenants"`: tenants, the VLAN each is on, and pools of VLAN IDs to take them
//! from. This module owns reading `[[pool]]` and `[[tenant]]`, the checks that pools do
//! not overlap and IDs are not shared, and assigning pool IDs (lowest free ID, in the
//! order of the files and entries). Tagging frames and configuring switches is the
//! runtime's.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Cx, Placed, Pos, first_of, list, missing, name, names};
use crate::doc::{At, Table};

/// The lowest and highest VLAN IDs usable for tenants (0 and 4095 are reserved by
/// 802.1Q).
pub const VLAN_MIN: u16 = 1;
pub const VLAN_MAX: u16 = 4094;

/// A `[[pool]]`: VLAN IDs tenants may be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    /// `(lo, hi)`, inclusive, `lo <= hi`, in the file's order; no two overlap (across
    /// every pool of the set).
    pub ranges: Vec<(u16, u16)>,
}

impl Pool {
    /// How many IDs the pool holds.
    pub fn len(&self) -> u32 {
        self.ranges
            .iter()
            .map(|&(lo, hi)| u32::from(hi) - u32::from(lo) + 1)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, id: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= id && id <= hi)
    }
}

/// A `[[tenant]]` and the VLAN ID it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    /// From `vlan`, or assigned from `pool`.
    pub vlan: u16,
    /// The pool the ID was taken from; `None`: a static `vlan`.
    pub pool: Option<String>,
    /// Partitions on this tenant's VLAN; a partition is on at most one tenant's.
    pub partitions: Vec<String>,
}

#[derive(Default)]
pub(super) struct RawTenants {
    pools: Vec<RawPool>,
    tenants: Vec<RawTenant>,
}

struct RawPool {
    name: Option<Placed<String>>,
    ranges: Vec<Placed<(u16, u16)>>,
    /// Whether every range was read; a pool with a mistake assigns nothing (its
    /// tenants would get IDs the user did not mean).
    sound: bool,
}

#[derive(Clone, Debug)]
enum Source {
    Pool(String),
    Static(u16),
}

struct RawTenant {
    name: Option<Placed<String>>,
    source: Option<Placed<Source>>,
    partitions: Vec<Placed<String>>,
}

pub(super) fn read(root: &Table<'_, '_>, out: &mut RawTenants) {
    for t in root.tables("pool") {
        out.pools.push(read_pool(&t));
        t.finish(&["name", "ranges"]);
    }
    for t in root.tables("tenant") {
        out.tenants.push(read_tenant(&t));
        t.finish(&["name", "pool", "vlan", "partitions"]);
    }
    root.finish(&["kind", "pool", "tenant"]);
}

fn read_pool(t: &Table<'_, '_>) -> RawPool {
    let name = name(t, "name");
    let path = t.key_path("ranges");
    if !t.has("ranges") {
        missing(t, "ranges");
    }
    let given = t.opt_str_array("ranges");
    let mut sound = given.as_ref().map(Vec::len) == Some(t.array("ranges").len());
    if sound
        && given.as_ref().is_some_and(Vec::is_empty)
        && let Some(span) = t.value_span("ranges")
    {
        t.error(span, format!("`{path}` is empty; give at least one range"));
        sound = false;
    }
    let mut ranges = Vec::new();
    for v in given.unwrap_or_default() {
        match parse_range(v.value) {
            Ok(r) => ranges.push(Placed::new(t, At::new(r, v.span))),
            Err(e) => {
                t.error(v.span, format!("`{path}`: {:?}: {e}", v.value));
                sound = false;
            }
        }
    }
    RawPool {
        name,
        ranges,
        sound,
    }
}

/// `"LO-HI"` or `"ID"`.
fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (vlan_id(lo)?, vlan_id(hi)?),
        None => {
            let id = vlan_id(s)?;
            (id, id)
        }
    };
    if lo > hi {
        return Err(format!("the range runs backwards; write {hi}-{lo}"));
    }
    Ok((lo, hi))
}

fn vlan_id(s: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(String::from(
            "expected a VLAN ID or a range LO-HI of them, in decimal",
        ));
    }
    match s.parse::<u16>() {
        Ok(id) if (VLAN_MIN..=VLAN_MAX).contains(&id) => Ok(id),
        _ => Err(format!(
            "VLAN ID {s} is out of range; expected {VLAN_MIN}..={VLAN_MAX}"
        )),
    }
}

fn read_tenant(t: &Table<'_, '_>) -> RawTenant {
    let name = name(t, "name");
    let source = match (t.value_span("pool"), t.value_span("vlan")) {
        (Some(_), Some(span)) => {
            t.error(
                span,
                format!(
                    "give exactly one of `{}` and `{}`, not both",
                    t.key_path("pool"),
                    t.key_path("vlan")
                ),
            );
            let _ = (self::name(t, "pool"), t.opt_u64_in("vlan", 1, 4094));
            None
        }
        (None, None) => {
            t.error(
                t.span(),
                format!(
                    "missing key `{}` or `{}` (exactly one)",
                    t.key_path("pool"),
                    t.key_path("vlan")
                ),
            );
            None
        }
        (Some(_), None) => self::name(t, "pool").map(|p| Placed {
            value: Source::Pool(p.value),
            pos: p.pos,
        }),
        (None, Some(_)) => t
            .opt_u64_in("vlan", u64::from(VLAN_MIN), u64::from(VLAN_MAX))
            .map(|v| {
                let id = u16::try_from(v.value).unwrap_or(VLAN_MAX);
                Placed::new(t, At::new(Source::Static(id), v.span))
            }),
    };
    RawTenant {
        name,
        source,
        partitions: names(t, "partitions"),
    }
}

pub(super) fn check(raw: &RawTenants, cx: &mut Cx<'_, '_>) -> (Vec<Pool>, Vec<Tenant>) {
    // Pools: unique names, ranges that overlap none before them.
    let mut pool_names: BTreeMap<String, Pos> = BTreeMap::new();
    // Accepted ranges with their pool, for overlap messages.
    let mut accepted: Vec<(u16, u16, &str, Pos)> = Vec::new();
    let mut pools: Vec<(Pool, bool)> = Vec::new();
    for p in &raw.pools {
        let Some(name) = &p.name else { continue };
        if !first_of(&mut pool_names, name.value.clone(), name.pos, cx, |first| {
            format!("pool `{}` is already defined at {first}", name.value)
        }) {
            continue;
        }
        let mut sound = p.sound;
        for r in &p.ranges {
            let (lo, hi) = r.value;
            match accepted.iter().find(|(a, b, _, _)| lo <= *b && *a <= hi) {
                Some((a, b, other, at)) => {
                    cx.error(
                        r.pos,
                        format!(
                            "VLAN range {lo}-{hi} overlaps {a}-{b} of pool `{other}` ({})",
                            cx.named(*at, r.pos)
                        ),
                    );
                    sound = false;
                }
                None => accepted.push((lo, hi, &name.value, r.pos)),
            }
        }
        pools.push((
            Pool {
                name: name.value.clone(),
                ranges: p.ranges.iter().map(|r| r.value).collect(),
            },
            sound,
        ));
    }

    // Tenants: unique names; static IDs first, so pools skip them whatever the order.
    let mut tenant_names: BTreeMap<String, Pos> = BTreeMap::new();
    let unique: Vec<bool> = raw
        .tenants
        .iter()
        .map(|t| match &t.name {
            Some(n) => first_of(&mut tenant_names, n.value.clone(), n.pos, cx, |first| {
                format!("tenant `{}` is already defined at {first}", n.value)
            }),
            None => false,
        })
        .collect();
    // Index = VLAN ID; 0 and 4095 are never used.
    let mut taken = vec![false; usize::from(VLAN_MAX) + 1];
    let mut statics: BTreeMap<u16, (&str, Pos)> = BTreeMap::new();
    let mut vlans: Vec<Option<u16>> = vec![None; raw.tenants.len()];
    for (i, t) in raw.tenants.iter().enumerate() {
        let (Some(name), Some(source), true) = (&t.name, &t.source, unique[i]) else {
            continue;
        };
        let Source::Static(id) = source.value else {
            continue;
        };
        match statics.get(&id) {
            Some((other, at)) => cx.error(
                source.pos,
                format!(
                    "VLAN ID {id} is already tenant `{other}`'s ({}); tenant `{}` cannot have it too",
                    cx.named(*at, source.pos),
                    name.value
                ),
            ),
            None => {
                statics.insert(id, (&name.value, source.pos));
                taken[usize::from(id)] = true;
                vlans[i] = Some(id);
            }
        }
    }
    for (i, t) in raw.tenants.iter().enumerate() {
        let (Some(name), Some(source), true) = (&t.name, &t.source, unique[i]) else {
            continue;
        };
        let Source::Pool(pool_name) = &source.value else {
            continue;
        };
        let Some((pool, sound)) = pools.iter().find(|(p, _)| p.name == *pool_name) else {
            let known = if pools.is_empty() {
                String::from("no pool is defined")
            } else {
                format!("pools: {}", list(pools.iter().map(|(p, _)| &p.name)))
            };
            cx.error(
                source.pos,
                format!("pool `{pool_name}` is not defined ({known})"),
            );
            continue;
        };
        if !sound {
            continue;
        }
        let mut ids: Vec<(u16, u16)> = pool.ranges.clone();
        ids.sort();
        let free = ids
            .iter()
            .flat_map(|&(lo, hi)| lo..=hi)
            .find(|&id| !taken[usize::from(id)]);
        match free {
            Some(id) => {
                taken[usize::from(id)] = true;
                vlans[i] = Some(id);
            }
            None => {
                let used = ids
                    .iter()
                    .flat_map(|&(lo, hi)| lo..=hi)
                    .filter(|&id| taken[usize::from(id)])
                    .count();
                cx.error(
                    source.pos,
                    format!(
                        "pool `{pool_name}` is exhausted ({} IDs, {used} taken): tenant `{}` gets no VLAN ID",
                        pool.len(),
                        name.value
                    ),
                );
            }
        }
    }

    // Partitions: on one tenant's VLAN at most, and in the appliance.
    let mut on: BTreeMap<&str, (&str, Pos)> = BTreeMap::new();
    for t in &raw.tenants {
        let Some(name) = &t.name else { continue };
        for p in &t.partitions {
            if let Some((other, at)) = on.get(p.value.as_str()) {
                cx.error(
                    p.pos,
                    format!(
                        "partition `{}` is already on tenant `{other}`'s VLAN ({})",
                        p.value,
                        cx.named(*at, p.pos)
                    ),
                );
                continue;
            }
            on.insert(&p.value, (&name.value, p.pos));
            if cx.partition(&p.value) == Some(None) {
                cx.error(
                    p.pos,
                    format!("partition `{}` is not in the appliance", p.value),
                );
            }
        }
    }

    let tenants = raw
        .tenants
        .iter()
        .zip(vlans)
        .filter_map(|(t, vlan)| {
            Some(Tenant {
                name: t.name.as_ref()?.value.clone(),
                vlan: vlan?,
                pool: match &t.source.as_ref()?.value {
                    Source::Pool(p) => Some(p.clone()),
                    Source::Static(_) => None,
                },
                partitions: t.partitions.iter().map(|p| p.value.clone()).collect(),
            })
        })
        .collect();
    (pools.into_iter().map(|(p, _)| p).collect(), tenants)
}
