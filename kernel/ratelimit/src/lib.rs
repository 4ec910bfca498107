//! Token buckets: how much of a resource (bytes, operations) a tenant may use per second,
//! with a burst allowance, for the runtime's I/O governors (tenant network ports first).
//!
//! What it owns:
//! - [`TokenBucket`]: `rate_per_s` tokens flow in per second up to `burst`; a request for
//!   `n` tokens is granted if they are there, and otherwise told how many nanoseconds to
//!   wait. The semantics follow Firecracker's `RateLimiter` (`src/vmm/src/rate_limiter`),
//!   with the rate given per second instead of per refill period.
//! - [`Limiter`]: a bytes bucket and an ops bucket, each optional (`None` is "no limit",
//!   never a sentinel rate), taken from together or not at all.
//!
//! What it must not touch: no clock, no queues, no devices. The caller reads its clock and
//! passes `now_ns`; it decides what to do with a wait hint (arm a timer, leave the frame
//! in the ring). Everything here is integer arithmetic, so it is tested on the host by
//! simulating time, and it never allocates.
//!
//! Arithmetic: a bucket counts *nanotokens* (10^-9 token) in an `i128`. One nanosecond at
//! `rate_per_s` tokens per second brings exactly `rate_per_s` nanotokens, so refilling is
//! one exact multiplication: no division, no remainder to carry, no drift however the time
//! is sliced, and no time counted twice (the bucket remembers up to when it refilled).
//! Bounds: the credit is at most `burst * 10^9 < 2^94`, and at least minus one request,
//! `-(u64::MAX * 10^9) > -2^94`; one refill adds at most `u64::MAX * u64::MAX < 2^128`,
//! which is compared in `u128` against the room left before it is added, so nothing
//! overflows for any `u64` rate, burst, request or time.
//!
//! Requests larger than the burst: a bucket never holds more than `burst` tokens, so a
//! request for more could never be met. Such a request is granted when the bucket is
//! full and leaves it in debt, which later refills pay off before anything else is
//! granted; so a 1514-byte frame is never stuck behind a 1 KiB burst, and the long-run
//! rate still holds.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
mod tests;

/// Nanotokens per token (and nanoseconds per second: a rate per second is a rate of
/// nanotokens per nanosecond).
const NANO: i128 = 1_000_000_000;

/// A token bucket: `rate_per_s` tokens per second flow in, up to `burst` held at once.
///
/// Time is `now_ns`, nanoseconds on any monotonic clock the caller keeps using for this
/// bucket. A clock that goes back is tolerated: nothing refills until it passes the
/// latest time seen again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens per second. 0: the bucket never refills (it only ever grants its burst).
    rate_per_s: u64,
    /// Most tokens held at once.
    burst: u64,
    /// Nanotokens held; below 0 while a request larger than the burst is paid off.
    credit: i128,
    /// Up to when `credit` is refilled, ns.
    last_ns: u64,
}

impl TokenBucket {
    /// A bucket of `rate_per_s` tokens per second holding at most `burst` tokens, full at
    /// `now_ns`.
    pub fn new(rate_per_s: u64, burst: u64, now_ns: u64) -> TokenBucket {
        TokenBucket {
            rate_per_s,
            burst,
            credit: i128::from(burst) * NANO,
            last_ns: now_ns,
        }
    }

    /// Tokens per second.
    pub fn rate_per_s(&self) -> u64 {
        self.rate_per_s
    }

    /// Most tokens held at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Takes `n` tokens at `now_ns`, or, if they are not there, takes nothing and returns
    /// the nanoseconds until they will be (taking then succeeds if nothing else was taken
    /// in between). `u64::MAX` means never (a bucket with rate 0 that is empty).
    ///
    /// `n` above the burst is granted when the bucket is full, leaving it in debt (see the
    /// crate documentation). `n == 0` is always granted.
    pub fn try_take(&mut self, n: u64, now_ns: u64) -> Result<(), u64> {
        self.refill(now_ns);
        match self.wait_ns(n) {
            0 => {
                self.take(n);
                Ok(())
            }
            wait => Err(wait),
        }
    }

    /// Whole tokens available at `now_ns` (0 while in debt); does not change the bucket.
    pub fn tokens(&self, now_ns: u64) -> u64 {
        let mut at = self.clone();
        at.refill(now_ns);
        // credit <= burst * NANO, so the quotient fits u64.
        (at.credit.max(0) / NANO) as u64
    }

    /// Changes the rate and burst at `now_ns`, effective for the next request. The time
    /// up to `now_ns` refills at the old rate; the tokens held are kept, cut to the new
    /// burst; a debt is kept as it is.
    pub fn set(&mut self, rate_per_s: u64, burst: u64, now_ns: u64) {
        self.refill(now_ns);
        self.rate_per_s = rate_per_s;
        self.burst = burst;
        self.credit = self.credit.min(self.cap());
    }

    /// The credit of a full bucket, nanotokens.
    fn cap(&self) -> i128 {
        i128::from(self.burst) * NANO
    }

    /// Adds what flowed in since the last refill, up to the burst.
    fn refill(&mut self, now_ns: u64) {
        if now_ns <= self.last_ns {
            return;
        }
        let elapsed = now_ns - self.last_ns;
        self.last_ns = now_ns;
        let cap = self.cap();
        if self.credit >= cap {
            return;
        }
        // Both below 2^128 (see the crate documentation), compared before adding.
        let room = (cap - self.credit) as u128;
        let inflow = u128::from(elapsed) * u128::from(self.rate_per_s);
        self.credit = if inflow >= room {
            cap
        } else {
            self.credit + inflow as i128
        };
        debug_assert!(self.credit <= cap);
    }

    /// Nanoseconds until `n` tokens can be taken (0: now), from the current credit.
    fn wait_ns(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // A request above the burst waits for a full bucket (it could never see more).
        let need = i128::from(n.min(self.burst)) * NANO;
        if self.credit >= need {
            return 0;
        }
        if self.rate_per_s == 0 {
            return u64::MAX;
        }
        // Positive and below 2^95; rounded up, so the refill after waiting covers it.
        let deficit = (need - self.credit) as u128;
        let wait = deficit.div_ceil(u128::from(self.rate_per_s));
        u64::try_from(wait).unwrap_or(u64::MAX)
    }

    /// Takes `n` tokens that [`wait_ns`](Self::wait_ns) said are there.
    fn take(&mut self, n: u64) {
        debug_assert_eq!(self.wait_ns(n), 0);
        // credit >= 0 here (or n == 0), and n * NANO < 2^94: no overflow.
        self.credit -= i128::from(n) * NANO;
    }
}

/// A rate and burst, for [`Limiter::new`] and its setters: `(rate_per_s, burst)`.
pub type Rate = (u64, u64);

/// The limits of one flow of requests (a port's transmit side, a disk): bytes and
/// operations, each optional. A request takes its bytes and one operation from both
/// buckets, or from neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limiter {
    /// Bytes per second; `None`: bytes are not limited.
    pub bytes: Option<TokenBucket>,
    /// Operations (frames, requests) per second; `None`: not limited.
    pub ops: Option<TokenBucket>,
}

impl Limiter {
    /// A limiter that grants everything.
    pub const fn unlimited() -> Limiter {
        Limiter {
            bytes: None,
            ops: None,
        }
    }

    /// A limiter with these limits (`(rate_per_s, burst)`), its buckets full at `now_ns`.
    pub fn new(bytes: Option<Rate>, ops: Option<Rate>, now_ns: u64) -> Limiter {
        let bucket = |(rate, burst): Rate| TokenBucket::new(rate, burst, now_ns);
        Limiter {
            bytes: bytes.map(bucket),
            ops: ops.map(bucket),
        }
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.bytes.is_some() || self.ops.is_some()
    }

    /// Takes `bytes` bytes and one operation at `now_ns`, from both buckets or neither;
    /// if either is short, the nanoseconds until both will have enough (see
    /// [`TokenBucket::try_take`]).
    pub fn try_take(&mut self, bytes: u64, now_ns: u64) -> Result<(), u64> {
        match self.wait_ns(bytes, now_ns) {
            0 => {
                self.take(bytes);
                Ok(())
            }
            wait => Err(wait),
        }
    }

    /// Takes `bytes` bytes and one operation from this limiter and from `outer` (an
    /// agent's and its partition's, say) at `now_ns`: from all four buckets or from none.
    /// If any is short, the nanoseconds until all will have enough.
    pub fn try_take_with(
        &mut self,
        outer: &mut Limiter,
        bytes: u64,
        now_ns: u64,
    ) -> Result<(), u64> {
        // Unlimited on both sides (the common case for an agent's own) costs nothing.
        if !self.is_limited() && !outer.is_limited() {
            return Ok(());
        }
        match self
            .wait_ns(bytes, now_ns)
            .max(outer.wait_ns(bytes, now_ns))
        {
            0 => {
                self.take(bytes);
                outer.take(bytes);
                Ok(())
            }
            wait => Err(wait),
        }
    }

    /// Refills at `now_ns` and says how long until `bytes` bytes and one operation can be
    /// taken (0: now).
    pub fn wait_ns(&mut self, bytes: u64, now_ns: u64) -> u64 {
        let mut wait = 0;
        if let Some(b) = &mut self.bytes {
            b.refill(now_ns);
            wait = wait.max(b.wait_ns(bytes));
        }
        if let Some(o) = &mut self.ops {
            o.refill(now_ns);
            wait = wait.max(o.wait_ns(1));
        }
        wait
    }

    /// Takes what [`wait_ns`](Self::wait_ns) just said is there.
    fn take(&mut self, bytes: u64) {
        if let Some(b) = &mut self.bytes {
            b.take(bytes);
        }
        if let Some(o) = &mut self.ops {
            o.take(1);
        }
    }

    /// Sets, changes or (with `None`) removes the bytes limit at `now_ns`. A changed
    /// limit keeps its tokens (see [`TokenBucket::set`]); a new one starts full.
    pub fn set_bytes(&mut self, limit: Option<Rate>, now_ns: u64) {
        set(&mut self.bytes, limit, now_ns);
    }

    /// Sets, changes or removes the operations limit, like [`set_bytes`](Self::set_bytes).
    pub fn set_ops(&mut self, limit: Option<Rate>, now_ns: u64) {
        set(&mut self.ops, limit, now_ns);
    }
}

fn set(bucket: &mut Option<TokenBucket>, limit: Option<Rate>, now_ns: u64) {
    match (bucket.as_mut(), limit) {
        (Some(b), Some((rate, burst))) => b.set(rate, burst, now_ns),
        (None, Some((rate, burst))) => *bucket = Some(TokenBucket::new(rate, burst, now_ns)),
        (_, None) => *bucket = None,
    }
}
