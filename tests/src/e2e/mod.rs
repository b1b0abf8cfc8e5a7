//! Placeholder: the real-Envoy runner lands here.
