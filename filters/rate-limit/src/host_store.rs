//! The core's [`Store`] over proxy-wasm shared data.
//!
//! Envoy keeps one store per VM id for the whole process, so every worker sees the same
//! buckets. An existing key with an empty value comes back as no bytes with a CAS token; a
//! missing key as neither.

use palisade_core::rate_limit::{SetError, Store, StoreError, Versioned};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

/// Shared data of this VM id.
pub struct HostStore;

impl Store for HostStore {
    fn get(&mut self, key: &str) -> Result<Option<Versioned>, StoreError> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(bytes), Some(cas))) => Ok(Some((bytes, cas))),
            Ok((None, Some(cas))) => Ok(Some((Vec::new(), cas))),
            Ok((None, None)) => Ok(None),
            // Bytes without a CAS token cannot be written safely.
            Ok((Some(_), None)) | Err(_) => Err(StoreError),
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let cas = if cas == 0 { None } else { Some(cas) };
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(_) => Err(SetError::Failed),
        }
    }
}
