//! The tenants policy applied over time: which tenant holds which VLAN ID while it has
//! partitions. The checker gave every listed tenant an ID; the runtime holds an ID only
//! while its tenant has a partition, gives pool IDs back when the tenant's last partition
//! ends, and gives tenants the policy does not list (named by partitions created through
//! the API) an ID from the default pool — the pool called `default`, or the only pool.
//!
//! Owns the bookkeeping only: tagging frames is the bridge's, and which partitions exist
//! is the runtime's (it calls [`VlanLedger::acquire`] and [`VlanLedger::release`]).

use alloc::collections::BTreeMap;
use alloc::string::String;

use super::{PolicySet, Pool};

/// Why a tenant gets no VLAN ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VlanError {
    /// The tenant is not in the tenants policy and there is no default pool.
    NoPool { tenant: String },
    /// Every ID of the tenant's pool is held by other tenants.
    Exhausted {
        tenant: String,
        pool: String,
        size: u32,
    },
}

impl core::fmt::Display for VlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VlanError::NoPool { tenant } => write!(
                f,
                "tenant `{tenant}` is not in the tenants policy and there is no default pool \
                 (a pool named `default`, or a single pool) to give it a VLAN ID"
            ),
            VlanError::Exhausted { tenant, pool, size } => write!(
                f,
                "tenant `{tenant}` gets no VLAN ID: pool `{pool}` is exhausted (all {size} IDs are held by other tenants)"
            ),
        }
    }
}

/// A tenant's hold on its VLAN ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub vlan: u16,
    /// The pool the ID came from; `None`: the policy's static `vlan`.
    pub pool: Option<String>,
    /// Partitions of the tenant that exist.
    pub partitions: u32,
}

/// Which tenants hold which VLAN IDs now.
#[derive(Clone, Debug, Default)]
pub struct VlanLedger {
    holds: BTreeMap<String, Hold>,
}

impl VlanLedger {
    pub fn new() -> VlanLedger {
        VlanLedger::default()
    }

    /// One more partition of `tenant`: its VLAN ID, taken now if it is the first.
    /// A static `vlan` is the tenant's alone (the checker made sure); a pool tenant gets
    /// the ID the checker assigned if it is free, else the lowest free ID of its pool.
    pub fn acquire(&mut self, policy: &PolicySet, tenant: &str) -> Result<u16, VlanError> {
        if let Some(h) = self.holds.get_mut(tenant) {
            h.partitions += 1;
            return Ok(h.vlan);
        }
        let listed = policy.tenants.iter().find(|t| t.name == tenant);
        let (vlan, pool) = match listed {
            Some(t) if t.pool.is_none() => (t.vlan, None),
            _ => {
                let pool = match listed.and_then(|t| t.pool.as_deref()) {
                    Some(name) => policy.pools.iter().find(|p| p.name == name),
                    None => default_pool(&policy.pools),
                }
                .ok_or_else(|| VlanError::NoPool {
                    tenant: String::from(tenant),
                })?;
                let preferred = listed.map(|t| t.vlan).filter(|v| self.free(policy, *v));
                let vlan = preferred
                    .or_else(|| self.lowest_free(policy, pool))
                    .ok_or_else(|| VlanError::Exhausted {
                        tenant: String::from(tenant),
                        pool: pool.name.clone(),
                        size: pool.len(),
                    })?;
                (vlan, Some(pool.name.clone()))
            }
        };
        self.holds.insert(
            String::from(tenant),
            Hold {
                vlan,
                pool,
                partitions: 1,
            },
        );
        Ok(vlan)
    }

    /// One partition of `tenant` fewer. Returns the ID if that was its last partition
    /// and the ID went back to its pool (or, static, is simply no longer in use).
    pub fn release(&mut self, tenant: &str) -> Option<u16> {
        let h = self.holds.get_mut(tenant)?;
        h.partitions = h.partitions.saturating_sub(1);
        if h.partitions > 0 {
            return None;
        }
        self.holds.remove(tenant).map(|h| h.vlan)
    }

    /// The VLAN ID `tenant` holds now.
    pub fn vlan_of(&self, tenant: &str) -> Option<u16> {
        self.holds.get(tenant).map(|h| h.vlan)
    }

    /// The tenant holding `vlan`, if any.
    pub fn tenant_of(&self, vlan: u16) -> Option<&str> {
        self.holds
            .iter()
            .find(|(_, h)| h.vlan == vlan)
            .map(|(t, _)| t.as_str())
    }

    /// Every hold, by tenant name.
    pub fn holds(&self) -> impl Iterator<Item = (&str, &Hold)> {
        self.holds.iter().map(|(t, h)| (t.as_str(), h))
    }

    /// Whether `vlan` is held by nobody and is no listed tenant's static ID.
    fn free(&self, policy: &PolicySet, vlan: u16) -> bool {
        !self.holds.values().any(|h| h.vlan == vlan)
            && !policy
                .tenants
                .iter()
                .any(|t| t.pool.is_none() && t.vlan == vlan)
    }

    fn lowest_free(&self, policy: &PolicySet, pool: &Pool) -> Option<u16> {
        let mut ranges = pool.ranges.clone();
        ranges.sort();
        ranges
            .iter()
            .flat_map(|&(lo, hi)| lo..=hi)
            .find(|&v| self.free(policy, v))
    }
}

/// The pool tenants the policy does not list take IDs from.
fn default_pool(pools: &[Pool]) -> Option<&Pool> {
    pools.iter().find(|p| p.name == "default").or(match pools {
        [only] => Some(only),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::Tenant;
    use super::*;

    fn policy(pools: &[(&str, u16, u16)], tenants: &[(&str, u16, Option<&str>)]) -> PolicySet {
        PolicySet {
            pools: pools
                .iter()
                .map(|(n, lo, hi)| Pool {
                    name: String::from(*n),
                    ranges: vec![(*lo, *hi)],
                })
                .collect(),
            tenants: tenants
                .iter()
                .map(|(n, v, p)| Tenant {
                    name: String::from(*n),
                    vlan: *v,
                    pool: p.map(String::from),
                    partitions: Vec::new(),
                })
                .collect(),
            ..PolicySet::default()
        }
    }

    #[test]
    fn a_tenants_partitions_share_its_id_until_the_last_one_ends() {
        let p = policy(&[("default", 100, 101)], &[("acme", 100, Some("default"))]);
        let mut l = VlanLedger::new();
        assert_eq!(l.acquire(&p, "acme"), Ok(100));
        assert_eq!(l.acquire(&p, "acme"), Ok(100));
        assert_eq!(l.release("acme"), None);
        assert_eq!(l.vlan_of("acme"), Some(100));
        assert_eq!(l.release("acme"), Some(100));
        assert_eq!(l.vlan_of("acme"), None);
        assert_eq!(l.release("acme"), None);
    }

    #[test]
    fn an_exhausted_pool_refuses_naming_tenant_and_pool_and_a_returned_id_is_reused() {
        let p = policy(&[("small", 100, 101)], &[]);
        let mut l = VlanLedger::new();
        assert_eq!(l.acquire(&p, "a"), Ok(100));
        assert_eq!(l.acquire(&p, "b"), Ok(101));
        let e = l.acquire(&p, "c").unwrap_err();
        assert_eq!(
            e,
            VlanError::Exhausted {
                tenant: String::from("c"),
                pool: String::from("small"),
                size: 2
            }
        );
        let text = alloc::format!("{e}");
        assert!(text.contains("`c`") && text.contains("`small`"), "{text}");
        assert_eq!(l.release("a"), Some(100));
        assert_eq!(l.acquire(&p, "c"), Ok(100));
        assert_eq!(l.tenant_of(100), Some("c"));
    }

    #[test]
    fn static_ids_are_never_handed_out_from_pools() {
        let p = policy(
            &[("default", 100, 102)],
            &[("fixed", 101, None), ("pooled", 100, Some("default"))],
        );
        let mut l = VlanLedger::new();
        // An unlisted tenant takes the lowest free ID that is not `fixed`'s, even while
        // `fixed` has no partition.
        assert_eq!(l.acquire(&p, "walk-in"), Ok(100));
        // `pooled`'s assigned ID is taken: the next free one, skipping 101.
        assert_eq!(l.acquire(&p, "pooled"), Ok(102));
        assert_eq!(l.acquire(&p, "fixed"), Ok(101));
        assert!(matches!(
            l.acquire(&p, "another"),
            Err(VlanError::Exhausted { .. })
        ));
    }

    #[test]
    fn unlisted_tenants_need_a_default_pool() {
        let two = policy(&[("a", 10, 10), ("b", 20, 20)], &[]);
        let mut l = VlanLedger::new();
        assert_eq!(
            l.acquire(&two, "x"),
            Err(VlanError::NoPool {
                tenant: String::from("x")
            })
        );
        let named = policy(&[("a", 10, 10), ("default", 20, 20)], &[]);
        assert_eq!(l.acquire(&named, "x"), Ok(20));
        let none = policy(&[], &[]);
        assert!(matches!(
            l.acquire(&none, "y"),
            Err(VlanError::NoPool { .. })
        ));
    }
}
