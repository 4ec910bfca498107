//! Kernel modules in an unpacked Debian kernel package: finding them by name and the
//! order to load them in.
//!
//! Debian ships no `modules.dep` in the package (`depmod` makes it when the package is
//! installed, which the guest never is), so the dependencies come from each module's own
//! `.modinfo` ELF section: its `depends=a,b` string, the list `depmod` itself reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("kernel module `{name}` is not under {}", root.display())]
    NotFound { name: String, root: PathBuf },
    #[error("kernel module {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("kernel module {} has no readable .modinfo section", path.display())]
    NoModinfo { path: PathBuf },
    #[error("kernel modules depend on each other in a cycle through `{0}`")]
    Cycle(String),
}

/// A module's name as the kernel spells it: `-` and `_` are the same, `_` is canonical.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// The `.modinfo` section of an ELF64 little-endian object, if it has one.
fn modinfo_section(elf: &[u8]) -> Option<&[u8]> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    // ELFCLASS64, ELFDATA2LSB.
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let (shentsize, shnum, shstrndx) = (
        usize::from(u16_at(0x3a)?),
        usize::from(u16_at(0x3c)?),
        usize::from(u16_at(0x3e)?),
    );
    // Section header: sh_name (u32) at 0, sh_offset at 0x18, sh_size at 0x20.
    let section = |i: usize| -> Option<(usize, &[u8])> {
        let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = u32::from_le_bytes(elf.get(h..h + 4)?.try_into().ok()?) as usize;
        let off = usize::try_from(u64_at(h + 0x18)?).ok()?;
        let size = usize::try_from(u64_at(h + 0x20)?).ok()?;
        Some((name, elf.get(off..off.checked_add(size)?)?))
    };
    let (_, names) = section(shstrndx)?;
    (0..shnum).find_map(|i| {
        let (name, data) = section(i)?;
        let rest = names.get(name..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        (&rest[..end] == b".modinfo").then_some(data)
    })
}

/// The modules a module depends on (its `.modinfo` `depends=`), or `None` when `ko` is
/// not an ELF64 object with a `.modinfo` section.
pub fn depends(ko: &[u8]) -> Option<Vec<String>> {
    let info = modinfo_section(ko)?;
    let list = info
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"depends="))
        .unwrap_or_default();
    Some(
        String::from_utf8_lossy(list)
            .split(',')
            .filter(|d| !d.is_empty())
            .map(canonical)
            .collect(),
    )
}

/// The `.ko` files under a `lib/modules/RELEASE/kernel` directory, by canonical name.
pub struct ModuleTree {
    root: PathBuf,
    by_name: BTreeMap<String, PathBuf>,
}

impl ModuleTree {
    /// Walks `root` for `*.ko` files.
    pub fn scan(root: &Path) -> Result<ModuleTree, ModuleError> {
        let mut by_name = BTreeMap::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let read = |error| ModuleError::Read {
                path: dir.clone(),
                error,
            };
            for e in std::fs::read_dir(&dir).map_err(read)? {
                let path = e.map_err(read)?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|x| x == "ko")
                    && let Some(stem) = path.file_stem()
                {
                    by_name.insert(canonical(&stem.to_string_lossy()), path);
                }
            }
        }
        Ok(ModuleTree {
            root: root.to_path_buf(),
            by_name,
        })
    }

    /// `wanted` and everything they depend on, each once, every module after its
    /// dependencies: the order to `insmod` them in.
    pub fn load_order(&self, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>, ModuleError> {
        let mut order = Vec::new();
        let mut visiting = Vec::new();
        for name in wanted {
            self.visit(&canonical(name), &mut visiting, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        visiting: &mut Vec<String>,
        order: &mut Vec<(String, PathBuf)>,
    ) -> Result<(), ModuleError> {
        if order.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        if visiting.iter().any(|n| n == name) {
            return Err(ModuleError::Cycle(name.to_owned()));
        }
        let path = self
            .by_name
            .get(name)
            .ok_or_else(|| ModuleError::NotFound {
                name: name.to_owned(),
                root: self.root.clone(),
            })?;
        let ko = std::fs::read(path).map_err(|error| ModuleError::Read {
            path: path.clone(),
            error,
        })?;
        let deps = depends(&ko).ok_or_else(|| ModuleError::NoModinfo { path: path.clone() })?;
        visiting.push(name.to_owned());
        for d in &deps {
            self.visit(d, visiting, order)?;
        }
        visiting.pop();
        order.push((name.to_owned(), path.clone()));
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF64 object with a section-name table and a `.modinfo` section.
    pub(crate) fn fake_ko(modinfo: &[u8]) -> Vec<u8> {
        let names = b"\0.shstrtab\0.modinfo\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let names_at = elf.len();
        elf.extend_from_slice(names);
        let info_at = elf.len();
        elf.extend_from_slice(modinfo);
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let shoff = elf.len();
        // Section 0 (null), 1 (.shstrtab), 2 (.modinfo); 64 bytes each.
        for (name, off, size) in [
            (0u32, 0usize, 0usize),
            (1, names_at, names.len()),
            (11, info_at, modinfo.len()),
        ] {
            let mut h = [0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&h);
        }
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        elf
    }

    #[test]
    fn depends_comes_from_the_modinfo_section() {
        let ko = fake_ko(b"license=GPL\0depends=virtio_ring,virtio-pci-modern-dev\0name=x\0");
        assert_eq!(
            depends(&ko),
            Some(vec!["virtio_ring".into(), "virtio_pci_modern_dev".into()])
        );
        assert_eq!(depends(&fake_ko(b"depends=\0name=x\0")), Some(vec![]));
        assert_eq!(depends(&fake_ko(b"name=x\0")), Some(vec![]));
        // `depends=` outside .modinfo does not count; a non-ELF file has no section.
        assert_eq!(depends(b"\0depends=virtio\0"), None);
        let mut truncated = fake_ko(b"depends=a\0");
        truncated.truncate(100);
        assert_eq!(depends(&truncated), None);
    }

    #[test]
    fn dependencies_load_first_and_once() {
        let dir = std::env::temp_dir().join(format!("plinth-modules-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let put = |rel: &str, deps: &str| {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, fake_ko(format!("depends={deps}\0").as_bytes())).unwrap();
        };
        put("drivers/virtio/virtio_ring.ko", "");
        put("drivers/virtio/virtio.ko", "virtio_ring");
        put("drivers/virtio/virtio_pci.ko", "virtio_ring,virtio");
        put("drivers/block/virtio_blk.ko", "virtio,virtio_ring");
        put("net/a.ko", "b");
        put("net/b.ko", "a");
        put("net/c.ko", "missing-one");
        let tree = ModuleTree::scan(&dir).unwrap();
        let order = tree.load_order(&["virtio_pci", "virtio-blk"]).unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["virtio_ring", "virtio", "virtio_pci", "virtio_blk"]);
        assert!(order[3].1.ends_with("drivers/block/virtio_blk.ko"));
        assert!(matches!(
            tree.load_order(&["a"]),
            Err(ModuleError::Cycle(n)) if n == "a"
        ));
        assert!(matches!(
            tree.load_order(&["c"]),
            Err(ModuleError::NotFound { name, .. }) if name == "missing_one"
        ));
        assert!(matches!(
            tree.load_order(&["nosuch"]),
            Err(ModuleError::NotFound { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
