//! Loading agents: runnable images from the verified catalog, and an image mapped into a
//! fresh address space charged to its partition.
//!
//! Owns the step from a container's checked executable to pages in ring 3. It must not
//! start, schedule or end anything (`lifecycle` does), and maps memory only through
//! `arch::paging::AddressSpace`, every frame charged by [`charged_alloc`].

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use log::warn;
use plinth_abi::{IMAGE_BASE, IMAGE_END, PAGE_SIZE, STACK_SIZE, STACK_TOP};
use plinth_catalog::Catalog;
use plinth_elf::{Executable, Limits, Window};

use super::model::{AgentImage, Partition};
use crate::arch::paging::{AddressSpace, PagingError, UserPerms};
use crate::memory;

/// The catalog's agents whose executables `plinth-elf` accepts; the others are logged
/// and left out.
pub fn images(catalog: &Catalog) -> Vec<Arc<AgentImage>> {
    let mut images = Vec::new();
    for a in &catalog.agents {
        let name = a.manifest.name.clone();
        let version = format!("{}", a.manifest.version);
        let exe = a.file(&a.manifest.entry).unwrap_or_default();
        let window = Window {
            start: IMAGE_BASE,
            end: IMAGE_END,
        };
        match Executable::parse(exe, window, Limits::AGENT) {
            Ok(executable) => images.push(Arc::new(AgentImage {
                name,
                version,
                executable,
                files: a.files.clone(),
                entry: a.manifest.entry.clone(),
                resources: a.manifest.resources,
            })),
            Err(e) => warn!(
                "agent {name} {version}: {} is not runnable: {e}",
                a.manifest.entry
            ),
        }
    }
    images
}

/// A fresh address space for `image` in `part`: its segments with their permissions, the
/// stack below `STACK_TOP`, every frame charged to `part`. Returns the space and the
/// entry point; on failure nothing stays charged.
pub fn load(part: &mut Partition, image: &AgentImage) -> Result<(AddressSpace, u64), String> {
    let mut alloc = charged_alloc(part);
    let mut space = AddressSpace::new(&mut alloc).map_err(|e| start_error(&e))?;
    let result = (|| {
        let mut map = |pages: core::ops::Range<u64>, perms| {
            pages
                .step_by(PAGE_SIZE as usize)
                .try_for_each(|page| space.map_new(page, perms, &mut alloc).map(drop))
                .map_err(|e| start_error(&e))
        };
        for seg in &image.executable.segments {
            let perms = UserPerms {
                write: seg.perms.write,
                execute: seg.perms.execute,
            };
            map(seg.pages(), perms)?;
        }
        let stack = UserPerms {
            write: true,
            execute: false,
        };
        map(STACK_TOP - STACK_SIZE..STACK_TOP, stack)?;
        let exe = image.file(&image.entry).unwrap_or_default();
        for seg in &image.executable.segments {
            space
                .write(seg.vaddr, seg.file_bytes(exe), true)
                .map_err(|e| format!("loading the executable: {e:?}"))?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok((space, image.executable.entry)),
        Err(e) => {
            drop(alloc);
            let freed = space.release(&mut memory::free_frame_addr);
            part.frames -= freed as u64;
            Err(e)
        }
    }
}

fn start_error(e: &PagingError) -> String {
    match e {
        PagingError::OutOfFrames => String::from("memory quota exceeded while loading"),
        other => format!("mapping the image: {other:?}"),
    }
}

/// A frame allocator that charges `part` and refuses past its quota.
pub fn charged_alloc(part: &mut Partition) -> impl FnMut() -> Option<u64> + '_ {
    move || {
        if part.frames >= part.quota_frames() {
            return None;
        }
        let f = memory::alloc_frame_addr()?;
        part.frames += 1;
        part.peak_frames = part.peak_frames.max(part.frames);
        Some(f)
    }
}
