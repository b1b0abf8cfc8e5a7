//! Bounds-checked access to a guest's linear memory from inside a hostcall.

use wasmtime::{Caller, Memory};

fn memory<T>(caller: &mut Caller<'_, T>) -> Option<Memory> {
    caller.get_export("memory").and_then(|export| export.into_memory())
}

/// Copies `len` bytes at `ptr`; `None` when out of bounds. Pointers and lengths are u32.
pub fn read<T>(caller: &mut Caller<'_, T>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    if len == 0 {
        return Some(Vec::new());
    }
    let memory = memory(caller)?;
    memory.data(&*caller).get(start..start.checked_add(len)?).map(<[u8]>::to_vec)
}

/// Writes `bytes` at `ptr`; `false` when out of bounds.
pub fn write<T>(caller: &mut Caller<'_, T>, ptr: i32, bytes: &[u8]) -> bool {
    let start = ptr as u32 as usize;
    let Some(memory) = memory(caller) else { return false };
    let Some(end) = start.checked_add(bytes.len()) else { return false };
    match memory.data_mut(&mut *caller).get_mut(start..end) {
        Some(slot) => {
            slot.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// Writes a little-endian u32 (`setWord`).
pub fn write_u32<T>(caller: &mut Caller<'_, T>, ptr: i32, value: u32) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

/// Writes a little-endian u64.
pub fn write_u64<T>(caller: &mut Caller<'_, T>, ptr: i32, value: u64) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

/// Reads the bytes of a WASI iovec array (`{ptr: u32, len: u32}` each), concatenated.
pub fn read_iovecs<T>(caller: &mut Caller<'_, T>, iovs: i32, count: i32) -> Option<Vec<u8>> {
    let table = read(caller, iovs, (count as u32).checked_mul(8)? as i32)?;
    let mut out = Vec::new();
    for entry in table.chunks_exact(8) {
        let ptr = u32::from_le_bytes(entry.get(0..4)?.try_into().ok()?);
        let len = u32::from_le_bytes(entry.get(4..8)?.try_into().ok()?);
        out.extend_from_slice(&read(caller, ptr as i32, len as i32)?);
    }
    Some(out)
}
