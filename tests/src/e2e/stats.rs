//! Envoy's admin `/stats` (text format) as a map.

use std::collections::BTreeMap;

/// A snapshot of Envoy's stats: `name -> value` as `/stats` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    values: BTreeMap<String, String>,
}

impl Stats {
    /// Parses the text of admin `/stats` (`name: value` lines).
    pub fn parse(text: &str) -> Stats {
        let values = text
            .lines()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        Stats { values }
    }

    /// The raw value of a stat (histograms and text readouts stay as text).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A counter or gauge; `None` when absent or not a number.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }

    /// A filter's custom stat as `/stats` shows it: `wasmcustom("palisade.cors.denied")` reads
    /// `wasmcustom.palisade.cors.denied`.
    pub fn wasmcustom(&self, name: &str) -> Option<u64> {
        self.counter(&format!("wasmcustom.{name}"))
    }

    /// Every stat whose name starts with `prefix`.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.values
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of stats.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no stats.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_histograms_and_wasmcustom() {
        let stats = Stats::parse(
            "http.main.downstream_rq_total: 3\nwasmcustom.palisade.x.allowed: 2\n\
             http.main.downstream_rq_time: P0(nan,1) P25(nan,1.025)\nserver.version: \"1.40\"\n",
        );
        assert_eq!(stats.counter("http.main.downstream_rq_total"), Some(3));
        assert_eq!(stats.wasmcustom("palisade.x.allowed"), Some(2));
        assert_eq!(stats.counter("http.main.downstream_rq_time"), None);
        assert_eq!(stats.get("http.main.downstream_rq_time"), Some("P0(nan,1) P25(nan,1.025)"));
        assert_eq!(stats.with_prefix("wasmcustom.").count(), 1);
    }
}
