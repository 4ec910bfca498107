//! The appliance catalog at boot: finds it on a virtio disk, has `plinth-catalog` check
//! it, and keeps the outcome for the API and for whoever starts partitions.
//!
//! Owns the search (every disk's GPT, the partition of the catalog type) and the
//! outcome. It must not judge the bytes itself: the header, checksums, signatures and
//! policies are `plinth-catalog`'s (the same code as `plinth image inspect`). A catalog
//! that fails any check leaves the runtime up in its safe state: nothing is started, and
//! serial and `GET /api/v1/catalog` say why.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use log::{error, info};
use plinth_catalog::{
    CATALOG_PARTITION_TYPE, Catalog, DATA_PARTITION_TYPE, Extent, HEADER_LEN, Header,
    STATE_PARTITION_TYPE,
};

use crate::block::{self, DiskError};
use crate::clock;

/// What the runtime made of the appliance disk.
pub enum State {
    /// Checked; `json` is the catalog as `GET /api/v1/catalog` serves it.
    Verified {
        disk: String,
        json: String,
        partitions: usize,
        agents: usize,
    },
    /// A catalog partition was found but its contents failed a check.
    Invalid { disk: String, error: String },
    /// No disk holds a catalog partition; `reason` says what was seen.
    Absent { reason: String },
}

static STATE: spin::Once<State> = spin::Once::new();

/// The outcome of [`load`], once it has run.
pub fn state() -> Option<&'static State> {
    STATE.get()
}

/// Reads `sectors` sectors from `lba` of disk `disk`, waiting for them (`serve` runs
/// meanwhile).
fn read_sectors(
    disk: usize,
    lba: u64,
    sectors: u64,
    serve: &mut dyn FnMut(),
) -> Result<Vec<u8>, DiskError> {
    let len = usize::try_from(sectors).map_err(|_| DiskError::OutOfRange)? * 512;
    let mut out = vec![0u8; len];
    block::with_sectors(
        disk,
        lba,
        sectors,
        false,
        |offset, chunk| {
            let at = (offset - lba * 512) as usize;
            if let Some(dst) = out.get_mut(at..at + chunk.len()) {
                dst.copy_from_slice(chunk);
            }
        },
        serve,
    )?;
    Ok(out)
}

/// A checked catalog, the disk it came from and the data extents (GPT name, first LBA,
/// sectors) beside it: what partitions are created from.
pub struct Loaded {
    pub catalog: Box<Catalog>,
    pub disk: usize,
    pub extents: Vec<(String, u64, u64)>,
    /// The state partition (first LBA, sectors), if the disk has one.
    pub state: Option<(u64, u64)>,
}

/// Why one disk yielded no catalog, or the outcome of checking the one it holds.
enum Found {
    NoCatalog(String),
    Checked(Result<Loaded, String>),
}

fn search(disk: usize, name: &str, max_payload: u64, serve: &mut dyn FnMut()) -> Found {
    let Ok(sectors) = block::sectors(disk) else {
        return Found::NoCatalog(format!("{name}: gone"));
    };
    let table = match plinth_gpt::read(sectors, |lba, buf: &mut [u8]| {
        let data = read_sectors(disk, lba, (buf.len() / 512) as u64, serve)?;
        buf.copy_from_slice(&data);
        Ok::<(), DiskError>(())
    }) {
        Ok(t) => t,
        Err(e) => return Found::NoCatalog(format!("{name}: no GPT ({e})")),
    };
    if table.used_backup {
        log::warn!("{name}: primary GPT damaged; using the backup table");
    }
    let Some(part) = table.find_by_type(&CATALOG_PARTITION_TYPE).next() else {
        return Found::NoCatalog(format!("{name}: GPT without a catalog partition"));
    };
    let capacity = part.sectors().saturating_mul(512);
    let result = (|| {
        let first = read_sectors(disk, part.first_lba, 1, serve).map_err(|e| format!("{e:?}"))?;
        let header = Header::parse(
            &first,
            capacity.min(max_payload.saturating_add(HEADER_LEN as u64)),
        )
        .map_err(|e| format!("{e}"))?;
        let payload = read_sectors(disk, part.first_lba + 1, header.payload_sectors(), serve)
            .map_err(|e| format!("reading the catalog: {e:?}"))?;
        let catalog = Catalog::open(&header, &payload).map_err(|e| format!("{e}"))?;
        let extents = table
            .find_by_type(&DATA_PARTITION_TYPE)
            .map(|p| (p.name.clone(), p.first_lba, p.sectors()))
            .collect();
        let state = table
            .find_by_type(&STATE_PARTITION_TYPE)
            .next()
            .map(|p| (p.first_lba, p.sectors()));
        Ok(Loaded {
            catalog: Box::new(catalog),
            disk,
            extents,
            state,
        })
    })();
    Found::Checked(result)
}

/// Finds and checks the catalog on the first disk that has one, and records the
/// outcome; returns the catalog when it verified. Runs once, after `ready`: signature
/// checks cost milliseconds under TCG, and boot time is a target. `serve` runs while
/// the disk reads wait (the management network, so it is not held up).
pub fn load(max_payload: u64, serve: &mut dyn FnMut()) -> Option<Loaded> {
    let started = clock::now_ns();
    let mut disks: Vec<String> = Vec::new();
    block::for_each_disk(|name, _, _, _| disks.push(String::from(name)));
    let mut seen: Vec<String> = Vec::new();
    for (i, name) in disks.iter().enumerate() {
        let outcome = match search(i, name, max_payload, serve) {
            Found::NoCatalog(why) => {
                seen.push(why);
                continue;
            }
            Found::Checked(r) => r,
        };
        let state = match outcome {
            Ok(loaded) => {
                let Loaded {
                    ref catalog,
                    ref extents,
                    ..
                } = loaded;
                let ext: Vec<Extent<'_>> = extents
                    .iter()
                    .map(|(n, first_lba, sectors)| Extent {
                        partition: n,
                        first_lba: *first_lba,
                        sectors: *sectors,
                    })
                    .collect();
                let mut json = String::from("{\"state\":\"verified\",\"disk\":");
                json.push('"');
                json.push_str(name);
                json.push_str("\",\"catalog\":");
                // Writing to a String cannot fail.
                let _ = plinth_catalog::write_json(catalog, &ext, &mut json);
                json.push('}');
                let a = &catalog.appliance;
                info!(
                    "catalog: verified appliance {} {} on {name}: {} partitions, {} agents, {} policy files, {} trusted keys ({} ms)",
                    a.name,
                    a.version,
                    a.partitions.len(),
                    catalog.agents.len(),
                    a.policies.len(),
                    catalog.keys.len(),
                    crate::clock::Millis(clock::now_ns().saturating_sub(started))
                );
                let state = State::Verified {
                    disk: name.clone(),
                    json,
                    partitions: a.partitions.len(),
                    agents: catalog.agents.len(),
                };
                STATE.call_once(|| state);
                return Some(loaded);
            }
            Err(e) => {
                error!("catalog: INVALID on {name}: {e}; safe state: nothing is started");
                State::Invalid {
                    disk: name.clone(),
                    error: e,
                }
            }
        };
        STATE.call_once(|| state);
        return None;
    }
    let reason = if seen.is_empty() {
        String::from("no disk attached")
    } else {
        seen.join("; ")
    };
    info!("catalog: none found ({reason}); nothing to start");
    STATE.call_once(|| State::Absent { reason });
    None
}
