//! Making this machine ready for plinth: [`plinth_setup`] (one entry point,
//! [`ensure`]; apt as root for packages, rustup for the target, the exact command
//! otherwise; safe from parallel tests), with what this tool knows: a profile's QEMU and
//! firmware, and the kernel's target.

pub use plinth_setup::{
    FDISK, IP, Need, QEMU_IMG, SGDISK, SetupError, command_path, ensure, ensure_command,
};

use crate::build::KERNEL_TARGET;
use crate::profile::Profile;

/// What a profile needs: its QEMU binary and firmware files, from its Debian package.
pub fn qemu_needs(profile: &Profile) -> Vec<Need> {
    let package = profile.package.clone();
    let mut needs = vec![Need::Command {
        command: profile.binary.clone().into(),
        package: package.clone().into(),
    }];
    needs.extend(
        profile
            .files
            .iter()
            .map(|f| Need::file(f.clone(), package.clone())),
    );
    needs
}

/// Makes sure the profile's QEMU binary and firmware files are present.
pub fn ensure_qemu(profile: &Profile) -> Result<(), SetupError> {
    ensure(&qemu_needs(profile))
}

/// The kernel's and agents' target, for the toolchain the repository's
/// `rust-toolchain.toml` selects (which lists the target too, but a toolchain installed
/// before, or without it, lacks it).
pub fn target_need() -> Need {
    Need::target(KERNEL_TARGET, crate::repo_root())
}

/// Makes sure rustup has the kernel's target.
pub fn ensure_target() -> Result<(), SetupError> {
    ensure(&[target_need()])
}
