//! Remote JWKS: when to fetch, who fetches, and what to keep, as pure functions of `now`
//! and the state stored in shared data.
//!
//! ```json
//! {"remote_jwks": {"cluster": "auth", "path": "/.well-known/jwks.json",
//!   "refresh_interval_seconds": 600, "jitter_seconds": 30, "wait_for_keys_ms": 3000}}
//! ```
//!
//! One copy per proxy: every VM's root context asks [`RemoteJwks::due`] on each tick; the one
//! that wins the [`Lease`] (a CAS write in shared data) fetches, then writes a [`JwksRecord`]
//! that every worker reads. A failed fetch keeps the last good document (stale-if-error) and is
//! retried after `retry_seconds`. A token with an unknown `kid` leaves a request time in shared
//! data; it triggers one refetch, at most every `kid_miss_min_interval_seconds`. Requests that
//! arrive before any keys wait up to `wait_for_keys_ms`, then get a 503.

use serde::{Deserialize, Serialize};

use super::config::RemoteJwksConfig;
use crate::config::ConfigError;

/// A compiled remote JWKS source (all durations in milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// Envoy cluster.
    pub cluster: String,
    /// `:path`.
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// Callout timeout.
    pub timeout_ms: u64,
    /// Refresh period.
    pub refresh_ms: u64,
    /// Maximum jitter added to a refresh.
    pub jitter_ms: u64,
    /// Delay before retrying a failure.
    pub retry_ms: u64,
    /// Least time between kid-miss refetches.
    pub kid_miss_interval_ms: u64,
    /// How long a request waits for the first keys.
    pub wait_for_keys_ms: u64,
}

/// Why a fetch is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchReason {
    /// No keys yet.
    Initial,
    /// The refresh period passed.
    Refresh,
    /// The last fetch failed.
    Retry,
    /// A token named an unknown `kid`.
    KidMiss,
}

/// What shared data holds for one provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwksRecord {
    /// When the last good document arrived (0: never).
    pub fetched_at_ms: u64,
    /// When the last fetch started (0: never).
    pub last_attempt_ms: u64,
    /// When the last kid-miss refetch started.
    pub last_kid_miss_ms: u64,
    /// Consecutive failures.
    pub failures: u32,
    /// The last good JWK Set.
    pub jwks: Option<String>,
}

/// Who may fetch, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The VM holding it (a random id each VM picks at start).
    pub holder: u64,
    /// When it lapses.
    pub until_ms: u64,
}

/// Shared-data key of a provider's record.
pub fn record_key(provider: &str) -> String {
    format!("palisade.jwt.jwks.{provider}")
}

/// Shared-data key of a provider's fetch lease.
pub fn lease_key(provider: &str) -> String {
    format!("palisade.jwt.lease.{provider}")
}

/// Shared-data key where a worker asks for a kid-miss refetch.
pub fn kid_miss_key(provider: &str) -> String {
    format!("palisade.jwt.kidmiss.{provider}")
}

/// Shared-data key written right after a record with a new document: eight bytes (the fetch
/// time) whose CAS moves with every new document. Workers read this small key on each request
/// and re-read the record only when its CAS moved, so new keys are seen at once without
/// copying the whole JWKS per request.
pub fn keys_version_key(provider: &str) -> String {
    format!("palisade.jwt.jwksver.{provider}")
}

impl RemoteJwks {
    /// Compiles the config; `field` names it in errors.
    pub fn compile(config: &RemoteJwksConfig, field: &str) -> Result<Self, ConfigError> {
        if config.cluster.is_empty() {
            return Err(ConfigError::new(format!("{field}.cluster"), "must not be empty"));
        }
        if !config.path.starts_with('/') {
            return Err(ConfigError::new(format!("{field}.path"), "must start with /"));
        }
        if config.refresh_interval_seconds == 0 {
            return Err(ConfigError::new(format!("{field}.refresh_interval_seconds"), "must be positive"));
        }
        if config.timeout_ms == 0 || config.timeout_ms > 60_000 {
            return Err(ConfigError::new(format!("{field}.timeout_ms"), "must be between 1 and 60000"));
        }
        if config.retry_seconds == 0 {
            return Err(ConfigError::new(format!("{field}.retry_seconds"), "must be positive"));
        }
        Ok(Self {
            cluster: config.cluster.clone(),
            path: config.path.clone(),
            authority: config.authority.clone().unwrap_or_else(|| config.cluster.clone()),
            timeout_ms: config.timeout_ms,
            refresh_ms: config.refresh_interval_seconds.saturating_mul(1000),
            jitter_ms: config.jitter_seconds.saturating_mul(1000),
            retry_ms: config.retry_seconds.saturating_mul(1000),
            kid_miss_interval_ms: config.kid_miss_min_interval_seconds.saturating_mul(1000),
            wait_for_keys_ms: config.wait_for_keys_ms,
        })
    }

    /// Whether a fetch is due at `now`. `jitter` is a random draw in `0..=jitter_ms` the caller
    /// keeps per provider; `kid_miss_at` is the latest kid-miss request.
    pub fn due(
        &self,
        now: u64,
        record: Option<&JwksRecord>,
        kid_miss_at: Option<u64>,
        jitter: u64,
    ) -> Option<FetchReason> {
        let Some(record) = record else { return Some(FetchReason::Initial) };
        let retry_ready = now >= record.last_attempt_ms.saturating_add(self.retry_ms);
        if record.jwks.is_none() {
            return (record.last_attempt_ms == 0 || retry_ready).then_some(FetchReason::Initial);
        }
        let kid_miss_pending = kid_miss_at.is_some_and(|at| at > record.last_attempt_ms);
        let kid_miss_allowed =
            record.last_kid_miss_ms == 0 || now >= record.last_kid_miss_ms.saturating_add(self.kid_miss_interval_ms);
        if kid_miss_pending && kid_miss_allowed {
            return Some(FetchReason::KidMiss);
        }
        if record.failures > 0 {
            return retry_ready.then_some(FetchReason::Retry);
        }
        let refresh_at =
            record.fetched_at_ms.saturating_add(self.refresh_ms).saturating_add(jitter.min(self.jitter_ms));
        (now >= refresh_at).then_some(FetchReason::Refresh)
    }

    /// The lease to write when taking the fetch: it lapses after the callout timeout and a margin.
    pub fn lease(&self, now: u64, holder: u64) -> Lease {
        Lease { holder, until_ms: now.saturating_add(self.timeout_ms).saturating_add(1000) }
    }

    /// Whether a request that started waiting at `since` has waited too long.
    pub fn wait_expired(&self, since: u64, now: u64) -> bool {
        now >= since.saturating_add(self.wait_for_keys_ms)
    }
}

impl Lease {
    /// Whether `holder` may take the fetch at `now`, given the lease currently stored.
    pub fn may_take(current: Option<&Lease>, holder: u64, now: u64) -> bool {
        current.is_none_or(|lease| lease.holder == holder || now >= lease.until_ms)
    }

    /// Stored form: 16 bytes, holder then until, big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.holder.to_be_bytes().to_vec();
        out.extend_from_slice(&self.until_ms.to_be_bytes());
        out
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (holder, rest) = bytes.split_first_chunk::<8>()?;
        let (until, rest) = rest.split_first_chunk::<8>()?;
        rest.is_empty().then(|| Lease { holder: u64::from_be_bytes(*holder), until_ms: u64::from_be_bytes(*until) })
    }
}

impl JwksRecord {
    /// The record after a fetch that started at `started` for `reason` ended at `now`: with the
    /// new document on success (`Some`, already checked to parse), or keeping the old one.
    pub fn complete(mut self, reason: FetchReason, started: u64, now: u64, document: Option<String>) -> Self {
        self.last_attempt_ms = started;
        if reason == FetchReason::KidMiss {
            self.last_kid_miss_ms = started;
        }
        match document {
            Some(jwks) => {
                self.fetched_at_ms = now;
                self.failures = 0;
                self.jwks = Some(jwks);
            }
            None => self.failures = self.failures.saturating_add(1),
        }
        self
    }

    /// Stored form (JSON).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the stored form.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> RemoteJwks {
        let config: RemoteJwksConfig = serde_json::from_str(
            r#"{"cluster":"auth","path":"/jwks","refresh_interval_seconds":600,"jitter_seconds":30,
                "retry_seconds":10,"kid_miss_min_interval_seconds":30,"wait_for_keys_ms":3000}"#,
        )
        .unwrap();
        RemoteJwks::compile(&config, "providers.a.remote_jwks").unwrap()
    }

    fn fetched(at: u64) -> JwksRecord {
        JwksRecord::default().complete(FetchReason::Initial, at, at, Some("{}".into()))
    }

    #[test]
    fn first_fetch_then_retry_after_failure() {
        let r = remote();
        assert_eq!(r.due(0, None, None, 0), Some(FetchReason::Initial));
        let failed = JwksRecord::default().complete(FetchReason::Initial, 1_000, 1_500, None);
        assert_eq!(failed.failures, 1);
        assert_eq!(r.due(10_999, Some(&failed), None, 0), None);
        assert_eq!(r.due(11_000, Some(&failed), None, 0), Some(FetchReason::Initial));
    }

    #[test]
    fn refresh_after_interval_plus_jitter() {
        let r = remote();
        let record = fetched(1_000);
        assert_eq!(r.due(600_999, Some(&record), None, 0), None);
        assert_eq!(r.due(601_000, Some(&record), None, 0), Some(FetchReason::Refresh));
        assert_eq!(r.due(601_000, Some(&record), None, 5_000), None);
        assert_eq!(r.due(606_000, Some(&record), None, 5_000), Some(FetchReason::Refresh));
        assert_eq!(r.due(631_000, Some(&record), None, 99_000), Some(FetchReason::Refresh), "jitter is capped");
    }

    #[test]
    fn stale_if_error_keeps_the_document_and_retries() {
        let r = remote();
        let record = fetched(1_000).complete(FetchReason::Refresh, 601_000, 601_100, None);
        assert_eq!(record.jwks.as_deref(), Some("{}"));
        assert_eq!(record.failures, 1);
        assert_eq!(r.due(610_999, Some(&record), None, 0), None);
        assert_eq!(r.due(611_000, Some(&record), None, 0), Some(FetchReason::Retry));
        let recovered = record.complete(FetchReason::Retry, 611_000, 611_050, Some("{\"keys\":[]}".into()));
        assert_eq!((recovered.failures, recovered.fetched_at_ms), (0, 611_050));
    }

    #[test]
    fn kid_miss_refetches_once_and_is_rate_limited() {
        let r = remote();
        let record = fetched(1_000);
        assert_eq!(r.due(2_000, Some(&record), Some(500), 0), None, "request older than the last fetch");
        assert_eq!(r.due(2_000, Some(&record), Some(1_500), 0), Some(FetchReason::KidMiss));
        let after = record.complete(FetchReason::KidMiss, 2_000, 2_100, Some("{}".into()));
        assert_eq!(r.due(2_200, Some(&after), Some(1_500), 0), None, "served by that fetch");
        assert_eq!(r.due(10_000, Some(&after), Some(9_000), 0), None, "rate-limited");
        assert_eq!(r.due(32_000, Some(&after), Some(9_000), 0), Some(FetchReason::KidMiss));
    }

    #[test]
    fn lease_is_single_flight_until_it_lapses() {
        let r = remote();
        let lease = r.lease(1_000, 7);
        assert_eq!(Lease::decode(&lease.encode()), Some(lease));
        assert_eq!(Lease::decode(&[0; 15]), None);
        assert!(Lease::may_take(None, 9, 0));
        assert!(!Lease::may_take(Some(&lease), 9, 6_999));
        assert!(Lease::may_take(Some(&lease), 7, 2_000));
        assert!(Lease::may_take(Some(&lease), 9, 7_000));
    }

    #[test]
    fn waiting_requests_expire_and_records_round_trip() {
        let r = remote();
        assert!(!r.wait_expired(1_000, 3_999));
        assert!(r.wait_expired(1_000, 4_000));
        let record = fetched(5);
        assert_eq!(JwksRecord::decode(&record.encode()), Some(record));
        assert_eq!(JwksRecord::decode(b"junk"), None);
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = |json: &str| {
            let config: RemoteJwksConfig = serde_json::from_str(json).unwrap();
            RemoteJwks::compile(&config, "r").unwrap_err().to_string()
        };
        assert_eq!(bad(r#"{"cluster":"","path":"/j"}"#), "r.cluster: must not be empty");
        assert_eq!(bad(r#"{"cluster":"a","path":"j"}"#), "r.path: must start with /");
        assert_eq!(
            bad(r#"{"cluster":"a","path":"/j","refresh_interval_seconds":0}"#),
            "r.refresh_interval_seconds: must be positive"
        );
        assert_eq!(bad(r#"{"cluster":"a","path":"/j","timeout_ms":0}"#), "r.timeout_ms: must be between 1 and 60000");
    }
}
