//! Test infrastructure: placeholder until the host lands.
