//! State Envoy keeps per process and shares between VMs: shared data (§2.9), shared queues
//! (§2.10) and stats. One [`SharedState`] lives in each [`super::Host`], never in a global.

use std::collections::{BTreeMap, VecDeque};

use super::abi::Status;

/// Shared data keyed by (vm_id, key) with Envoy's CAS rules.
#[derive(Debug, Default)]
pub struct SharedData {
    entries: BTreeMap<(String, Vec<u8>), (Vec<u8>, u32)>,
    next_cas: u32,
}

impl SharedData {
    /// The value and its CAS, or `None`.
    pub fn get(&self, vm_id: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.entries.get(&(vm_id.to_string(), key.to_vec())).cloned()
    }

    /// `cas == 0` sets unconditionally; a present key with another CAS is a mismatch; a missing
    /// key is created whatever the CAS. The counter starts at 1, increments per set, skips 0.
    pub fn set(&mut self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Status {
        let slot = (vm_id.to_string(), key.to_vec());
        if let Some((_, stored)) = self.entries.get(&slot) {
            if cas != 0 && cas != *stored {
                return Status::CasMismatch;
            }
        }
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        self.entries.insert(slot, (value.to_vec(), self.next_cas));
        Status::Ok
    }
}

/// One shared queue.
#[derive(Debug)]
struct Queue {
    vm_id: String,
    name: String,
    /// The plugin whose root context gets `proxy_on_queue_ready`.
    owner: u64,
    items: VecDeque<Vec<u8>>,
}

/// Shared queues: tokens from 1, one per (vm_id, name).
#[derive(Debug, Default)]
pub struct SharedQueues {
    queues: BTreeMap<u32, Queue>,
    /// (owner plugin, token) notifications not yet delivered.
    pending: Vec<(u64, u32)>,
}

impl SharedQueues {
    /// Registers (or re-registers) a queue owned by `owner`'s root context.
    pub fn register(&mut self, vm_id: &str, name: &str, owner: u64) -> u32 {
        if let Some((token, queue)) = self.queues.iter_mut().find(|(_, q)| q.vm_id == vm_id && q.name == name) {
            queue.owner = owner;
            return *token;
        }
        let token = self.queues.keys().next_back().map_or(1, |t| t + 1);
        let queue = Queue { vm_id: vm_id.into(), name: name.into(), owner, items: VecDeque::new() };
        self.queues.insert(token, queue);
        token
    }

    /// The token of (vm_id, name).
    pub fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queues.iter().find(|(_, q)| q.vm_id == vm_id && q.name == name).map(|(t, _)| *t)
    }

    /// Appends an item and schedules `on_queue_ready` for the owner.
    pub fn enqueue(&mut self, token: u32, value: &[u8]) -> Status {
        match self.queues.get_mut(&token) {
            Some(queue) => {
                queue.items.push_back(value.to_vec());
                self.pending.push((queue.owner, token));
                Status::Ok
            }
            None => Status::NotFound,
        }
    }

    /// The oldest item: `Err(NotFound)` for an unknown token, `Err(Empty)` when drained.
    pub fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, Status> {
        let queue = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }

    /// Takes the notifications due to `owner`.
    pub fn take_pending(&mut self, owner: u64) -> Vec<u32> {
        let (mine, rest): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|(o, _)| *o == owner);
        self.pending = rest;
        mine.into_iter().map(|(_, token)| token).collect()
    }
}

/// A metric's kind (`MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Stats by name, global across VMs as in Envoy.
#[derive(Debug, Default)]
pub struct Metrics {
    by_id: BTreeMap<u32, (String, MetricKind)>,
    values: BTreeMap<String, i64>,
    histograms: BTreeMap<String, Vec<u64>>,
}

impl Metrics {
    /// Defines (or finds) a metric and returns its id.
    pub fn define(&mut self, kind: MetricKind, name: &str) -> u32 {
        if let Some((id, _)) = self.by_id.iter().find(|(_, (n, k))| n == name && *k == kind) {
            return *id;
        }
        let id = self.by_id.keys().next_back().map_or(1, |id| id + 1);
        self.by_id.insert(id, (name.to_string(), kind));
        if kind != MetricKind::Histogram {
            self.values.entry(name.to_string()).or_insert(0);
        } else {
            self.histograms.entry(name.to_string()).or_default();
        }
        id
    }

    /// The current value of a counter or gauge.
    pub fn get(&self, id: u32) -> Result<u64, Status> {
        let (name, kind) = self.by_id.get(&id).ok_or(Status::NotFound)?;
        if *kind == MetricKind::Histogram {
            return Err(Status::BadArgument);
        }
        Ok(self.values.get(name).copied().unwrap_or(0) as u64)
    }

    /// `proxy_record_metric`: counters add, gauges set, histograms record.
    pub fn record(&mut self, id: u32, value: u64) -> Status {
        let Some((name, kind)) = self.by_id.get(&id).cloned() else { return Status::NotFound };
        match kind {
            MetricKind::Counter => *self.values.entry(name).or_insert(0) += value as i64,
            MetricKind::Gauge => {
                self.values.insert(name, value as i64);
            }
            MetricKind::Histogram => self.histograms.entry(name).or_default().push(value),
        }
        Status::Ok
    }

    /// `proxy_increment_metric`: counters only grow; histograms cannot be incremented.
    pub fn increment(&mut self, id: u32, offset: i64) -> Status {
        let Some((name, kind)) = self.by_id.get(&id).cloned() else { return Status::NotFound };
        match kind {
            MetricKind::Counter if offset < 0 => Status::BadArgument,
            MetricKind::Counter | MetricKind::Gauge => {
                *self.values.entry(name).or_insert(0) += offset;
                Status::Ok
            }
            MetricKind::Histogram => Status::BadArgument,
        }
    }

    /// A counter's or gauge's value by name.
    pub fn value(&self, name: &str) -> Option<i64> {
        self.values.get(name).copied()
    }

    /// The values recorded in a histogram.
    pub fn histogram(&self, name: &str) -> Option<&[u64]> {
        self.histograms.get(name).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_sequence_matches_envoy() {
        let mut data = SharedData::default();
        assert_eq!(data.set("vm", b"k", b"v1", 0), Status::Ok);
        assert_eq!(data.get("vm", b"k"), Some((b"v1".to_vec(), 1)));
        assert_eq!(data.set("vm", b"k", b"v2", 1001), Status::CasMismatch);
        assert_eq!(data.set("vm", b"k", b"v2", 1), Status::Ok);
        assert_eq!(data.get("vm", b"k"), Some((b"v2".to_vec(), 2)));
        assert_eq!(data.set("vm", b"new", b"x", 12345), Status::Ok);
        assert_eq!(data.get("other", b"k"), None);
    }

    #[test]
    fn queues_register_resolve_and_drain() {
        let mut queues = SharedQueues::default();
        assert_eq!(queues.register("vm", "q1", 7), 1);
        assert_eq!(queues.register("vm", "q1", 7), 1);
        assert_eq!(queues.resolve("vm", "q1"), Some(1));
        assert_eq!(queues.enqueue(9999, b"x"), Status::NotFound);
        assert_eq!(queues.enqueue(1, b"item"), Status::Ok);
        assert_eq!(queues.take_pending(7), vec![1]);
        assert_eq!(queues.dequeue(1), Ok(b"item".to_vec()));
        assert_eq!(queues.dequeue(1), Err(Status::Empty));
        assert_eq!(queues.dequeue(2), Err(Status::NotFound));
    }
}
