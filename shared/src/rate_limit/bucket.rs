//! Token bucket arithmetic on integers, with the clock as a parameter.
//!
//! A [`Rate`] of `tokens` per `window` refills continuously. To stay exact, the level is kept
//! in *units*: one token is `unit` units and `refill` units arrive per millisecond, where
//! `refill / unit = tokens / window_ms` in lowest terms. So `10 per 1s` is 100 units per token
//! and 1 unit per ms; `3 per 1s` is 1000 units per token and 3 units per ms. No rounding ever
//! happens on refill, and every retry time is an exact ceiling.
//!
//! All products are taken in `u128` and saturate, so huge rates and idle gaps of any length
//! cannot overflow; a clock that goes backwards adds nothing and moves nothing back.

use super::table::push_field_parts;

/// A compiled rate: capacity, continuous refill, and what the IETF headers advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens per window (the `q` of `RateLimit-Policy`).
    tokens: u64,
    /// Window in seconds (the `w` of `RateLimit-Policy`).
    window_secs: u64,
    /// Largest number of tokens the bucket holds.
    capacity: u64,
    /// Units per token.
    unit: u64,
    /// Units added per millisecond.
    refill: u64,
    /// `capacity * unit`.
    capacity_units: u64,
}

/// Why a rate cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateError {
    /// `tokens` is zero.
    ZeroTokens,
    /// The window is zero.
    ZeroWindow,
    /// `burst` is below `tokens`.
    BurstBelowTokens,
    /// `capacity` in units does not fit 64 bits.
    TooLarge,
}

impl std::fmt::Display for RateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RateError::ZeroTokens => "tokens must be at least 1",
            RateError::ZeroWindow => "window must be at least 1s",
            RateError::BurstBelowTokens => "burst must be at least tokens",
            RateError::TooLarge => "burst times window in milliseconds must fit in 64 bits",
        })
    }
}

/// The stored state of one bucket: its level in units at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Level in units at `updated_ms`, at most the capacity.
    pub level: u64,
    /// Proxy time (ms since the epoch) the level was computed at.
    pub updated_ms: u64,
}

/// The outcome of asking a bucket for `cost` tokens at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Admitted: store `bucket`.
    Admit {
        /// The new state to write.
        bucket: Bucket,
        /// Whole tokens left after this request.
        remaining: u64,
    },
    /// Denied: nothing changes.
    Deny {
        /// Milliseconds from `now` until `cost` tokens are available.
        retry_after_ms: u64,
        /// Whole tokens available now.
        remaining: u64,
    },
}

impl Rate {
    /// `tokens` per `window_secs`, holding at most `burst` (default `tokens`).
    pub fn new(tokens: u64, window_secs: u64, burst: Option<u64>) -> Result<Self, RateError> {
        if tokens == 0 {
            return Err(RateError::ZeroTokens);
        }
        if window_secs == 0 {
            return Err(RateError::ZeroWindow);
        }
        let capacity = burst.unwrap_or(tokens);
        if capacity < tokens {
            return Err(RateError::BurstBelowTokens);
        }
        let window_ms = u128::from(window_secs) * 1000;
        let divisor = gcd(u128::from(tokens), window_ms);
        let unit = u64::try_from(window_ms / divisor).map_err(|_| RateError::TooLarge)?;
        let refill = u64::try_from(u128::from(tokens) / divisor).map_err(|_| RateError::TooLarge)?;
        let capacity_units = u64::try_from(u128::from(capacity) * u128::from(unit)).map_err(|_| RateError::TooLarge)?;
        Ok(Self { tokens, window_secs, capacity, unit, refill, capacity_units })
    }

    /// Tokens per window.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Window in seconds.
    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// Largest number of tokens the bucket holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Appends `tokens/window/capacity` as one field of a bucket's descriptor, so that a
    /// stored level is never read in the units of another rate.
    pub fn push_id(&self, out: &mut Vec<u8>) {
        let (mut tokens, mut window, mut capacity) = (itoa::Buffer::new(), itoa::Buffer::new(), itoa::Buffer::new());
        let parts =
            [tokens.format(self.tokens), "/", window.format(self.window_secs), "/", capacity.format(self.capacity)];
        push_field_parts(out, &parts);
    }

    /// A bucket that is full at `now`.
    pub fn full(&self, now_ms: u64) -> Bucket {
        Bucket { level: self.capacity_units, updated_ms: now_ms }
    }

    /// The bucket brought forward to `now`; a clock behind `updated_ms` changes nothing.
    pub fn refilled(&self, bucket: Bucket, now_ms: u64) -> Bucket {
        let level = bucket.level.min(self.capacity_units);
        let Some(elapsed) = now_ms.checked_sub(bucket.updated_ms) else {
            return Bucket { level, updated_ms: bucket.updated_ms };
        };
        let added = u128::from(elapsed).saturating_mul(u128::from(self.refill));
        let level = (u128::from(level).saturating_add(added)).min(u128::from(self.capacity_units));
        // `level` is at most `capacity_units`, a u64.
        Bucket { level: u64::try_from(level).unwrap_or(self.capacity_units), updated_ms: now_ms }
    }

    /// Takes `cost` tokens at `now` if they are there.
    pub fn take(&self, bucket: Bucket, now_ms: u64, cost: u64) -> Take {
        let current = self.refilled(bucket, now_ms);
        let cost_units = u128::from(cost).saturating_mul(u128::from(self.unit));
        let level = u128::from(current.level);
        if level >= cost_units {
            // level - cost_units <= level, a u64.
            let left = u64::try_from(level - cost_units).unwrap_or(0);
            let bucket = Bucket { level: left, updated_ms: current.updated_ms };
            return Take::Admit { bucket, remaining: self.whole_tokens(left) };
        }
        let wait = ceil_div(cost_units - level, u128::from(self.refill));
        let ready_at = u128::from(current.updated_ms).saturating_add(wait);
        let retry_after_ms = saturate(ready_at.saturating_sub(u128::from(now_ms)));
        Take::Deny { retry_after_ms, remaining: self.whole_tokens(current.level) }
    }

    /// Gives back `cost` tokens taken earlier (never above capacity).
    pub fn refund(&self, bucket: Bucket, now_ms: u64, cost: u64) -> Bucket {
        let current = self.refilled(bucket, now_ms);
        let cost_units = u128::from(cost).saturating_mul(u128::from(self.unit));
        let level = u128::from(current.level).saturating_add(cost_units).min(u128::from(self.capacity_units));
        Bucket { level: saturate(level), updated_ms: current.updated_ms }
    }

    /// When (ms since the epoch) the bucket is full again if nothing more is taken.
    pub fn full_at(&self, bucket: Bucket) -> u64 {
        let deficit = self.capacity_units.saturating_sub(bucket.level);
        let wait = ceil_div(u128::from(deficit), u128::from(self.refill));
        saturate(u128::from(bucket.updated_ms).saturating_add(wait))
    }

    /// Whole tokens in `level` units.
    pub fn whole_tokens(&self, level: u64) -> u64 {
        level / self.unit.max(1)
    }
}

/// Milliseconds to whole seconds, rounded up (so a client waiting that long is never early).
pub fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

fn ceil_div(numerator: u128, denominator: u128) -> u128 {
    if denominator == 0 {
        return u128::from(u64::MAX);
    }
    numerator.div_ceil(denominator)
}

fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn admit(take: Take) -> (Bucket, u64) {
        match take {
            Take::Admit { bucket, remaining } => (bucket, remaining),
            Take::Deny { .. } => panic!("expected admit, got {take:?}"),
        }
    }

    fn deny(take: Take) -> (u64, u64) {
        match take {
            Take::Deny { retry_after_ms, remaining } => (retry_after_ms, remaining),
            Take::Admit { .. } => panic!("expected deny, got {take:?}"),
        }
    }

    #[test]
    fn units_are_in_lowest_terms() {
        let rate = Rate::new(10, 1, None).unwrap();
        assert_eq!((rate.unit, rate.refill, rate.capacity_units), (100, 1, 1000));
        let rate = Rate::new(3, 1, None).unwrap();
        assert_eq!((rate.unit, rate.refill), (1000, 3));
        let rate = Rate::new(100, 3600, Some(150)).unwrap();
        assert_eq!((rate.unit, rate.refill, rate.capacity()), (36_000, 1, 150));
    }

    #[test]
    fn id_is_tokens_window_capacity() {
        for (tokens, window, burst) in
            [(10, 1, None), (100, 3600, Some(150)), (1_000_000_000, 86_400, Some(4_000_000_000))]
        {
            let rate = Rate::new(tokens, window, burst).unwrap();
            let mut id = Vec::new();
            rate.push_id(&mut id);
            let mut expected = Vec::new();
            let text = format!("{}/{}/{}", rate.tokens(), rate.window_secs(), rate.capacity());
            super::super::table::push_field(&mut expected, text.as_bytes());
            assert_eq!(id, expected);
        }
    }

    #[test]
    fn rejects_impossible_rates() {
        assert_eq!(Rate::new(0, 1, None), Err(RateError::ZeroTokens));
        assert_eq!(Rate::new(1, 0, None), Err(RateError::ZeroWindow));
        assert_eq!(Rate::new(5, 1, Some(4)), Err(RateError::BurstBelowTokens));
        // One token per ~584 million years in ms units, with a burst of u64::MAX: too large.
        assert_eq!(Rate::new(1, u64::MAX / 1000, Some(u64::MAX)), Err(RateError::TooLarge));
    }

    #[test]
    fn drains_exactly_capacity_then_denies_with_exact_retry() {
        let rate = Rate::new(100, 3600, None).unwrap();
        let mut bucket = rate.full(T0);
        for expected in (0..100).rev() {
            let (next, remaining) = admit(rate.take(bucket, T0, 1));
            assert_eq!(remaining, expected);
            bucket = next;
        }
        // One token every 36 s.
        assert_eq!(deny(rate.take(bucket, T0, 1)), (36_000, 0));
        assert_eq!(deny(rate.take(bucket, T0 + 35_999, 1)), (1, 0));
        let (_, remaining) = admit(rate.take(bucket, T0 + 36_000, 1));
        assert_eq!(remaining, 0);
    }

    #[test]
    fn capacity_one() {
        let rate = Rate::new(1, 1, None).unwrap();
        let (bucket, remaining) = admit(rate.take(rate.full(T0), T0, 1));
        assert_eq!(remaining, 0);
        assert_eq!(deny(rate.take(bucket, T0 + 999, 1)), (1, 0));
        admit(rate.take(bucket, T0 + 1000, 1));
        // A cost above capacity can never be met; the wait is still finite and exact.
        assert_eq!(deny(rate.take(rate.full(T0), T0, 2)), (1000, 1));
    }

    #[test]
    fn cost_above_one_and_fractional_refill() {
        let rate = Rate::new(3, 1, None).unwrap(); // 3 units per ms, 1000 units per token
        let (bucket, remaining) = admit(rate.take(rate.full(T0), T0, 2));
        assert_eq!(remaining, 1);
        // Needs 1000 more units for a cost of 2: ceil(1000 / 3) = 334 ms.
        assert_eq!(deny(rate.take(bucket, T0, 2)), (334, 1));
        assert_eq!(deny(rate.take(bucket, T0 + 333, 2)), (1, 1));
        let (bucket, remaining) = admit(rate.take(bucket, T0 + 334, 2));
        assert_eq!((bucket.level, remaining), (2, 0));
    }

    #[test]
    fn long_idle_gap_refills_to_capacity_only() {
        let rate = Rate::new(10, 1, Some(20)).unwrap();
        let (empty, _) = admit(rate.take(rate.full(T0), T0, 20));
        assert_eq!(rate.refilled(empty, u64::MAX), rate.full(u64::MAX));
        let (_, remaining) = admit(rate.take(empty, T0 + 10 * 365 * 86_400_000, 1));
        assert_eq!(remaining, 19);
        assert_eq!(rate.full_at(empty), T0 + 2000);
    }

    #[test]
    fn huge_rates_do_not_overflow() {
        let rate = Rate::new(u64::MAX / 1000, 1, None).unwrap();
        assert_eq!((rate.unit, rate.refill), (1000, u64::MAX / 1000));
        let (bucket, remaining) = admit(rate.take(rate.full(0), 0, u64::MAX / 1000));
        assert_eq!(remaining, 0);
        let (_, remaining) = admit(rate.take(bucket, u64::MAX, 1));
        assert_eq!(remaining, u64::MAX / 1000 - 1);
        assert_eq!(rate.full_at(Bucket { level: 0, updated_ms: u64::MAX }), u64::MAX);
        // A cost of u64::MAX tokens saturates instead of wrapping around.
        let (retry, _) =
            deny(Rate::new(1, 86_400, None).unwrap().take(Bucket { level: 0, updated_ms: 0 }, 0, u64::MAX));
        assert_eq!(retry, u64::MAX);
    }

    #[test]
    fn clock_going_backwards_adds_nothing() {
        let rate = Rate::new(10, 1, None).unwrap();
        let (bucket, _) = admit(rate.take(rate.full(T0), T0, 10));
        let behind = rate.refilled(bucket, T0 - 60_000);
        assert_eq!(behind, bucket);
        // Waiting is measured from the stored time, so the retry grows by the skew.
        assert_eq!(deny(rate.take(bucket, T0 - 5_000, 1)), (5_100, 0));
        // Back at the right time, only the real elapsed time counts.
        let (_, remaining) = admit(rate.take(bucket, T0 + 100, 1));
        assert_eq!(remaining, 0);
        // A stored level above capacity (corrupt slot) is clamped, never trusted.
        let clamped = rate.refilled(Bucket { level: u64::MAX, updated_ms: T0 }, T0);
        assert_eq!(clamped.level, 1000);
    }

    #[test]
    fn refund_restores_what_no_take_would_have_left() {
        let rate = Rate::new(10, 1, None).unwrap();
        let start = Bucket { level: 950, updated_ms: T0 };
        let (taken, _) = admit(rate.take(start, T0, 3));
        assert_eq!(rate.refund(taken, T0 + 10, 3), rate.refilled(start, T0 + 10));
        assert_eq!(rate.refund(taken, T0 + 200, 3), rate.full(T0 + 200));
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!((ceil_secs(0), ceil_secs(1), ceil_secs(1000), ceil_secs(1001)), (0, 1, 1, 2));
    }
}
