//! Key usage limits: how many AES-GCM encryptions one key may perform.
//!
//! NIST SP 800-38D §8.3: with random 96-bit nonces, one key must not be used for more than 2^32
//! encryptions. The filter counts encryptions per key in proxy-wasm shared data (per Envoy
//! process: replicas and restarts each count on their own, hence defaults well below 2^32);
//! the core decides. Past `warn_after` every request counts a warning and a log line prompts
//! rotation (at the crossing, then every 2^20 encryptions); past `hard_stop` encryption fails
//! closed with 503 until a new primary key is configured. AES-SIV uses no nonce and is not
//! counted against the limit.

/// NIST SP 800-38D limit for random 96-bit nonces.
pub const NIST_RANDOM_NONCE_LIMIT: u64 = 1 << 32;
/// Default warning threshold (2^30).
pub const DEFAULT_WARN_AFTER: u64 = 1 << 30;
/// Default hard stop (2^31).
pub const DEFAULT_HARD_STOP: u64 = 1 << 31;
/// After the warning threshold, log again every this many encryptions.
const LOG_EVERY: u64 = 1 << 20;

/// Compiled thresholds, `warn_after < hard_stop <= 2^32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageLimits {
    pub(crate) warn_after: u64,
    pub(crate) hard_stop: u64,
}

impl Default for UsageLimits {
    fn default() -> Self {
        Self { warn_after: DEFAULT_WARN_AFTER, hard_stop: DEFAULT_HARD_STOP }
    }
}

/// Where the per-key counters live (shared data in the filter, a map in tests).
pub trait UsageLedger {
    /// Adds `count` encryptions to the counter `key` unless the total would pass `hard_stop`;
    /// returns the total before.
    fn reserve(&mut self, key: &str, count: u64, hard_stop: u64) -> Result<u64, LedgerError>;
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerError {
    /// The key has reached its hard stop; `used` encryptions were counted.
    Exhausted {
        /// The counter's value.
        used: u64,
    },
    /// The counter could not be read or written (fail closed).
    Unavailable,
}

/// The state of a key after a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// The counter's name (`palisade.field_encryption.usage.<id>.<fingerprint>`).
    pub counter: String,
    /// Encryptions counted, this request included.
    pub used: u64,
    /// Past the warning threshold.
    pub warning: bool,
    /// Write a log line now (the threshold or a further 2^20 was just crossed).
    pub log: bool,
}

impl UsageLimits {
    /// Assesses a reservation of `added` that found `before`.
    pub fn assess(&self, counter: String, before: u64, added: u64) -> UsageReport {
        let used = before.saturating_add(added);
        let warning = used > self.warn_after;
        let crossed = before <= self.warn_after || before / LOG_EVERY != used / LOG_EVERY;
        UsageReport { counter, used, warning, log: warning && crossed }
    }

    /// The hard stop.
    pub fn hard_stop(&self) -> u64 {
        self.hard_stop
    }
}

/// Shared-data key of a key's counter.
pub fn counter_name(key_id: &str, fingerprint: &str) -> String {
    format!("palisade.field_encryption.usage.{key_id}.{fingerprint}")
}

/// An in-memory ledger, for tests and for hosts without shared data.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    /// Counters by name.
    pub counters: std::collections::BTreeMap<String, u64>,
}

impl UsageLedger for MemoryLedger {
    fn reserve(&mut self, key: &str, count: u64, hard_stop: u64) -> Result<u64, LedgerError> {
        let used = self.counters.entry(key.to_string()).or_default();
        let before = *used;
        if before.saturating_add(count) > hard_stop {
            return Err(LedgerError::Exhausted { used: before });
        }
        *used = before + count;
        Ok(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_at_the_threshold_and_logs_on_crossings() {
        let limits = UsageLimits { warn_after: 10, hard_stop: 20 };
        let report = |before, added| {
            let r = limits.assess("c".into(), before, added);
            (r.used, r.warning, r.log)
        };
        assert_eq!(report(0, 10), (10, false, false));
        assert_eq!(report(10, 1), (11, true, true));
        assert_eq!(report(11, 1), (12, true, false));
        let big = UsageLimits { warn_after: 5, hard_stop: 1 << 32 };
        assert!(big.assess("c".into(), LOG_EVERY - 1, 1).log);
        assert!(!big.assess("c".into(), LOG_EVERY, 1).log);
    }

    #[test]
    fn memory_ledger_stops_at_the_hard_stop() {
        let mut ledger = MemoryLedger::default();
        assert_eq!(ledger.reserve("k", 3, 4), Ok(0));
        assert_eq!(ledger.reserve("k", 1, 4), Ok(3));
        assert_eq!(ledger.reserve("k", 1, 4), Err(LedgerError::Exhausted { used: 4 }));
        assert_eq!(ledger.reserve("other", 4, 4), Ok(0));
        assert_eq!(counter_name("k1", "00ff"), "palisade.field_encryption.usage.k1.00ff");
    }
}
