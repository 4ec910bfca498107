//! The Linux test guest booted for real: fetched (once, into target/linux-guest/),
//! booted on the q35 profile, driven over its serial console.

use std::time::Duration;

use plinth::linux_guest::{Init, LinuxGuest, READY_LINE};
use plinth::profile::{Accel, LaunchOptions, Profile};

#[test]
fn the_guest_boots_and_runs_commands_typed_on_its_console() {
    let profile = Profile::load("q35").unwrap_or_else(|e| panic!("{e}"));
    plinth::setup::ensure_qemu(&profile).unwrap_or_else(|e| panic!("{e}"));
    let guest = LinuxGuest::fetch().unwrap_or_else(|e| panic!("{e}"));
    let opts = LaunchOptions {
        accel: Accel::Tcg,
        memory_mib: 128,
        kernel: "replaced by the guest's".into(),
        append: "replaced too".into(),
        disk: None,
        nic: None,
        tap: None,
        netdev: None,
        netns: None,
        initrd: None,
    };
    // A module with dependencies of its own (8021q needs garp, mrp, stp, llc): the
    // 802.1Q peers of later tests load it this way.
    let init = Init::console().module("8021q");
    let mut g = guest
        .boot(&profile, &opts, &init)
        .unwrap_or_else(|e| panic!("{e}"));
    let args = g.qemu_args().join(" ");
    assert!(args.contains("-initrd "), "{args}");
    assert!(args.contains("-append console=ttyS0 quiet"), "{args}");
    assert!(
        args.contains("qboot.rom"),
        "the profile's own firmware: {args}"
    );
    let ready = g
        .wait_ready(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ready.text.contains(READY_LINE));
    // The console echoes what is typed, so look for the answer's own text.
    g.machine()
        .send_line("echo \"kernel=$(uname -r) vlan=$(grep -c ^8021q /proc/modules)\"")
        .unwrap();
    let want = format!("kernel={} vlan=1", guest.release);
    g.wait_for(Duration::from_secs(30), |l| l.contains(&want))
        .unwrap_or_else(|e| panic!("{e}"));
    g.machine().send_line("exit 3").unwrap();
    assert_eq!(
        g.wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}")),
        3
    );
}
