//! The std backend: the runtime's calls played by an ordinary Linux process.
//!
//! Each call keeps the runtime's observable rules where the host can (sector arithmetic
//! and its errors, the memory quota, `NotFound` for a missing config file), so an agent
//! that misuses the API fails the same way on the host as in a partition.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use plinth_abi::{Call, Error, MAX_IO, PAGE_SIZE, SECTOR_SIZE};

/// Directory `config_read` names are relative to (default: the current directory).
const AGENT_DIR_VAR: &str = "PLINTH_AGENT_DIR";
/// The data disk's backing file; empty means "no disk".
const DISK_VAR: &str = "PLINTH_DISK";
/// The memory quota, bytes (decimal or `0x` hex).
const QUOTA_VAR: &str = "PLINTH_MEMORY_QUOTA";
/// Size of the default disk file, bytes.
const DEFAULT_DISK_BYTES: u64 = 16 << 20;
/// File name of the default disk, in the temporary directory.
const DEFAULT_DISK_NAME: &str = "hostshim-disk.img";
/// Default memory quota, bytes.
const DEFAULT_QUOTA: u64 = 64 << 20;

/// When the agent started; the zero of [`clock_ns`].
static START: OnceLock<Instant> = OnceLock::new();
/// Heartbeats so far.
static BEATS: AtomicU64 = AtomicU64::new(0);
/// The data disk, opened on first use.
static DISK: OnceLock<Result<Mutex<Disk>, Error>> = OnceLock::new();
/// Memory handed out so far, against the quota; set up on first use.
static HEAP: OnceLock<Mutex<Quota>> = OnceLock::new();

/// Starts the clock (idempotent; the first call to anything timed also starts it).
pub fn start() {
    START.get_or_init(Instant::now);
}

/// Writes one line to stderr, ignoring failures as the runtime's log does.
pub(crate) fn stderr_line(prefix: &str, text: &str) {
    let _ = writeln!(io::stderr().lock(), "{prefix} {text}");
}

pub fn log(text: &str) {
    stderr_line("[agent]", text);
}

pub fn clock_ns() -> u64 {
    let elapsed = START.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(elapsed).unwrap_or(u64::MAX)
}

pub fn sleep_ns(ns: u64) {
    std::thread::sleep(Duration::from_nanos(ns));
}

pub fn yield_now() {
    std::thread::yield_now();
}

pub fn exit(code: i32) -> ! {
    std::process::exit(code)
}

pub fn heartbeat() -> u64 {
    let n = BEATS.fetch_add(1, Ordering::Relaxed) + 1;
    stderr_line("[hostshim]", &format!("heartbeat {n}"));
    n
}

pub fn null() -> u64 {
    0
}

/// Nanoseconds since the first call: the host's fine counter.
pub fn ticks() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

pub fn config_read(name: &str, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
    let dir = std::env::var_os(AGENT_DIR_VAR).map_or_else(|| PathBuf::from("."), PathBuf::from);
    read_config_file(&dir, name, offset, buf)
}

/// Reads `name` below `dir` from `offset` into `buf`, as `config_read` does in a container.
///
/// Names are container paths: relative, without `..` (anything else is
/// [`Error::NotFound`], like a name no container holds).
fn read_config_file(dir: &Path, name: &str, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
    let relative = Path::new(name);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if name.is_empty() || !plain {
        return Err(Error::NotFound);
    }
    let path = dir.join(relative);
    if !path.is_file() {
        return Err(Error::NotFound);
    }
    let mut file = File::open(&path).map_err(io_error)?;
    if offset >= file.metadata().map_err(io_error)?.len() {
        // At or past the end (some offsets are too large for the OS to seek to at all).
        return Ok(0);
    }
    file.seek(SeekFrom::Start(offset)).map_err(io_error)?;
    let mut copied = 0;
    while copied < buf.len() {
        match file.read(&mut buf[copied..]) {
            Ok(0) => break,
            Ok(n) => copied += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(copied)
}

/// `NotFound` for a missing file, `Io` for anything else.
fn io_error(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound,
        _ => Error::Io,
    }
}

/// Locks `m`, carrying on after a panic elsewhere (the state stays consistent: every
/// update is a single assignment after the fallible work).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn disk() -> Result<MutexGuard<'static, Disk>, Error> {
    DISK.get_or_init(|| open_configured_disk().map(Mutex::new))
        .as_ref()
        .map(lock)
        .map_err(|e| *e)
}

/// The disk `$PLINTH_DISK` names (empty: none), or the default sparse file.
fn open_configured_disk() -> Result<Disk, Error> {
    match std::env::var_os(DISK_VAR) {
        Some(path) if path.is_empty() => Err(Error::NoDisk),
        Some(path) => Disk::open(Path::new(&path)),
        None => Disk::open_or_create(
            &std::env::temp_dir().join(DEFAULT_DISK_NAME),
            DEFAULT_DISK_BYTES,
        ),
    }
}

pub fn disk_sectors() -> Result<u64, Error> {
    Ok(disk()?.sectors)
}

pub fn disk_read(sector: u64, buf: &mut [u8]) -> Result<usize, Error> {
    disk()?.read(sector, buf)
}

pub fn disk_write(sector: u64, buf: &[u8]) -> Result<usize, Error> {
    disk()?.write(sector, buf)
}

pub fn disk_flush() -> Result<(), Error> {
    disk()?.flush()
}

/// A data disk backed by a file: whole sectors, nothing past the last full one.
struct Disk {
    file: File,
    /// Whole sectors in the file (a partial last sector is not part of the disk).
    sectors: u64,
}

impl Disk {
    /// Opens an existing disk file; [`Error::NoDisk`] if it is missing or has no whole
    /// sector.
    fn open(path: &Path) -> Result<Disk, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NoDisk,
                _ => Error::Io,
            })?;
        Disk::from_file(file)
    }

    /// Opens `path`, first creating it as a sparse file of `bytes` if absent (or empty).
    fn open_or_create(path: &Path, bytes: u64) -> Result<Disk, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|_| Error::Io)?;
        if file.metadata().map_err(|_| Error::Io)?.len() == 0 {
            file.set_len(bytes).map_err(|_| Error::Io)?;
        }
        Disk::from_file(file)
    }

    fn from_file(file: File) -> Result<Disk, Error> {
        let sectors = file.metadata().map_err(|_| Error::Io)?.len() / SECTOR_SIZE;
        if sectors == 0 {
            return Err(Error::NoDisk);
        }
        Ok(Disk { file, sectors })
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let at = self.position(sector, buf.len())?;
        self.file.seek(SeekFrom::Start(at)).map_err(|_| Error::Io)?;
        self.file.read_exact(buf).map_err(|_| Error::Io)?;
        Ok(buf.len())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<usize, Error> {
        let at = self.position(sector, buf.len())?;
        self.file.seek(SeekFrom::Start(at)).map_err(|_| Error::Io)?;
        self.file.write_all(buf).map_err(|_| Error::Io)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.file.sync_data().map_err(|_| Error::Io)
    }

    /// The byte offset of a transfer of `len` bytes at `sector`, if the runtime would
    /// allow it (see [`check_transfer`]).
    fn position(&self, sector: u64, len: usize) -> Result<u64, Error> {
        check_transfer(self.sectors, sector, len)?;
        // `sector <= self.sectors`, and `self.sectors * SECTOR_SIZE` is the file's length.
        Ok(sector * SECTOR_SIZE)
    }
}

/// The runtime's rules for a disk transfer of `len` bytes at `sector` on a disk of
/// `sectors`: [`Error::BadLength`] unless `len` is whole sectors and at most
/// [`MAX_IO`]; then [`Error::OutOfRange`] unless every sector is on the disk. A zero
/// length moves nothing and is allowed up to the end of the disk.
fn check_transfer(sectors: u64, sector: u64, len: usize) -> Result<(), Error> {
    let len = u64::try_from(len).map_err(|_| Error::BadLength)?;
    if len > MAX_IO || len % SECTOR_SIZE != 0 {
        return Err(Error::BadLength);
    }
    match sector.checked_add(len / SECTOR_SIZE) {
        Some(end) if end <= sectors => Ok(()),
        _ => Err(Error::OutOfRange),
    }
}

/// Memory handed out against a partition's quota.
#[derive(Debug)]
struct Quota {
    /// Most bytes that may be handed out.
    limit: u64,
    /// Bytes handed out so far (whole pages).
    used: u64,
}

impl Quota {
    /// Charges a grow of `bytes` (rounded up to whole pages) and returns the rounded size.
    ///
    /// Errors: [`Error::Invalid`] for 0; [`Error::BadLength`] if rounding overflows;
    /// [`Error::QuotaExceeded`] if the quota would be exceeded (nothing is charged).
    fn charge(&mut self, bytes: u64) -> Result<u64, Error> {
        if bytes == 0 {
            return Err(Error::Invalid);
        }
        let rounded = bytes
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(Error::BadLength)?;
        self.used = self
            .used
            .checked_add(rounded)
            .filter(|used| *used <= self.limit)
            .ok_or(Error::QuotaExceeded)?;
        Ok(rounded)
    }
}

/// The quota `$PLINTH_MEMORY_QUOTA` sets (bytes), or [`DEFAULT_QUOTA`].
fn configured_quota() -> Quota {
    let limit = match std::env::var(QUOTA_VAR) {
        Err(_) => DEFAULT_QUOTA,
        Ok(text) => crate::config::parse_number(text.trim()).unwrap_or_else(|| {
            stderr_line(
                "[hostshim]",
                &format!("{QUOTA_VAR}={text:?} is not a number of bytes; using {DEFAULT_QUOTA}"),
            );
            DEFAULT_QUOTA
        }),
    };
    Quota { limit, used: 0 }
}

pub fn mem_grow(bytes: u64) -> Result<&'static mut [u8], Error> {
    let rounded = lock(HEAP.get_or_init(|| Mutex::new(configured_quota()))).charge(bytes)?;
    page_aligned_zeroed(rounded, bytes)
}

/// Leaks a zeroed block with room for `rounded` bytes from a page boundary and returns its
/// first `len` bytes from that boundary.
fn page_aligned_zeroed(rounded: u64, len: u64) -> Result<&'static mut [u8], Error> {
    let page = PAGE_SIZE as usize;
    let rounded = usize::try_from(rounded).map_err(|_| Error::QuotaExceeded)?;
    let len = usize::try_from(len).map_err(|_| Error::QuotaExceeded)?;
    // One page more than needed, so a page boundary with `rounded` bytes after it exists.
    // `vec!` of zeroes allocates zeroed memory (untouched pages stay unbacked).
    let block = vec![0u8; rounded + page - 1].leak();
    let address = block.as_ptr().addr();
    let skip = address.next_multiple_of(page) - address;
    Ok(&mut block[skip..skip + len])
}

// A Linux process has no plinth NIC: agents there reach the network through Linux
// sockets (`hostshim::net`'s host backend), so every NIC call says so.

pub fn net_info(_nic: u8) -> Result<u64, Error> {
    Err(Error::NoNic)
}

pub fn net_send(_nic: u8, _frame: &[u8], _offload: u64) -> Result<(), Error> {
    Err(Error::NoNic)
}

pub fn net_recv(_nic: u8, _buf: &mut [u8]) -> Result<(usize, bool), Error> {
    Err(Error::NoNic)
}

pub fn net_offload(_nic: u8, _features: u64) -> Result<u64, Error> {
    Err(Error::NoNic)
}

pub fn net_wait(_rx_mask: u8, _tx_mask: u8, _timeout_ns: u64) -> Result<u64, Error> {
    Err(Error::NoNic)
}

pub fn syscall5(n: u64, a: [u64; 5]) -> u64 {
    fn encode(result: Result<u64, Error>) -> u64 {
        result.unwrap_or_else(Error::code)
    }
    let Some(call) = Call::from_number(n) else {
        return Error::UnknownCall.code();
    };
    match call {
        Call::Null => null(),
        Call::Clock => clock_ns(),
        Call::Sleep => {
            sleep_ns(a[0]);
            0
        }
        Call::Yield => {
            yield_now();
            0
        }
        // The runtime reads the code from the low 32 bits.
        Call::Exit => exit(a[0] as i32),
        Call::Heartbeat => heartbeat(),
        Call::DiskSectors => encode(disk_sectors()),
        Call::DiskFlush => encode(disk_flush().map(|()| 0)),
        Call::MemGrow => encode(mem_grow(a[0]).map(|m| m.as_ptr().addr() as u64)),
        // A raw address cannot be checked here; refuse them all as the runtime refuses a
        // bad one.
        Call::Log | Call::ConfigRead | Call::DiskRead | Call::DiskWrite => Error::BadPointer.code(),
        // A Linux process has no plinth NIC: agents there use Linux sockets.
        Call::NetInfo | Call::NetSend | Call::NetRecv | Call::NetWait | Call::NetOffload => {
            Error::NoNic.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTOR: usize = SECTOR_SIZE as usize;
    const MAX: usize = MAX_IO as usize;

    /// A fresh directory under the temporary directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("hostshim-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn transfers_must_be_whole_sectors_within_max_io_and_on_the_disk() {
        let disk = 1000;
        assert_eq!(check_transfer(disk, 0, SECTOR), Ok(()));
        assert_eq!(check_transfer(disk, 0, MAX), Ok(()));
        assert_eq!(check_transfer(disk, 999, SECTOR), Ok(()));
        assert_eq!(check_transfer(disk, 1000 - 128, MAX), Ok(()));
        assert_eq!(check_transfer(disk, 1000, 0), Ok(()));
        // Lengths are checked before positions.
        for len in [1, SECTOR - 1, SECTOR + 1, MAX - 1, MAX + SECTOR, usize::MAX] {
            assert_eq!(check_transfer(disk, 0, len), Err(Error::BadLength), "{len}");
            assert_eq!(
                check_transfer(disk, u64::MAX, len),
                Err(Error::BadLength),
                "{len}"
            );
        }
        assert_eq!(check_transfer(disk, 1000, SECTOR), Err(Error::OutOfRange));
        assert_eq!(
            check_transfer(disk, 999, 2 * SECTOR),
            Err(Error::OutOfRange)
        );
        assert_eq!(check_transfer(disk, 1001, 0), Err(Error::OutOfRange));
        assert_eq!(
            check_transfer(disk, u64::MAX, SECTOR),
            Err(Error::OutOfRange)
        );
        assert_eq!(
            check_transfer(disk, u64::MAX - 1, MAX),
            Err(Error::OutOfRange)
        );
    }

    #[test]
    fn disk_file_round_trips_sectors_and_refuses_bad_transfers() {
        let scratch = Scratch::new("disk");
        let path = scratch.0.join("disk.img");
        // A partial trailing sector is not part of the disk.
        std::fs::write(&path, vec![0u8; 8 * SECTOR + 100]).unwrap();
        let mut disk = Disk::open(&path).unwrap();
        assert_eq!(disk.sectors, 8);

        let pattern: Vec<u8> = (0..2 * SECTOR).map(|i| (i % 251) as u8).collect();
        assert_eq!(disk.write(6, &pattern), Ok(2 * SECTOR));
        assert_eq!(disk.flush(), Ok(()));
        let mut back = vec![0u8; 2 * SECTOR];
        assert_eq!(disk.read(6, &mut back), Ok(2 * SECTOR));
        assert_eq!(back, pattern);
        assert_eq!(disk.read(0, &mut []), Ok(0));

        assert_eq!(disk.read(7, &mut back), Err(Error::OutOfRange));
        assert_eq!(disk.write(8, &pattern[..SECTOR]), Err(Error::OutOfRange));
        assert_eq!(disk.read(0, &mut back[..SECTOR - 1]), Err(Error::BadLength));
        assert_eq!(disk.write(0, &pattern[..SECTOR + 1]), Err(Error::BadLength));
        assert_eq!(
            disk.read(0, &mut vec![0u8; MAX + SECTOR]),
            Err(Error::BadLength)
        );
        // Refused writes changed nothing.
        assert_eq!(disk.read(6, &mut back), Ok(2 * SECTOR));
        assert_eq!(back, pattern);
    }

    #[test]
    fn missing_or_tiny_disk_files_are_no_disk_and_defaults_are_created_sparse() {
        let scratch = Scratch::new("nodisk");
        assert!(matches!(
            Disk::open(&scratch.0.join("absent.img")),
            Err(Error::NoDisk)
        ));
        let tiny = scratch.0.join("tiny.img");
        std::fs::write(&tiny, [0u8; SECTOR - 1]).unwrap();
        assert!(matches!(Disk::open(&tiny), Err(Error::NoDisk)));

        let fresh = scratch.0.join("fresh.img");
        let disk = Disk::open_or_create(&fresh, DEFAULT_DISK_BYTES).unwrap();
        assert_eq!(disk.sectors, DEFAULT_DISK_BYTES / SECTOR_SIZE);
        drop(disk);
        // An existing file keeps its size.
        std::fs::write(&fresh, [7u8; 4 * SECTOR]).unwrap();
        assert_eq!(
            Disk::open_or_create(&fresh, DEFAULT_DISK_BYTES)
                .unwrap()
                .sectors,
            4
        );
    }

    #[test]
    fn quota_charges_whole_pages_and_refuses_past_the_limit() {
        let mut q = Quota {
            limit: 4 * PAGE_SIZE,
            used: 0,
        };
        assert_eq!(q.charge(0), Err(Error::Invalid));
        assert_eq!(q.charge(1), Ok(PAGE_SIZE));
        assert_eq!(q.charge(PAGE_SIZE), Ok(PAGE_SIZE));
        assert_eq!(q.charge(PAGE_SIZE + 1), Ok(2 * PAGE_SIZE));
        assert_eq!(q.used, 4 * PAGE_SIZE);
        assert_eq!(q.charge(1), Err(Error::QuotaExceeded));
        assert_eq!(q.charge(u64::MAX), Err(Error::BadLength));
        assert_eq!(
            q.charge(u64::MAX - PAGE_SIZE + 1),
            Err(Error::QuotaExceeded)
        );
        // Refusals charge nothing.
        assert_eq!(q.used, 4 * PAGE_SIZE);

        let mut big = Quota {
            limit: u64::MAX,
            used: PAGE_SIZE,
        };
        assert_eq!(
            big.charge(u64::MAX - PAGE_SIZE + 1),
            Err(Error::QuotaExceeded)
        );
    }

    #[test]
    fn grown_memory_is_zeroed_page_aligned_and_exactly_as_long_as_asked() {
        for (rounded, len) in [
            (PAGE_SIZE, 1),
            (PAGE_SIZE, PAGE_SIZE),
            (3 * PAGE_SIZE, 9000),
        ] {
            let block = page_aligned_zeroed(rounded, len).unwrap();
            assert_eq!(block.len() as u64, len);
            assert_eq!(block.as_ptr().addr() % PAGE_SIZE as usize, 0);
            assert!(block.iter().all(|b| *b == 0));
            block.fill(0xa5);
        }
        // Through the global quota (64 MiB unless the environment says otherwise).
        let m = mem_grow(10).unwrap();
        assert_eq!((m.len(), m.as_ptr().addr() % PAGE_SIZE as usize), (10, 0));
        assert_eq!(mem_grow(0).err(), Some(Error::Invalid));
    }

    #[test]
    fn config_files_are_read_from_offsets_and_only_below_the_agent_dir() {
        let scratch = Scratch::new("config");
        std::fs::create_dir_all(scratch.0.join("etc")).unwrap();
        std::fs::write(scratch.0.join("etc/hello.toml"), "beats = 3\n").unwrap();
        let mut buf = [0u8; 64];
        let read =
            |name: &str, offset, buf: &mut [u8]| read_config_file(&scratch.0, name, offset, buf);

        assert_eq!(read("etc/hello.toml", 0, &mut buf), Ok(10));
        assert_eq!(&buf[..10], b"beats = 3\n");
        assert_eq!(read("./etc/hello.toml", 8, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"3\n");
        assert_eq!(read("etc/hello.toml", 10, &mut buf), Ok(0));
        assert_eq!(read("etc/hello.toml", u64::MAX / 2, &mut buf), Ok(0));
        assert_eq!(read("etc/hello.toml", u64::MAX, &mut buf), Ok(0));
        assert_eq!(read("etc/hello.toml", 0, &mut buf[..4]), Ok(4));
        assert_eq!(read("etc/hello.toml", 0, &mut []), Ok(0));

        for missing in [
            "",
            "etc",
            "etc/",
            "etc/absent",
            "/etc/hello.toml",
            "../etc/hello.toml",
            "etc/../etc/hello.toml",
        ] {
            assert_eq!(
                read(missing, 0, &mut buf),
                Err(Error::NotFound),
                "{missing:?}"
            );
        }
    }

    #[test]
    fn raw_calls_refuse_unknown_numbers_and_unchecked_pointers() {
        for n in [Call::ALL.len() as u64, 999, u64::MAX] {
            assert_eq!(syscall5(n, [0; 5]), Error::UnknownCall.code());
        }
        // A Linux process has no plinth NIC.
        for call in [
            Call::NetInfo,
            Call::NetSend,
            Call::NetRecv,
            Call::NetWait,
            Call::NetOffload,
        ] {
            assert_eq!(syscall5(call as u64, [0; 5]), Error::NoNic.code());
        }
        for call in [Call::Log, Call::ConfigRead, Call::DiskRead, Call::DiskWrite] {
            assert_eq!(
                syscall5(call as u64, [0x10_0000, 64, 0, 0, 0]),
                Error::BadPointer.code()
            );
        }
        assert_eq!(syscall5(Call::Null as u64, [0; 5]), 0);
        assert_eq!(
            syscall5(Call::MemGrow as u64, [0; 5]),
            Error::Invalid.code()
        );
        assert_eq!(
            syscall5(Call::MemGrow as u64, [u64::MAX, 0, 0, 0, 0]),
            Error::BadLength.code()
        );
        let a = syscall5(Call::Clock as u64, [0; 5]);
        assert!(syscall5(Call::Clock as u64, [0; 5]) >= a);
    }
}
