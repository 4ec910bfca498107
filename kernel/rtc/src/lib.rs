//! The PC's real-time clock (the MC146818 in the chipset, and QEMU's model of it) as
//! Unix time: the runtime has no other wall clock, and tokens' expiry and the audit log
//! need one.
//!
//! [`Registers`] are the raw CMOS bytes as read (`arch::rtc` reads them); [`unix_seconds`]
//! decodes them as status register B says — BCD or binary (bit 2), 12- or 24-hour
//! (bit 1, with bit 7 of the hour for PM) — and checks every field, so a clock that is
//! not set, or garbage, is an error rather than a time. The RTC has no time zone; it is
//! taken as UTC (as QEMU's is by default, and as servers keep it). The year is two
//! digits: 2000–2099.
//!
//! Owns the decoding and the calendar arithmetic. It must not touch ports.
#![no_std]
#![forbid(unsafe_code)]

/// The clock's registers as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub day: u8,
    pub month: u8,
    pub year: u8,
    /// Status register B.
    pub status_b: u8,
}

/// Status register B: the registers are binary, not BCD.
pub const BINARY: u8 = 1 << 2;
/// Status register B: hours are 24-hour, not 12-hour.
pub const HOURS_24: u8 = 1 << 1;

/// Why the registers are no time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcError {
    /// A BCD register with a digit above 9.
    BadBcd,
    /// A field out of its range (which one).
    OutOfRange(&'static str),
}

fn decode(v: u8, binary: bool) -> Result<u8, RtcError> {
    if binary {
        return Ok(v);
    }
    let (hi, lo) = (v >> 4, v & 15);
    if hi > 9 || lo > 9 {
        return Err(RtcError::BadBcd);
    }
    Ok(hi * 10 + lo)
}

/// Days from 1970-01-01 to `y-m-d` (proleptic Gregorian; Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC date and time of Unix second `t`: (year, month, day, hours, minutes,
/// seconds); Howard Hinnant's `civil_from_days`.
pub fn civil(t: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (t / 86_400) as i64;
    let secs = (t % 86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

fn days_in_month(year: u32, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// The registers as Unix seconds.
pub fn unix_seconds(r: &Registers) -> Result<u64, RtcError> {
    let binary = r.status_b & BINARY != 0;
    let pm = r.status_b & HOURS_24 == 0 && r.hours & 0x80 != 0;
    let seconds = decode(r.seconds, binary)?;
    let minutes = decode(r.minutes, binary)?;
    let mut hours = decode(r.hours & 0x7f, binary)?;
    let day = decode(r.day, binary)?;
    let month = decode(r.month, binary)?;
    let year = 2000 + u32::from(decode(r.year, binary)?);
    if r.status_b & HOURS_24 == 0 {
        if !(1..=12).contains(&hours) {
            return Err(RtcError::OutOfRange("hours"));
        }
        hours = match (hours, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    let checks = [
        (seconds <= 59, "seconds"),
        (minutes <= 59, "minutes"),
        (hours <= 23, "hours"),
        ((1..=12).contains(&month), "month"),
        (year <= 2099, "year"),
    ];
    if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(RtcError::OutOfRange(what));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(RtcError::OutOfRange("day"));
    }
    let days = days_from_civil(i64::from(year), u32::from(month), u32::from(day));
    // 2000..=2099: days is positive and far from overflow.
    Ok(days as u64 * 86_400
        + u64::from(hours) * 3_600
        + u64::from(minutes) * 60
        + u64::from(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bcd(v: u8) -> u8 {
        (v / 10) << 4 | (v % 10)
    }

    fn regs(y: u8, mo: u8, d: u8, h: u8, mi: u8, s: u8, status_b: u8) -> Registers {
        let f = |v: u8| if status_b & BINARY != 0 { v } else { bcd(v) };
        Registers {
            seconds: f(s),
            minutes: f(mi),
            hours: f(h),
            day: f(d),
            month: f(mo),
            year: f(y),
            status_b,
        }
    }

    #[test]
    fn known_times_in_every_encoding() {
        // 2026-12-08 01:20:30 UTC = 1796692830 (`date -u -d @1796692830`).
        let want = 1796692830;
        for b in [HOURS_24, HOURS_24 | BINARY] {
            assert_eq!(unix_seconds(&regs(26, 12, 8, 1, 20, 30, b)), Ok(want));
        }
        // 12-hour: 1 AM, and 12 AM/PM.
        for b in [0, BINARY] {
            assert_eq!(unix_seconds(&regs(26, 12, 8, 1, 20, 30, b)), Ok(want));
            let midnight = unix_seconds(&regs(26, 12, 8, 12, 0, 0, b)).unwrap();
            assert_eq!(midnight % 86_400, 0);
            let mut noon = regs(26, 12, 8, 12, 0, 0, b);
            noon.hours |= 0x80;
            assert_eq!(unix_seconds(&noon), Ok(midnight + 12 * 3600));
            let mut eleven_pm = regs(26, 12, 8, 11, 0, 0, b);
            eleven_pm.hours |= 0x80;
            assert_eq!(unix_seconds(&eleven_pm), Ok(midnight + 23 * 3600));
        }
        assert_eq!(
            unix_seconds(&regs(0, 1, 1, 0, 0, 0, HOURS_24)),
            Ok(946_684_800)
        );
        assert_eq!(
            unix_seconds(&regs(24, 2, 29, 0, 0, 0, HOURS_24)),
            Ok(1_709_164_800)
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil(want), (2026, 12, 8, 1, 20, 30));
        assert_eq!(civil(1_709_164_800), (2024, 2, 29, 0, 0, 0));
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        for t in (0..4_102_444_800u64).step_by(86_399 * 7) {
            let (y, m, d, h, mi, s) = civil(t);
            let back = days_from_civil(y, m, d) as u64 * 86_400 + u64::from(h * 3600 + mi * 60 + s);
            assert_eq!(back, t);
        }
    }

    /// Register `i`, in [`Registers`]' field order.
    fn register(r: &mut Registers, i: usize) -> &mut u8 {
        [
            &mut r.seconds,
            &mut r.minutes,
            &mut r.hours,
            &mut r.day,
            &mut r.month,
            &mut r.year,
            &mut r.status_b,
        ]
        .into_iter()
        .nth(i)
        .expect("a register")
    }

    #[test]
    fn garbage_is_no_time() {
        let ok = regs(26, 12, 8, 1, 20, 30, HOURS_24);
        let mut r = ok;
        r.seconds = 0x5a;
        assert_eq!(unix_seconds(&r), Err(RtcError::BadBcd));
        for (field, v, what) in [
            (0, bcd(60), "seconds"),
            (1, bcd(60), "minutes"),
            (2, bcd(24), "hours"),
            (3, bcd(32), "day"),
            (3, 0, "day"),
            (4, bcd(13), "month"),
            (4, 0, "month"),
        ] {
            let mut r = ok;
            *register(&mut r, field) = v;
            assert_eq!(unix_seconds(&r), Err(RtcError::OutOfRange(what)));
        }
        assert_eq!(
            unix_seconds(&regs(25, 2, 29, 0, 0, 0, HOURS_24)),
            Err(RtcError::OutOfRange("day"))
        );
        assert_eq!(
            unix_seconds(&regs(26, 1, 1, 0, 0, 0, 0)),
            Err(RtcError::OutOfRange("hours"))
        );
        // Every byte in every register: an error or a time, never a panic.
        for v in 0..=255u8 {
            for field in 0..7 {
                let mut r = ok;
                *register(&mut r, field) = v;
                let _ = unix_seconds(&r);
            }
        }
    }
}
