//! Several limits, one request, many workers: check all, then commit with compare-and-swap.
//!
//! Each limit's bucket lives in one group of its table (see [`super::table`]). For a request:
//!
//! 1. Read every limit's group and decide on the copy. If any limit denies, nothing is
//!    written: a request denied by one limit spends no token of another.
//! 2. Write the admitting limits one by one, each with the CAS its group was read with.
//! 3. On a CAS conflict, the limits already written stay written; the rest are read and
//!    decided again (step 1 for them only), at most `max_cas_retries` times in all.
//! 4. If a limit that admitted before now denies, or the retries run out, or the store fails,
//!    the limits already written are refunded (their tokens are given back with CAS). A refund
//!    that cannot be written loses those tokens: the error is toward limiting, never toward
//!    admitting more than the limit.
//!
//! Every admitted request therefore took its tokens from a state no other writer changed in
//! between, so the number admitted never exceeds the limit, whatever the interleaving.

use super::bucket::{Bucket, Rate, Take};
use super::store::{SetError, Store, StoreError};
use super::table::{Fingerprint, Group, Place, Slot, Table};

/// What happens to a key whose group has no slot left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Count the key against one bucket per limit (and rate) shared by all such keys.
    Overflow,
    /// Deny the request (429) until a slot frees up.
    Deny,
    /// Skip this limit for the request.
    Allow,
}

/// One limit to enforce for a request.
#[derive(Debug, Clone)]
pub struct Check<'p> {
    /// The limit's name (the policy name in headers).
    pub limit: &'p str,
    /// The limit's table.
    pub table: &'p Table,
    /// The rate that applies (chosen by tier).
    pub rate: Rate,
    /// Which of the limit's rates it is (names the overflow bucket).
    pub rate_index: usize,
    /// The request key's fingerprint.
    pub fingerprint: Fingerprint,
    /// Tokens the request costs.
    pub cost: u64,
}

/// Limits on the algorithm itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// CAS conflicts tolerated per request before giving up.
    pub max_cas_retries: u32,
    /// What a full group means.
    pub on_full: OnFull,
}

/// The state of one limit after the decision, for headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitStatus<'p> {
    /// The limit's name.
    pub limit: &'p str,
    /// Its rate.
    pub rate: Rate,
    /// Whole tokens left.
    pub remaining: u64,
    /// Milliseconds until the bucket is full again (or, for the denying limit, until the
    /// request's cost is available).
    pub reset_ms: u64,
}

/// Why a request was limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReason {
    /// The bucket has fewer tokens than the request costs.
    Exhausted,
    /// The key has no slot and the table is configured to deny.
    TableFull,
}

/// Why no decision could be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Shared data failed or a table key is missing.
    Store,
    /// CAS conflicts exceeded `max_cas_retries`.
    CasExhausted,
}

/// The decision for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every limit admitted; the tokens are spent.
    Admitted,
    /// A limit denied; no token is spent.
    Limited {
        /// Index in `statuses` of the limit that denied (the one with the longest wait).
        by: usize,
        /// Milliseconds until that limit would admit the request.
        retry_after_ms: u64,
        /// Why.
        reason: LimitReason,
    },
    /// No decision: the failure mode applies.
    Failed(Failure),
}

/// Counts for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// CAS conflicts met (each one a retry or, past the budget, the end).
    pub cas_retries: u32,
    /// Whether some key found its group full.
    pub table_full: bool,
    /// Refunds that could not be written (tokens lost, never extra admissions).
    pub refunds_lost: u32,
}

/// The outcome, the state of each limit that took part, and the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation<'p> {
    /// The decision.
    pub outcome: Outcome,
    /// One entry per limit that took part, in check order (a limit skipped because its table
    /// was full and configured to allow has none).
    pub statuses: Vec<LimitStatus<'p>>,
    /// Counts for metrics.
    pub stats: Stats,
}

/// The fingerprint of every overflow bucket (alone in its own key).
const OVERFLOW: Fingerprint = Fingerprint(0);

/// A decision on one limit from one read.
enum Step<'p> {
    /// Write `bytes` to `key` with `cas`.
    Admit {
        key: String,
        bytes: Vec<u8>,
        cas: u32,
        fingerprint: Fingerprint,
        /// The state after this request's take.
        status: LimitStatus<'p>,
        /// The state without it, reported if another limit denies.
        unspent: LimitStatus<'p>,
    },
    /// The limit denies.
    Deny { retry_after_ms: u64, reason: LimitReason, status: LimitStatus<'p> },
    /// The limit does not apply (full table, configured to allow).
    Skip,
}

/// A write that succeeded, kept for a possible refund.
struct Written<'p> {
    key: String,
    fingerprint: Fingerprint,
    status: LimitStatus<'p>,
    unspent: LimitStatus<'p>,
}

/// Enforces every check for one request at `now_ms`.
pub fn evaluate<'p, S: Store>(store: &mut S, checks: &[Check<'p>], now_ms: u64, settings: Settings) -> Evaluation<'p> {
    let mut stats = Stats::default();
    let mut written: Vec<Option<Written<'p>>> = checks.iter().map(|_| None).collect();
    let mut skipped = vec![false; checks.len()];
    loop {
        // 1. Read and decide every limit not yet written.
        let mut writes = Vec::new();
        let mut statuses: Vec<(usize, LimitStatus<'p>)> = Vec::new();
        let mut unspent: Vec<(usize, LimitStatus<'p>)> = Vec::new();
        let mut denial: Option<(usize, u64, LimitReason)> = None;
        for (index, check) in checks.iter().enumerate() {
            if let Some(done) = &written[index] {
                statuses.push((index, done.status.clone()));
                unspent.push((index, done.unspent.clone()));
                continue;
            }
            skipped[index] = false;
            match step(store, check, now_ms, settings.on_full, &mut stats) {
                Err(StoreError) => return failed(store, checks, &written, now_ms, settings, stats, Failure::Store),
                Ok(Step::Skip) => skipped[index] = true,
                Ok(Step::Deny { retry_after_ms, reason, status }) => {
                    if denial.is_none_or(|(_, longest, _)| retry_after_ms > longest) {
                        denial = Some((index, retry_after_ms, reason));
                    }
                    statuses.push((index, status.clone()));
                    unspent.push((index, status));
                }
                Ok(Step::Admit { key, bytes, cas, fingerprint, status, unspent: before }) => {
                    statuses.push((index, status.clone()));
                    unspent.push((index, before.clone()));
                    writes.push((index, key, bytes, cas, fingerprint, status, before));
                }
            }
        }
        if let Some((index, retry_after_ms, reason)) = denial {
            stats.refunds_lost += refund_all(store, checks, &written, now_ms, settings);
            // Nothing is spent: report every limit as it stands without this request.
            let by = unspent.iter().position(|(i, _)| *i == index).unwrap_or(0);
            let statuses = unspent.into_iter().map(|(_, status)| status).collect();
            return Evaluation { outcome: Outcome::Limited { by, retry_after_ms, reason }, statuses, stats };
        }
        // 2. Commit in order.
        let mut conflict = false;
        for (index, key, bytes, cas, fingerprint, status, unspent) in writes {
            match store.set(&key, &bytes, cas) {
                Ok(()) => written[index] = Some(Written { key, fingerprint, status, unspent }),
                Err(SetError::CasMismatch) => {
                    stats.cas_retries += 1;
                    conflict = true;
                    break;
                }
                Err(SetError::Failed) => {
                    return failed(store, checks, &written, now_ms, settings, stats, Failure::Store)
                }
            }
        }
        if !conflict {
            let statuses = statuses.into_iter().filter(|(i, _)| !skipped[*i]).map(|(_, status)| status).collect();
            return Evaluation { outcome: Outcome::Admitted, statuses, stats };
        }
        // 3. Retry the limits not yet written, within budget.
        if stats.cas_retries > settings.max_cas_retries {
            return failed(store, checks, &written, now_ms, settings, stats, Failure::CasExhausted);
        }
    }
}

fn failed<'p, S: Store>(
    store: &mut S,
    checks: &[Check<'p>],
    written: &[Option<Written<'p>>],
    now_ms: u64,
    settings: Settings,
    mut stats: Stats,
    failure: Failure,
) -> Evaluation<'p> {
    stats.refunds_lost += refund_all(store, checks, written, now_ms, settings);
    Evaluation { outcome: Outcome::Failed(failure), statuses: Vec::new(), stats }
}

/// Reads one limit's group and decides on it.
fn step<'p, S: Store>(
    store: &mut S,
    check: &Check<'p>,
    now_ms: u64,
    on_full: OnFull,
    stats: &mut Stats,
) -> Result<Step<'p>, StoreError> {
    let key = check.table.group_key(check.fingerprint);
    let (bytes, cas) = store.get(&key)?.ok_or(StoreError)?;
    let group = Group::decode(&bytes);
    match group.place(check.fingerprint, now_ms, check.table.ways()) {
        Place::Existing(index) => {
            let bucket = group.slots.get(index).map_or_else(|| check.rate.full(now_ms), |slot| slot.bucket);
            Ok(take(check, key, cas, group, index, check.fingerprint, bucket, now_ms))
        }
        Place::Vacant(index) => {
            Ok(take(check, key, cas, group, index, check.fingerprint, check.rate.full(now_ms), now_ms))
        }
        Place::Full { free_at_ms } => {
            stats.table_full = true;
            match on_full {
                OnFull::Allow => Ok(Step::Skip),
                OnFull::Deny => {
                    let retry_after_ms = free_at_ms.saturating_sub(now_ms).max(1);
                    let status =
                        LimitStatus { limit: check.limit, rate: check.rate, remaining: 0, reset_ms: retry_after_ms };
                    Ok(Step::Deny { retry_after_ms, reason: LimitReason::TableFull, status })
                }
                OnFull::Overflow => {
                    let key = check.table.overflow_key(check.rate_index);
                    let (bytes, cas) = store.get(&key)?.ok_or(StoreError)?;
                    let group = Group::decode(&bytes);
                    let (index, bucket) = match group.place(OVERFLOW, now_ms, 1) {
                        Place::Existing(index) => {
                            (index, group.slots.get(index).map_or_else(|| check.rate.full(now_ms), |slot| slot.bucket))
                        }
                        _ => (0, check.rate.full(now_ms)),
                    };
                    let group = Group { slots: group.slots.into_iter().take(1).collect() };
                    Ok(take(check, key, cas, group, index, OVERFLOW, bucket, now_ms))
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn take<'p>(
    check: &Check<'p>,
    key: String,
    cas: u32,
    mut group: Group,
    index: usize,
    fingerprint: Fingerprint,
    bucket: Bucket,
    now_ms: u64,
) -> Step<'p> {
    match check.rate.take(bucket, now_ms, check.cost) {
        Take::Admit { bucket: after, remaining } => {
            let full_at_ms = check.rate.full_at(after);
            group.put(index, Slot { fingerprint, bucket: after, full_at_ms });
            let reset_ms = full_at_ms.saturating_sub(now_ms);
            let status = LimitStatus { limit: check.limit, rate: check.rate, remaining, reset_ms };
            let before = check.rate.refilled(bucket, now_ms);
            let unspent = LimitStatus {
                limit: check.limit,
                rate: check.rate,
                remaining: check.rate.whole_tokens(before.level),
                reset_ms: check.rate.full_at(before).saturating_sub(now_ms),
            };
            Step::Admit { key, bytes: group.encode(), cas, fingerprint, status, unspent }
        }
        Take::Deny { retry_after_ms, remaining } => {
            let status = LimitStatus { limit: check.limit, rate: check.rate, remaining, reset_ms: retry_after_ms };
            Step::Deny { retry_after_ms, reason: LimitReason::Exhausted, status }
        }
    }
}

/// Gives back the tokens of every written limit; returns how many refunds were lost.
fn refund_all<S: Store>(
    store: &mut S,
    checks: &[Check<'_>],
    written: &[Option<Written<'_>>],
    now_ms: u64,
    settings: Settings,
) -> u32 {
    let mut lost = 0;
    for (check, done) in checks.iter().zip(written) {
        if let Some(done) = done {
            if refund(store, check, done, now_ms, settings.max_cas_retries).is_err() {
                lost += 1;
            }
        }
    }
    lost
}

fn refund<S: Store>(
    store: &mut S,
    check: &Check<'_>,
    done: &Written<'_>,
    now_ms: u64,
    max_retries: u32,
) -> Result<(), StoreError> {
    for _ in 0..=max_retries {
        let (bytes, cas) = store.get(&done.key)?.ok_or(StoreError)?;
        let mut group = Group::decode(&bytes);
        let Some(slot) = group.slots.iter_mut().find(|slot| slot.fingerprint == done.fingerprint) else {
            // The slot was reused, so the bucket had refilled: nothing is owed.
            return Ok(());
        };
        slot.bucket = check.rate.refund(slot.bucket, now_ms, check.cost);
        slot.full_at_ms = check.rate.full_at(slot.bucket);
        match store.set(&done.key, &group.encode(), cas) {
            Ok(()) => return Ok(()),
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Failed) => return Err(StoreError),
        }
    }
    Err(StoreError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::store::{create_missing, MemoryStore, Versioned};
    use crate::rate_limit::table::KeyHasher;
    use std::cell::RefCell;

    const NOW: u64 = 1_700_000_000_000;

    fn table(name: &str, groups: u32, ways: u32) -> Table {
        Table::new("test", name, groups, ways)
    }

    fn store_for(tables: &[&Table]) -> MemoryStore {
        let mut store = MemoryStore::new();
        for table in tables {
            create_missing(&mut store, table.all_keys(1)).unwrap();
        }
        store
    }

    fn check<'p>(table: &'p Table, rate: Rate, key: &str, cost: u64) -> Check<'p> {
        let fingerprint = KeyHasher::new("test", "seed").fingerprint(key.as_bytes());
        Check { limit: "l", table, rate, rate_index: 0, fingerprint, cost }
    }

    fn settings(on_full: OnFull) -> Settings {
        Settings { max_cas_retries: 8, on_full }
    }

    #[test]
    fn admits_exactly_the_capacity_then_limits() {
        let t = table("per-min", 16, 4);
        let mut store = store_for(&[&t]);
        let rate = Rate::new(5, 60, None).unwrap();
        let checks = [check(&t, rate, "alice", 1)];
        for remaining in (0..5).rev() {
            let eval = evaluate(&mut store, &checks, NOW, settings(OnFull::Deny));
            assert_eq!(eval.outcome, Outcome::Admitted);
            assert_eq!(eval.statuses[0].remaining, remaining);
        }
        let eval = evaluate(&mut store, &checks, NOW, settings(OnFull::Deny));
        assert_eq!(eval.outcome, Outcome::Limited { by: 0, retry_after_ms: 12_000, reason: LimitReason::Exhausted });
        // Another key has its own bucket.
        let other = [check(&t, rate, "bob", 1)];
        assert_eq!(evaluate(&mut store, &other, NOW, settings(OnFull::Deny)).outcome, Outcome::Admitted);
    }

    #[test]
    fn a_denying_limit_spends_no_token_of_another() {
        let (second, hour) = (table("second", 4, 4), table("hour", 4, 4));
        let mut store = store_for(&[&second, &hour]);
        let per_second = Rate::new(100, 1, None).unwrap();
        let per_hour = Rate::new(2, 3600, None).unwrap();
        let checks = [check(&second, per_second, "k", 1), check(&hour, per_hour, "k", 1)];
        for _ in 0..2 {
            assert_eq!(evaluate(&mut store, &checks, NOW, settings(OnFull::Deny)).outcome, Outcome::Admitted);
        }
        for _ in 0..5 {
            let eval = evaluate(&mut store, &checks, NOW, settings(OnFull::Deny));
            assert!(matches!(eval.outcome, Outcome::Limited { by: 1, .. }), "{eval:?}");
            assert_eq!(eval.statuses[0].remaining, 98, "the per-second bucket was not charged");
        }
    }

    #[test]
    fn limited_reports_the_longest_wait() {
        let (a, b) = (table("a", 4, 4), table("b", 4, 4));
        let mut store = store_for(&[&a, &b]);
        let fast = Rate::new(1, 1, None).unwrap();
        let slow = Rate::new(1, 60, None).unwrap();
        let checks = [check(&a, fast, "k", 1), check(&b, slow, "k", 1)];
        evaluate(&mut store, &checks, NOW, settings(OnFull::Deny));
        let eval = evaluate(&mut store, &checks, NOW + 10, settings(OnFull::Deny));
        assert_eq!(eval.outcome, Outcome::Limited { by: 1, retry_after_ms: 59_990, reason: LimitReason::Exhausted });
    }

    /// Keys that all land in group 0 of a one-group table.
    fn crowd(t: &Table, rate: Rate, n: usize) -> Vec<Check<'_>> {
        (0..n).map(|i| check(t, rate, &format!("client-{i}"), 1)).collect()
    }

    #[test]
    fn full_table_denies_allows_or_overflows_as_configured() {
        let t = table("tiny", 1, 2);
        let rate = Rate::new(1, 60, None).unwrap();
        let keys = crowd(&t, rate, 4);
        for on_full in [OnFull::Deny, OnFull::Allow, OnFull::Overflow] {
            let mut store = store_for(&[&t]);
            for check in &keys[..2] {
                let eval = evaluate(&mut store, std::slice::from_ref(check), NOW, settings(on_full));
                assert_eq!(eval.outcome, Outcome::Admitted);
                assert!(!eval.stats.table_full);
            }
            let third = evaluate(&mut store, &keys[2..3], NOW + 1000, settings(on_full));
            assert!(third.stats.table_full);
            let fourth = evaluate(&mut store, &keys[3..4], NOW + 1000, settings(on_full));
            match on_full {
                OnFull::Deny => {
                    // The first slot is full again 60 s after its last take.
                    let limited = Outcome::Limited { by: 0, retry_after_ms: 59_000, reason: LimitReason::TableFull };
                    assert_eq!(third.outcome, limited);
                    assert_eq!(fourth.outcome, limited);
                }
                OnFull::Allow => {
                    assert_eq!((third.outcome, fourth.outcome), (Outcome::Admitted, Outcome::Admitted));
                    assert!(third.statuses.is_empty());
                }
                OnFull::Overflow => {
                    // Both newcomers share the one overflow bucket of capacity 1.
                    assert_eq!(third.outcome, Outcome::Admitted);
                    assert!(matches!(fourth.outcome, Outcome::Limited { reason: LimitReason::Exhausted, .. }));
                }
            }
            // Keys that hold a slot are unaffected by the full table.
            let again = evaluate(&mut store, &keys[..1], NOW + 1000, settings(on_full));
            assert!(matches!(again.outcome, Outcome::Limited { reason: LimitReason::Exhausted, .. }));
            assert!(!again.stats.table_full);
        }
    }

    #[test]
    fn stale_slots_are_reused_and_memory_stays_bounded() {
        let t = table("reuse", 2, 2);
        let mut store = store_for(&[&t]);
        let keys_before = store.len();
        let rate = Rate::new(1, 1, None).unwrap();
        // 1000 distinct keys, one per second: each slot is stale again a second later.
        for i in 0..1000u64 {
            let key = format!("ip-{i}");
            let eval = evaluate(&mut store, &[check(&t, rate, &key, 1)], NOW + i * 1000, settings(OnFull::Deny));
            assert_eq!(eval.outcome, Outcome::Admitted, "key {i}");
            assert!(!eval.stats.table_full);
        }
        assert_eq!(store.len(), keys_before);
        for key in t.all_keys(1) {
            let group = Group::decode(store.value(&key).unwrap());
            assert!(group.slots.len() <= 2);
        }
    }

    #[test]
    fn missing_keys_and_store_failures_fail() {
        let t = table("x", 1, 1);
        let rate = Rate::new(1, 1, None).unwrap();
        let checks = [check(&t, rate, "k", 1)];
        let mut empty = MemoryStore::new();
        assert_eq!(evaluate(&mut empty, &checks, NOW, settings(OnFull::Deny)).outcome, Outcome::Failed(Failure::Store));
        assert!(empty.is_empty(), "the request path never creates keys");
        let mut store = store_for(&[&t]);
        store.fail_sets = true;
        assert_eq!(evaluate(&mut store, &checks, NOW, settings(OnFull::Deny)).outcome, Outcome::Failed(Failure::Store));
    }

    /// A store shared by two workers: before some writes of worker A, worker B runs whole
    /// requests on the same data, which makes A's CAS fail exactly as a race would.
    struct Racing<'a> {
        shared: &'a RefCell<MemoryStore>,
        rival: Box<dyn FnMut() + 'a>,
        race_before_writes: Vec<bool>,
        writes: usize,
    }

    impl Store for Racing<'_> {
        fn get(&mut self, key: &str) -> Result<Option<Versioned>, StoreError> {
            self.shared.borrow_mut().get(key)
        }

        fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
            let race = self.race_before_writes.get(self.writes).copied().unwrap_or(false);
            self.writes += 1;
            if race {
                (self.rival)();
            }
            self.shared.borrow_mut().set(key, value, cas)
        }
    }

    struct Shared<'a>(&'a RefCell<MemoryStore>);

    impl Store for Shared<'_> {
        fn get(&mut self, key: &str) -> Result<Option<Versioned>, StoreError> {
            self.0.borrow_mut().get(key)
        }
        fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
            self.0.borrow_mut().set(key, value, cas)
        }
    }

    #[test]
    fn interleaved_workers_never_admit_more_than_the_limit() {
        // Every pattern of races over A's first six writes, with two limits per request.
        let (second, hour) = (table("s", 1, 4), table("h", 1, 4));
        let per_second = Rate::new(1000, 1, None).unwrap();
        let per_hour = Rate::new(7, 3600, None).unwrap();
        let mut conflicts = 0;
        for pattern in 0u32..64 {
            let shared = RefCell::new(store_for(&[&second, &hour]));
            let admitted_b = RefCell::new(0u32);
            let checks = [check(&second, per_second, "k", 1), check(&hour, per_hour, "k", 1)];
            let rival_checks = checks.clone();
            let rival = || {
                let eval = evaluate(&mut Shared(&shared), &rival_checks, NOW, settings(OnFull::Deny));
                if eval.outcome == Outcome::Admitted {
                    *admitted_b.borrow_mut() += 1;
                }
            };
            let mut a = Racing {
                shared: &shared,
                rival: Box::new(rival),
                race_before_writes: (0..6).map(|bit| pattern >> bit & 1 == 1).collect(),
                writes: 0,
            };
            let mut admitted_a = 0;
            for _ in 0..10 {
                let eval = evaluate(&mut a, &checks, NOW, Settings { max_cas_retries: 64, on_full: OnFull::Deny });
                conflicts += eval.stats.cas_retries;
                match eval.outcome {
                    Outcome::Admitted => admitted_a += 1,
                    Outcome::Limited { .. } => {}
                    Outcome::Failed(failure) => panic!("pattern {pattern}: {failure:?}"),
                }
            }
            drop(a);
            let total = admitted_a + *admitted_b.borrow();
            assert_eq!(total, 7, "pattern {pattern:06b}: A {admitted_a} + B {}", admitted_b.borrow());
            // The per-second limit was charged exactly once per admitted request: 1000 - 7 left.
            let eval = evaluate(&mut Shared(&shared), &checks[..1], NOW, settings(OnFull::Deny));
            assert_eq!(eval.statuses[0].remaining, 1000 - 7 - 1, "pattern {pattern:06b}");
        }
        assert!(conflicts > 64, "the races must really make CAS fail: {conflicts}");
    }

    #[test]
    fn conflicts_past_the_budget_fail_and_refund() {
        let (second, hour) = (table("s", 1, 4), table("h", 1, 4));
        let per_second = Rate::new(10, 1, None).unwrap();
        let per_hour = Rate::new(10, 3600, None).unwrap();
        let shared = RefCell::new(store_for(&[&second, &hour]));
        let checks = [check(&second, per_second, "k", 1), check(&hour, per_hour, "k", 1)];
        // A rival touches the hour group before every one of A's writes to it (after the
        // per-second write succeeded), so A's second write always conflicts.
        let hour_key = hour.group_key(checks[1].fingerprint);
        let poke = || {
            let mut store = shared.borrow_mut();
            let (value, _) = store.get(&hour_key).unwrap().unwrap();
            store.set(&hour_key, &value, 0).unwrap();
        };
        let mut a = Racing { shared: &shared, rival: Box::new(poke), race_before_writes: vec![true; 10], writes: 0 };
        let eval = evaluate(&mut a, &checks, NOW, Settings { max_cas_retries: 3, on_full: OnFull::Deny });
        assert_eq!(eval.outcome, Outcome::Failed(Failure::CasExhausted));
        assert_eq!(eval.stats.cas_retries, 4);
        assert_eq!(eval.stats.refunds_lost, 0);
        drop(a);
        // The per-second tokens spent before the failure were given back.
        let eval = evaluate(&mut Shared(&shared), &checks, NOW, settings(OnFull::Deny));
        assert_eq!(eval.outcome, Outcome::Admitted);
        assert_eq!((eval.statuses[0].remaining, eval.statuses[1].remaining), (9, 9));
    }
}
