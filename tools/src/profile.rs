//! Machine profiles: the QEMU command lines in `qemu/*.toml`.
//!
//! The built-in profiles are compiled in from `qemu/`, so the tool works from any
//! directory; `--profile PATH.toml` loads another file of the same shape.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// Accelerator QEMU runs the guest with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Software emulation: the reference on machines without hardware virtualization.
    Tcg,
    /// Hardware virtualization through /dev/kvm.
    Kvm,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// A machine profile as written in `qemu/NAME.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(skip)]
    pub name: String,
    pub description: String,
    /// QEMU executable, looked up in PATH.
    pub binary: String,
    /// Debian package that provides `binary` and `files`.
    pub package: String,
    /// Firmware and data files the profile needs.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Arguments, with `{accel}`, `{memory}`, `{kernel}`, `{append}` placeholders.
    pub args: Vec<String>,
    /// Arguments added when a disk is attached, with `{disk}` (image path) and
    /// `{disk_serial}` placeholders. Empty: the profile cannot attach disks yet.
    #[serde(default)]
    pub disk_args: Vec<String>,
    /// Arguments added when a NIC is attached: user networking with the API port
    /// forwarded from the host. Placeholders `{mac}`, `{api_host_port}` (on 127.0.0.1)
    /// and `{api_port}` (in the runtime). Empty: the profile cannot attach a NIC yet.
    #[serde(default)]
    pub nic_args: Vec<String>,
    /// Arguments for a NIC on a host tap device instead (a real L2 segment, e.g. in a
    /// network namespace), with `{tap}` (interface name) and `{mac}` placeholders.
    #[serde(default)]
    pub tap_nic_args: Vec<String>,
    /// Arguments for a NIC on another QEMU network backend (`socket`, `dgram`: guests
    /// joined to each other with no host device), with `{netdev}` (the `-netdev` value
    /// without its `id`) and `{mac}` placeholders.
    #[serde(default)]
    pub netdev_nic_args: Vec<String>,
    /// Arguments added when an initial RAM disk is given (a Linux guest's initramfs; the
    /// runtime takes none), with the `{initrd}` (file path) placeholder. Empty: the
    /// profile cannot boot with one.
    #[serde(default)]
    pub initrd_args: Vec<String>,
}

/// Errors loading or using a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown machine profile `{0}` (built in: {builtin}; or give a path to a .toml file)", builtin = BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("cannot read profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("profile {name} is not valid: {source}")]
    Parse {
        name: String,
        source: Box<toml::de::Error>,
    },
    #[error("profile {name}: argument `{arg}` has an unknown placeholder")]
    Placeholder { name: String, arg: String },
    #[error("profile {0} cannot attach a disk (it has no disk_args)")]
    NoDiskSupport(String),
    #[error("disk image path {0} contains a comma, which QEMU's -drive option cannot take")]
    DiskPath(PathBuf),
    #[error("profile {0} cannot attach a NIC (it has no nic_args)")]
    NoNicSupport(String),
    #[error("profile {0} cannot attach a tap NIC (it has no tap_nic_args)")]
    NoTapSupport(String),
    #[error("a launch takes one NIC: a user-network, a tap or another backend's, not two")]
    TwoNics,
    #[error("profile {0} cannot attach a NIC on another backend (it has no netdev_nic_args)")]
    NoNetdevSupport(String),
    #[error("netdev backend `{0}` must not be empty or hold `id=` (the profile names it)")]
    NetdevBackend(String),
    #[error("profile {0} cannot boot with an initrd (it has no initrd_args)")]
    NoInitrdSupport(String),
    #[error("initrd path {0} contains a comma, which QEMU's -initrd option cannot take")]
    InitrdPath(PathBuf),
}

/// Profiles shipped in `qemu/`.
pub const BUILTIN: [(&str, &str); 2] = [
    ("q35", include_str!("../../qemu/q35.toml")),
    ("microvm", include_str!("../../qemu/microvm.toml")),
];

/// What a launch substitutes into the profile.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    pub accel: Accel,
    pub memory_mib: u32,
    pub kernel: PathBuf,
    pub append: String,
    pub disk: Option<Disk>,
    pub nic: Option<Nic>,
    /// A NIC on a host tap device (instead of `nic`).
    pub tap: Option<Tap>,
    /// A NIC on another QEMU network backend (instead of `nic` or `tap`).
    pub netdev: Option<Netdev>,
    /// Run QEMU inside this network namespace (`ip netns exec NAME`), where its tap
    /// device is created.
    pub netns: Option<String>,
    /// An initial RAM disk for the kernel (the profile's `initrd_args`): a Linux guest's
    /// initramfs. The runtime boots without one.
    pub initrd: Option<PathBuf>,
}

/// A NIC on a tap device the host configures (QEMU creates it if missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tap {
    pub ifname: String,
    pub mac: [u8; 6],
}

/// A NIC on a QEMU network backend given as its `-netdev` value: `socket` and `dgram`
/// join guests to each other over UDP on the host, with no tap, bridge or root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netdev {
    /// The `-netdev` value without `id=`, e.g. `socket,mcast=230.0.0.1:1234`.
    pub backend: String,
    pub mac: [u8; 6],
}

impl Netdev {
    /// Every guest given the same multicast `group` (e.g. 230.0.0.1:PORT) shares one
    /// Ethernet segment; `localaddr=127.0.0.1` keeps it on the host's loopback.
    pub fn socket_mcast(group: std::net::SocketAddrV4, mac: [u8; 6]) -> Netdev {
        Netdev {
            backend: format!("socket,mcast={group},localaddr=127.0.0.1"),
            mac,
        }
    }

    /// A point-to-point link: frames go to `remote` as UDP datagrams from `local`, and
    /// the guest at `remote` is given the two the other way round.
    pub fn dgram(
        local: std::net::SocketAddrV4,
        remote: std::net::SocketAddrV4,
        mac: [u8; 6],
    ) -> Netdev {
        Netdev {
            backend: format!(
                "dgram,local.type=inet,local.host={},local.port={},remote.type=inet,remote.host={},remote.port={}",
                local.ip(),
                local.port(),
                remote.ip(),
                remote.port()
            ),
            mac,
        }
    }
}

/// The runtime's management NIC: QEMU user networking, the API forwarded from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nic {
    pub mac: [u8; 6],
    /// Port on 127.0.0.1 forwarded to the runtime's API port.
    pub api_host_port: u16,
    /// The runtime's API port (its `api_port=` option).
    pub api_port: u16,
}

impl Nic {
    /// A locally administered unicast MAC (52:54:00 is QEMU's own prefix).
    pub const DEFAULT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    pub fn mac_string(&self) -> String {
        self.mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A raw disk image attached as the runtime's virtio block device.
#[derive(Clone, Debug)]
pub struct Disk {
    pub image: PathBuf,
    /// What the device reports as its serial (at most 20 bytes are visible).
    pub serial: String,
}

impl Profile {
    /// A built-in profile by name, or a profile file by path.
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(name, text);
        }
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
                path: path.into(),
                source,
            })?;
            let name = path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            return Self::parse(&name, &text);
        }
        Err(ProfileError::Unknown(name_or_path.to_owned()))
    }

    fn parse(name: &str, text: &str) -> Result<Profile, ProfileError> {
        let mut p: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            name: name.to_owned(),
            source: Box::new(e),
        })?;
        p.name = name.to_owned();
        let base = ["accel", "memory", "kernel", "append"];
        let disk = ["accel", "memory", "kernel", "append", "disk", "disk_serial"];
        let nic = ["mac", "api_host_port", "api_port"];
        let tap = ["mac", "tap"];
        let netdev = ["netdev", "mac"];
        let initrd = ["initrd"];
        let checks = p.args.iter().map(|a| (a, &base[..]));
        let checks = checks
            .chain(p.disk_args.iter().map(|a| (a, &disk[..])))
            .chain(p.nic_args.iter().map(|a| (a, &nic[..])))
            .chain(p.tap_nic_args.iter().map(|a| (a, &tap[..])))
            .chain(p.netdev_nic_args.iter().map(|a| (a, &netdev[..])))
            .chain(p.initrd_args.iter().map(|a| (a, &initrd[..])));
        for (arg, allowed) in checks {
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').map(|c| open + c);
                let key = close.map(|c| &rest[open + 1..c]);
                if !key.is_some_and(|k| allowed.contains(&k)) {
                    return Err(ProfileError::Placeholder {
                        name: name.to_owned(),
                        arg: arg.clone(),
                    });
                }
                rest = &rest[close.map_or(rest.len(), |c| c + 1)..];
            }
        }
        Ok(p)
    }

    /// The arguments with placeholders filled in.
    pub fn args(&self, o: &LaunchOptions) -> Result<Vec<String>, ProfileError> {
        let fill = |a: &String| {
            let mut a = a
                .replace("{accel}", o.accel.as_str())
                .replace("{memory}", &o.memory_mib.to_string())
                .replace("{kernel}", &o.kernel.to_string_lossy())
                .replace("{append}", &o.append);
            if let Some(d) = &o.disk {
                // QEMU's option syntax doubles a comma to escape it inside a value.
                a = a
                    .replace("{disk_serial}", &d.serial.replace(',', ",,"))
                    .replace("{disk}", &d.image.to_string_lossy());
            }
            if let Some(n) = &o.nic {
                a = a
                    .replace("{mac}", &n.mac_string())
                    .replace("{api_host_port}", &n.api_host_port.to_string())
                    .replace("{api_port}", &n.api_port.to_string());
            }
            if let Some(t) = &o.tap {
                let mac = Nic {
                    mac: t.mac,
                    api_host_port: 0,
                    api_port: 0,
                }
                .mac_string();
                a = a.replace("{mac}", &mac).replace("{tap}", &t.ifname);
            }
            if let Some(n) = &o.netdev {
                let mac = Nic {
                    mac: n.mac,
                    api_host_port: 0,
                    api_port: 0,
                }
                .mac_string();
                a = a.replace("{mac}", &mac).replace("{netdev}", &n.backend);
            }
            if let Some(i) = &o.initrd {
                a = a.replace("{initrd}", &i.to_string_lossy());
            }
            a
        };
        let mut args: Vec<String> = self.args.iter().map(fill).collect();
        if let Some(d) = &o.disk {
            if self.disk_args.is_empty() {
                return Err(ProfileError::NoDiskSupport(self.name.clone()));
            }
            if d.image.to_string_lossy().contains(',') {
                return Err(ProfileError::DiskPath(d.image.clone()));
            }
            args.extend(self.disk_args.iter().map(fill));
        }
        let nics = [o.nic.is_some(), o.tap.is_some(), o.netdev.is_some()];
        if nics.iter().filter(|n| **n).count() > 1 {
            return Err(ProfileError::TwoNics);
        }
        if o.nic.is_some() {
            if self.nic_args.is_empty() {
                return Err(ProfileError::NoNicSupport(self.name.clone()));
            }
            args.extend(self.nic_args.iter().map(fill));
        }
        if o.tap.is_some() {
            if self.tap_nic_args.is_empty() {
                return Err(ProfileError::NoTapSupport(self.name.clone()));
            }
            args.extend(self.tap_nic_args.iter().map(fill));
        }
        if let Some(n) = &o.netdev {
            if self.netdev_nic_args.is_empty() {
                return Err(ProfileError::NoNetdevSupport(self.name.clone()));
            }
            let first = n.backend.split(',').next().unwrap_or_default();
            if first.is_empty() || n.backend.split(',').any(|kv| kv.starts_with("id=")) {
                return Err(ProfileError::NetdevBackend(n.backend.clone()));
            }
            args.extend(self.netdev_nic_args.iter().map(fill));
        }
        if let Some(i) = &o.initrd {
            if self.initrd_args.is_empty() {
                return Err(ProfileError::NoInitrdSupport(self.name.clone()));
            }
            // -initrd splits its value at commas (several files, one after the other).
            if i.to_string_lossy().contains(',') {
                return Err(ProfileError::InitrdPath(i.clone()));
            }
            args.extend(self.initrd_args.iter().map(fill));
        }
        Ok(args)
    }

    /// The full QEMU command (inside `o.netns` when set).
    pub fn command(&self, o: &LaunchOptions) -> Result<Command, ProfileError> {
        let args = self.args(o)?;
        let mut c = match &o.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str(), self.binary.as_str()]);
                c
            }
            None => Command::new(&self.binary),
        };
        c.args(args);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LaunchOptions {
        LaunchOptions {
            accel: Accel::Tcg,
            memory_mib: 256,
            kernel: "/k.elf".into(),
            append: "log=debug".into(),
            disk: None,
            nic: None,
            tap: None,
            netdev: None,
            netns: None,
            initrd: None,
        }
    }

    #[test]
    fn initrd_args_are_added_only_with_an_initrd() {
        for (name, _) in BUILTIN {
            let p = Profile::load(name).unwrap();
            let mut o = opts();
            let without = p.args(&o).unwrap();
            assert!(!without.iter().any(|a| a == "-initrd"), "{name}");
            o.initrd = Some("/cache/guest.cpio".into());
            let with = p.args(&o).unwrap();
            assert_eq!(with.len(), without.len() + 2, "{name}");
            assert!(
                with.windows(2)
                    .any(|w| w == ["-initrd", "/cache/guest.cpio"]),
                "{name}: {with:?}"
            );
            o.initrd = Some("/a,b.cpio".into());
            assert!(matches!(p.args(&o), Err(ProfileError::InitrdPath(_))));
        }
        let mut bare = Profile::load("q35").unwrap();
        bare.initrd_args.clear();
        let mut o = opts();
        o.initrd = Some("/cache/guest.cpio".into());
        assert!(matches!(
            bare.args(&o),
            Err(ProfileError::NoInitrdSupport(_))
        ));
        let bad = "description='x'\nbinary='q'\npackage='p'\nargs=[]\ninitrd_args=['{disk}']\n";
        assert!(matches!(
            Profile::parse("t", bad),
            Err(ProfileError::Placeholder { .. })
        ));
    }

    #[test]
    fn tap_nic_runs_qemu_in_the_namespace() {
        let p = Profile::load("q35").unwrap();
        let mut o = opts();
        o.tap = Some(Tap {
            ifname: "pltap7".into(),
            mac: [0x52, 0x54, 0, 1, 2, 3],
        });
        o.netns = Some("plinth-ns".into());
        let c = p.command(&o).unwrap();
        assert_eq!(c.get_program(), "ip");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[..4],
            ["netns", "exec", "plinth-ns", "qemu-system-x86_64"]
        );
        let line = args.join(" ");
        assert!(line.contains("ifname=pltap7"), "{line}");
        assert!(line.contains("mac=52:54:00:01:02:03"), "{line}");
        assert!(!line.contains("hostfwd"), "{line}");
        o.nic = Some(Nic {
            mac: Nic::DEFAULT_MAC,
            api_host_port: 1,
            api_port: 2,
        });
        assert!(matches!(p.args(&o), Err(ProfileError::TwoNics)));
    }

    #[test]
    fn netdev_nics_take_the_backend_and_the_mac() {
        use std::net::{Ipv4Addr, SocketAddrV4};
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40001);
        let remote = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40002);
        for (name, _) in BUILTIN {
            let p = Profile::load(name).unwrap();
            let mut o = opts();
            o.netdev = Some(Netdev::dgram(local, remote, [0x52, 0x54, 0, 9, 8, 7]));
            let args = p.args(&o).unwrap();
            let line = args.join(" ");
            assert!(
                args.iter().any(|a| a
                    == "dgram,local.type=inet,local.host=127.0.0.1,local.port=40001,\
                        remote.type=inet,remote.host=127.0.0.1,remote.port=40002,id=net0"),
                "{name}: {line}"
            );
            assert!(line.contains("mac=52:54:00:09:08:07"), "{name}: {line}");
            assert!(!line.contains('{'), "{name}: {line}");
            o.netdev = Some(Netdev::socket_mcast(
                SocketAddrV4::new(Ipv4Addr::new(230, 0, 0, 1), 5555),
                Nic::DEFAULT_MAC,
            ));
            let line = p.args(&o).unwrap().join(" ");
            assert!(
                line.contains("socket,mcast=230.0.0.1:5555,localaddr=127.0.0.1,id=net0"),
                "{name}: {line}"
            );
            o.tap = Some(Tap {
                ifname: "t".into(),
                mac: Nic::DEFAULT_MAC,
            });
            assert!(matches!(p.args(&o), Err(ProfileError::TwoNics)));
            o.tap = None;
            for bad in ["", "socket,id=x,mcast=230.0.0.1:1"] {
                o.netdev = Some(Netdev {
                    backend: bad.into(),
                    mac: Nic::DEFAULT_MAC,
                });
                assert!(matches!(p.args(&o), Err(ProfileError::NetdevBackend(_))));
            }
        }
        let mut bare = Profile::load("q35").unwrap();
        bare.netdev_nic_args.clear();
        let mut o = opts();
        o.netdev = Some(Netdev::dgram(local, remote, Nic::DEFAULT_MAC));
        assert!(matches!(
            bare.args(&o),
            Err(ProfileError::NoNetdevSupport(_))
        ));
    }

    #[test]
    fn nic_args_forward_the_api_port_and_set_the_mac() {
        let p = Profile::load("q35").unwrap();
        let mut o = opts();
        o.nic = Some(Nic {
            mac: [0x52, 0x54, 0, 0xab, 0xcd, 0xef],
            api_host_port: 18080,
            api_port: 8080,
        });
        let args = p.args(&o).unwrap().join(" ");
        assert!(args.contains("hostfwd=tcp:127.0.0.1:18080-:8080"), "{args}");
        assert!(args.contains("mac=52:54:00:ab:cd:ef"), "{args}");
        assert!(!args.contains('{'), "{args}");
    }

    #[test]
    fn builtin_profiles_parse_and_fill_placeholders() {
        for (name, _) in BUILTIN {
            let p = Profile::load(name).unwrap();
            let args = p.args(&opts()).unwrap();
            assert!(args.iter().all(|a| !a.contains('{')), "{name}: {args:?}");
            assert!(args.windows(2).any(|w| w == ["-m", "256M"]), "{name}");
            assert!(
                args.windows(2).any(|w| w == ["-kernel", "/k.elf"]),
                "{name}"
            );
            assert!(
                args.windows(2).any(|w| w == ["-append", "log=debug"]),
                "{name}"
            );
            assert!(args.windows(2).any(|w| w == ["-accel", "tcg"]), "{name}");
            assert!(
                args.iter()
                    .any(|a| a.contains("isa-debug-exit,iobase=0xf4")),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_profiles_are_reported() {
        assert!(matches!(
            Profile::load("nosuch"),
            Err(ProfileError::Unknown(_))
        ));
        assert!(matches!(
            Profile::load("/nonexistent/x.toml"),
            Err(ProfileError::Read { .. })
        ));
        let bad = "description='x'\nbinary='q'\npackage='p'\nargs=['-m','{mem}']\n";
        assert!(matches!(
            Profile::parse("t", bad),
            Err(ProfileError::Placeholder { .. })
        ));
        let unknown = "description='x'\nbinary='q'\npackage='p'\nargs=[]\nextra=1\n";
        assert!(matches!(
            Profile::parse("t", unknown),
            Err(ProfileError::Parse { .. })
        ));
    }
}
