//! The stable fuzz driver, which the root `cargo test` runs (and so CI): one test per
//! fuzz target that
//!
//! 1. replays every file of the target's committed corpus, `fuzz/corpus/<target>/`, and
//!    requires some of them to be accepted (past checksums and signatures: see
//!    [`Verdict`]), so the generated inputs start from the deep paths;
//! 2. then runs inputs generated from a seeded RNG for a time budget: mostly stacked
//!    mutations of the corpus (bit flips, interesting bytes and integers, inserts,
//!    deletes, copies, splices with another entry, truncations), some plain random bytes;
//!    a mutant the target accepts joins the pool, a crude stand-in for libFuzzer's
//!    coverage feedback.
//!
//! A panic fails the test with the target, the seed, the input in hex and a file holding
//! it; an input that runs for [`HANG_SECS`] fails it too. The tests run two at a time on
//! a two-core machine, so the whole step takes about `12 * budget / 2`.
//!
//! Environment: `PLINTH_FUZZ_SECS`, seconds of generated inputs per target (default
//! [`DEFAULT_SECS`]; `0` replays the corpora only); `PLINTH_FUZZ_SEED`, the seed
//! (decimal or `0x` hex; by default a new one each run, printed on failure, so CI keeps
//! exploring and a failure can be re-run).
//!
//! This file owns input generation, the budget and the failure report. It must not
//! touch what a target checks (`plinth_fuzz_targets`) or write the corpus (that is
//! `examples/corpus.rs`, and whoever keeps a failing input as a regression file).

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use plinth_fuzz_targets::{TARGETS, Target, Verdict};
use plinth_testrng::Rng;

/// Seconds of generated inputs per target when `PLINTH_FUZZ_SECS` is not set: twelve
/// targets two at a time make about a minute on CI's two cores.
const DEFAULT_SECS: f64 = 10.0;
/// One input running this long is a hang (the slowest corpus input takes milliseconds
/// in a debug build).
const HANG_SECS: u64 = 30;
/// Generated inputs are cut to this length (the largest corpus files are tens of KiB).
const MAX_INPUT: usize = 1 << 20;
/// Accepted mutants kept in the pool beside the corpus.
const MAX_FINDS: usize = 256;
/// Inputs up to this length are printed whole in a failure report.
const MAX_HEX: usize = 256 * 1024;
/// Stack of the thread the targets run on: libFuzzer's main thread has 8 MiB, and the
/// two drivers should find the same deep-recursion bugs.
const STACK_BYTES: usize = 8 << 20;

/// `fuzz/`, the cargo-fuzz crate this one sits in.
fn fuzz_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

/// Bytes that matter to the formats under test: boundaries, and the punctuation of TOML,
/// JSON, HTTP and the command line.
const INTERESTING_BYTES: &[u8] = b"\x00\x01\x7f\x80\xff\n\r\t \"'=[]{},.:;/\\@#-_0159azAZ";
/// Integers at the edges of the formats' fields: sizes, sectors, pages, sign bits.
const INTERESTING_INTS: &[u64] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x1ff,
    0x200,
    0x1000,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// Random bytes: mostly short, half of them from [`INTERESTING_BYTES`] and printable
/// ASCII, so text formats get past their first byte.
fn random_input(rng: &mut Rng, out: &mut Vec<u8>) {
    let len = match rng.below(10) {
        0..=4 => rng.below(17),
        5..=8 => rng.below(257),
        _ => rng.below(4097),
    };
    let text = rng.chance(50);
    out.clear();
    out.extend((0..len).map(|_| {
        if !text {
            rng.byte()
        } else if rng.chance(30) {
            INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
        } else {
            0x20 + rng.below(0x5f) as u8
        }
    }));
}

/// A position in `data`, or its end.
fn position(rng: &mut Rng, data: &[u8]) -> usize {
    rng.below(data.len() + 1)
}

/// A range length: mostly small, sometimes a large part of `available`.
fn span(rng: &mut Rng, available: usize) -> usize {
    if available == 0 {
        return 0;
    }
    let most = if rng.chance(80) {
        available.min(16)
    } else {
        available
    };
    1 + rng.below(most)
}

/// One mutation of `data`, drawing on `pool` for splices.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
    match rng.below(11) {
        // Flip one bit.
        0 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        // Set one byte, to a random or an interesting value.
        1 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] = if rng.chance(50) {
                rng.byte()
            } else {
                INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]
            };
        }
        // Add or subtract a little from one byte (lengths, counts, digits).
        2 if !data.is_empty() => {
            let i = rng.below(data.len());
            let delta = 1 + rng.below(16) as u8;
            data[i] = if rng.chance(50) {
                data[i].wrapping_add(delta)
            } else {
                data[i].wrapping_sub(delta)
            };
        }
        // Overwrite with an interesting integer, 2, 4 or 8 bytes, either byte order.
        3 => {
            let width = [2, 4, 8][rng.below(3)];
            if data.len() >= width {
                let v = INTERESTING_INTS[rng.below(INTERESTING_INTS.len())];
                let bytes = if rng.chance(75) {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let at = rng.below(data.len() - width + 1);
                let src = if rng.chance(75) {
                    &bytes[..width]
                } else {
                    &bytes[8 - width..]
                };
                data[at..at + width].copy_from_slice(src);
            }
        }
        // Insert random bytes, or one byte repeated.
        4 => {
            let at = position(rng, data);
            let n = span(rng, 64);
            let fill = rng.byte();
            let repeat = rng.chance(30);
            let bytes: Vec<u8> = (0..n)
                .map(|_| if repeat { fill } else { rng.byte() })
                .collect();
            data.splice(at..at, bytes);
        }
        // Delete a range.
        5 if !data.is_empty() => {
            let at = rng.below(data.len());
            let n = span(rng, data.len() - at);
            data.drain(at..at + n);
        }
        // Copy a range of the input over another place, or insert it there.
        6 if !data.is_empty() => {
            let from = rng.below(data.len());
            let n = span(rng, data.len() - from);
            let chunk = data[from..from + n].to_vec();
            let to = position(rng, data);
            if rng.chance(50) {
                data.splice(to..to, chunk);
            } else {
                let end = (to + n).min(data.len());
                data.splice(to..end, chunk);
            }
        }
        // Splice: this input's head, another's tail.
        7 if !pool.is_empty() => {
            let other = &pool[rng.below(pool.len())];
            let cut = position(rng, data);
            let from = position(rng, other);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        // Insert a piece of another input (its tokens, headers, lines).
        8 if !pool.is_empty() => {
            let other = &pool[rng.below(pool.len())];
            if !other.is_empty() {
                let from = rng.below(other.len());
                let n = span(rng, other.len() - from);
                let at = position(rng, data);
                data.splice(at..at, other[from..from + n].iter().copied());
            }
        }
        // Truncate.
        9 => {
            let at = position(rng, data);
            data.truncate(at);
        }
        // Swap two bytes.
        _ if data.len() >= 2 => {
            let (a, b) = (rng.below(data.len()), rng.below(data.len()));
            data.swap(a, b);
        }
        _ => {}
    }
}

/// The next generated input: a few stacked mutations of a pool entry, or random bytes.
fn generate(rng: &mut Rng, pool: &[Vec<u8>], out: &mut Vec<u8>) {
    if pool.is_empty() || rng.chance(10) {
        random_input(rng, out);
        return;
    }
    out.clone_from(&pool[rng.below(pool.len())]);
    // 1 mutation half the time, up to 8 otherwise.
    let count = if rng.chance(50) { 1 } else { 1 + rng.below(8) };
    for _ in 0..count {
        mutate(rng, out, pool);
    }
    out.truncate(MAX_INPUT);
}

/// Runs one input, turning a panic into its message.
fn run(target: &Target, data: &[u8]) -> Result<Verdict, String> {
    panic::catch_unwind(AssertUnwindSafe(|| (target.run)(data))).map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "(a panic without a message)".to_string()
        }
    })
}

/// Where an input came from, for the report.
#[derive(Clone, Debug)]
enum Origin {
    Corpus(PathBuf),
    Generated { iteration: u64 },
}

/// A target that panicked or hung.
#[derive(Debug)]
struct Failure {
    what: String,
    origin: Origin,
    input: Vec<u8>,
}

/// What a target's run did, for the summary line.
#[derive(Debug)]
struct Summary {
    corpus: usize,
    corpus_accepted: usize,
    generated: u64,
    generated_accepted: u64,
}

/// What the runner thread shares with the watchdog: how many inputs have finished and
/// which one is running.
struct Progress {
    done: AtomicU64,
    current: Mutex<(Origin, Vec<u8>)>,
    stop: AtomicBool,
}

impl Progress {
    fn start(&self, origin: Origin, data: &[u8]) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.0 = origin;
        current.1.clear();
        current.1.extend_from_slice(data);
    }
}

fn read_corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{target}: cannot read its corpus {}: {e}", dir.display()));
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.expect("reading a corpus directory").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p, data)
        })
        .collect();
    files.sort();
    files
}

/// The corpus, then generated inputs until `budget` is spent; the first failure ends it.
fn drive(
    target: &Target,
    seed: u64,
    budget: Duration,
    progress: &Progress,
) -> Result<Summary, Failure> {
    let corpus = read_corpus(target.name);
    let mut summary = Summary {
        corpus: corpus.len(),
        corpus_accepted: 0,
        generated: 0,
        generated_accepted: 0,
    };
    for (path, data) in &corpus {
        let origin = Origin::Corpus(path.clone());
        progress.start(origin.clone(), data);
        match run(target, data) {
            Ok(Verdict::Accepted) => summary.corpus_accepted += 1,
            Ok(Verdict::Refused) => {}
            Err(what) => {
                return Err(Failure {
                    what,
                    origin,
                    input: data.clone(),
                });
            }
        }
        progress.done.fetch_add(1, Ordering::Relaxed);
    }

    let mut pool: Vec<Vec<u8>> = corpus.into_iter().map(|(_, d)| d).collect();
    let corpus_len = pool.len();
    let mut rng = Rng::mixed(seed ^ name_hash(target.name));
    let started = Instant::now();
    let mut input = Vec::new();
    while started.elapsed() < budget && !progress.stop.load(Ordering::Relaxed) {
        generate(&mut rng, &pool, &mut input);
        let origin = Origin::Generated {
            iteration: summary.generated,
        };
        progress.start(origin.clone(), &input);
        match run(target, &input) {
            Ok(Verdict::Accepted) => {
                summary.generated_accepted += 1;
                // Keep accepted mutants to mutate further, replacing older finds when full.
                if pool.len() < corpus_len + MAX_FINDS {
                    pool.push(input.clone());
                } else {
                    let slot = corpus_len + rng.below(MAX_FINDS);
                    pool[slot].clone_from(&input);
                }
            }
            Ok(Verdict::Refused) => {}
            Err(what) => {
                return Err(Failure {
                    what,
                    origin,
                    input,
                });
            }
        }
        summary.generated += 1;
        progress.done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(summary)
}

/// FNV-1a, so each target gets its own sequence from one seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn env_seed() -> u64 {
    match std::env::var("PLINTH_FUZZ_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("PLINTH_FUZZ_SEED={s:?}: {e}"))
        }
        Err(_) => {
            // A new seed each run, so CI keeps exploring; the report prints it.
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            Rng::mixed(now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32).next_u64()
        }
    }
}

fn env_budget() -> Duration {
    match std::env::var("PLINTH_FUZZ_SECS") {
        Ok(s) => {
            let secs: f64 = s
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("PLINTH_FUZZ_SECS={s:?}: {e}"));
            Duration::try_from_secs_f64(secs)
                .unwrap_or_else(|e| panic!("PLINTH_FUZZ_SECS={s:?}: {e}"))
        }
        Err(_) => Duration::from_secs_f64(DEFAULT_SECS),
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Saves the input and formats everything needed to reproduce the failure.
fn report(target: &str, seed: u64, f: &Failure) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let source = match &f.origin {
        Origin::Corpus(path) => format!("corpus file {}", path.display()),
        Origin::Generated { iteration } => format!(
            "generated input #{iteration} (PLINTH_FUZZ_SEED={seed:#x} generates the same \
             sequence)"
        ),
    };
    let file = dir.join(format!("{target}-{seed:016x}"));
    let saved = match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &f.input)) {
        Ok(()) => format!(
            "saved as {} (copy it into fuzz/corpus/{target}/ to keep it as a regression \
             input)",
            file.display()
        ),
        Err(e) => format!("not saved ({}: {e})", file.display()),
    };
    let shown = &f.input[..f.input.len().min(MAX_HEX)];
    let cut = if shown.len() < f.input.len() {
        " (cut; the saved file has all of it)"
    } else {
        ""
    };
    format!(
        "fuzz target `{target}` failed: {}\n  seed: {seed:#x}\n  input: {source}\n  {saved}\n  \
         {} bytes, hex{cut}:\n{}",
        f.what,
        f.input.len(),
        hex(shown)
    )
}

/// One target's test: runs [`drive`] on a thread of its own and watches it for hangs.
fn fuzz(name: &str) {
    let target = *TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target `{name}`"));
    let seed = env_seed();
    let budget = env_budget();
    let progress = Arc::new(Progress {
        done: AtomicU64::new(0),
        current: Mutex::new((Origin::Generated { iteration: 0 }, Vec::new())),
        stop: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel();
    let shared = Arc::clone(&progress);
    thread::Builder::new()
        .name(format!("fuzz-{name}"))
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let _ = tx.send(drive(&target, seed, budget, &shared));
        })
        .expect("spawning the fuzz thread");

    let mut last = (0, Instant::now());
    let outcome = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(outcome) => break outcome,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("fuzz target `{name}`: the fuzz thread died (seed {seed:#x})")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let done = progress.done.load(Ordering::Relaxed);
                if done != last.0 {
                    last = (done, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(HANG_SECS) {
                    // The thread is stuck in the target; it is left running (a test
                    // cannot kill a thread) and ends with the test binary.
                    progress.stop.store(true, Ordering::Relaxed);
                    let (origin, input) = progress
                        .current
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let f = Failure {
                        what: format!("no result after {HANG_SECS} s (a hang)"),
                        origin,
                        input,
                    };
                    panic!("{}", report(name, seed, &f));
                }
            }
        }
    };
    match outcome {
        Ok(s) => {
            println!(
                "{name}: {} corpus files ({} accepted), {} generated inputs in {:.1} s ({} \
                 accepted), seed {seed:#x}",
                s.corpus,
                s.corpus_accepted,
                s.generated,
                budget.as_secs_f64(),
                s.generated_accepted
            );
            assert!(
                s.corpus_accepted > 0,
                "fuzz target `{name}`: none of the {} files of {} is accepted, so fuzzing \
                 would not get past its checks; regenerate them \
                 (cargo run -p plinth-fuzz-targets --example corpus)",
                s.corpus,
                corpus_dir(name).display()
            );
        }
        Err(f) => panic!("{}", report(name, seed, &f)),
    }
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                fuzz(stringify!($name));
            }
        )*

        /// Every target of the crate has a test here.
        #[test]
        fn every_target_is_driven() {
            let driven = [$(stringify!($name)),*];
            let targets: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
            assert_eq!(targets, driven);
        }
    };
}

targets!(
    cmdline,
    start_info,
    http_connection,
    pci_capabilities,
    tar_archive,
    agent_container,
    gpt,
    policy_set,
    catalog,
    elf,
    control,
    bridge_frames,
    rx_offload,
    journal,
    auth_header,
);

/// The cargo-fuzz crate has exactly these targets, each binary calling its body here and
/// nothing else, so libFuzzer and this driver run the same code.
#[test]
fn cargo_fuzz_binaries_call_the_shared_bodies() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "plinth-fuzz")
        .collect();
    let targets: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(bins, targets, "fuzz/Cargo.toml's [[bin]]s");
    for t in &targets {
        let path = fuzz_dir().join(format!("fuzz_targets/{t}.rs"));
        let src =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let call = format!("plinth_fuzz_targets::{t}(data);");
        let body: Vec<&str> = src
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .collect();
        assert_eq!(
            body,
            [
                "#![no_main]",
                "use libfuzzer_sys::fuzz_target;",
                "fuzz_target!(|data: &[u8]| {",
                call.as_str(),
                "});"
            ],
            "{}",
            path.display()
        );
    }
}

/// The mutator is deterministic for a seed (what makes `PLINTH_FUZZ_SEED` re-run a
/// failure), and the seeds of two targets differ.
#[test]
fn generation_is_reproducible() {
    let pool = vec![b"GET / HTTP/1.1\r\n\r\n".to_vec(), vec![0; 600]];
    let run = |seed| {
        let mut rng = Rng::mixed(seed);
        let mut out = Vec::new();
        (0..200)
            .map(|_| {
                generate(&mut rng, &pool, &mut out);
                out.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
    assert_ne!(name_hash("gpt"), name_hash("elf"));
}
