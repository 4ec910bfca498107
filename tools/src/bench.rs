//! Benchmarks that boot the runtime: `plinth bench boot`.

use std::time::Duration;

use serde::Serialize;

use crate::machine::{Machine, MachineError, Outcome};
use crate::profile::{LaunchOptions, Profile};
use plinth_exit::ExitCode;

/// Median, minimum and maximum of a set of figures, milliseconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// Summarises `values`; the median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Summary {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Summary {
            median_ms: median,
            min_ms: v.first().copied().unwrap_or(f64::NAN),
            max_ms: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// One boot's figures.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BootSample {
    /// Host: QEMU spawned → first serial line received.
    pub launch_to_first_line_ms: f64,
    /// Host: QEMU spawned → `plinth: ready` received.
    pub launch_to_ready_ms: f64,
    /// Guest: kernel entry → ready, by the kernel's TSC clock (from the ready line).
    pub kernel_init_ms: f64,
}

/// The result of `plinth bench boot`.
#[derive(Clone, Debug, Serialize)]
pub struct BootReport {
    pub profile: String,
    pub accel: crate::profile::Accel,
    pub memory_mib: u32,
    pub runs: usize,
    pub launch_to_first_line: Summary,
    pub launch_to_ready: Summary,
    pub kernel_init: Summary,
    pub samples: Vec<BootSample>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("boot {run}: {source}\n{transcript}")]
    Boot {
        run: usize,
        source: MachineError,
        transcript: String,
    },
    #[error("boot {run}: the ready line carries no init time: {line}")]
    NoInitTime { run: usize, line: String },
    #[error("boot {run}: shutdown ended in {outcome}")]
    Shutdown { run: usize, outcome: Outcome },
}

/// Reads the guest init time from `plinth: ready (init 2.345 ms ...`.
pub fn parse_init_ms(ready_line: &str) -> Option<f64> {
    let rest = &ready_line[ready_line.find("init ")? + 5..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Boots `runs` times and measures each boot; every run is shut down through the console.
pub fn boot(
    profile: &Profile,
    opts: &LaunchOptions,
    runs: usize,
    mut progress: impl FnMut(usize, &BootSample),
) -> Result<BootReport, BenchError> {
    let timeout = Duration::from_secs(60);
    let mut samples = Vec::with_capacity(runs);
    for run in 1..=runs {
        let mut m = Machine::launch(profile, opts, false).map_err(|source| BenchError::Boot {
            run,
            source,
            transcript: String::new(),
        })?;
        let fail = |m: &mut Machine, source| BenchError::Boot {
            run,
            source,
            transcript: m.transcript(),
        };
        let first = match m.wait_for(timeout, |_| true) {
            Ok(l) => l,
            Err(e) => return Err(fail(&mut m, e)),
        };
        let ready = match m.wait_ready(timeout) {
            Ok(l) => l,
            Err(e) => return Err(fail(&mut m, e)),
        };
        let kernel_init_ms = parse_init_ms(&ready.text).ok_or_else(|| BenchError::NoInitTime {
            run,
            line: ready.text.clone(),
        })?;
        if let Err(e) = m.send_line("shutdown") {
            return Err(fail(&mut m, e));
        }
        let outcome = m.wait_exit(Duration::from_secs(20));
        if outcome != Outcome::Runtime(ExitCode::Success) {
            return Err(BenchError::Shutdown { run, outcome });
        }
        let ms = |at: std::time::Instant| at.duration_since(m.launched_at).as_secs_f64() * 1e3;
        let sample = BootSample {
            launch_to_first_line_ms: ms(first.at),
            launch_to_ready_ms: ms(ready.at),
            kernel_init_ms,
        };
        progress(run, &sample);
        samples.push(sample);
    }
    let pick = |f: fn(&BootSample) -> f64| Summary::of(&samples.iter().map(f).collect::<Vec<_>>());
    Ok(BootReport {
        profile: profile.name.clone(),
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        runs,
        launch_to_first_line: pick(|s| s.launch_to_first_line_ms),
        launch_to_ready: pick(|s| s.launch_to_ready_ms),
        kernel_init: pick(|s| s.kernel_init_ms),
        samples,
    })
}

impl std::fmt::Display for BootReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "boot benchmark: {} runs, profile {}, accel {}, {} MiB",
            self.runs,
            self.profile,
            self.accel.as_str(),
            self.memory_mib
        )?;
        writeln!(
            f,
            "{:<34} {:>10} {:>10} {:>10}",
            "", "median ms", "min ms", "max ms"
        )?;
        for (name, s) in [
            (
                "launch -> first serial line (host)",
                self.launch_to_first_line,
            ),
            ("launch -> ready (host)", self.launch_to_ready),
            ("kernel init, entry -> ready (TSC)", self.kernel_init),
        ] {
            writeln!(
                f,
                "{name:<34} {:>10.2} {:>10.2} {:>10.2}",
                s.median_ms, s.min_ms, s.max_ms
            )?;
        }
        write!(
            f,
            "ready after first line: {:.2} ms (median difference)",
            self.launch_to_ready.median_ms - self.launch_to_first_line.median_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_even_and_empty() {
        assert_eq!(
            Summary::of(&[3.0, 1.0, 2.0]),
            Summary {
                median_ms: 2.0,
                min_ms: 1.0,
                max_ms: 3.0
            }
        );
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).median_ms, 2.5);
        assert!(Summary::of(&[]).median_ms.is_nan());
    }

    #[test]
    fn init_time_is_read_from_the_ready_line() {
        assert_eq!(
            parse_init_ms("plinth: ready (init 4.321 ms of guest time, memory 128 MiB, 1 cpu)"),
            Some(4.321)
        );
        assert_eq!(parse_init_ms("plinth: ready"), None);
        assert_eq!(parse_init_ms("plinth: ready (init soon ms)"), None);
    }
}
