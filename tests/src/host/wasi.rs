//! Envoy's WASI subset (notes §3), for `wasi_snapshot_preview1` and `wasi_unstable`.
//!
//! Every one of the 45 names cpp-host registers behaves as Envoy's does; any other WASI import
//! is missing and fails the load. The test runner ([`WasiMode::Runner`]) reuses this table but
//! writes stdout/stderr to the real streams, passes arguments and makes `proc_exit` end the run.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker};

use super::abi::LogLevel;
use super::memory;

/// The two WASI module names Envoy registers.
pub const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const NOTDIR: i32 = 20;
const FAULT: i32 = 21;
const INVAL: i32 = 28;
const NOENT: i32 = 44;
const NOSYS: i32 = 52;
const NOTSUP: i32 = 58;

/// The WASI functions cpp-host registers.
pub const ENVOY_FUNCTIONS: [&str; 45] = [
    "fd_write",
    "fd_pwrite",
    "fd_read",
    "fd_seek",
    "fd_close",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_filestat_get",
    "fd_advise",
    "fd_allocate",
    "fd_datasync",
    "fd_fdstat_set_rights",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_sync",
    "fd_tell",
    "fd_pread",
    "fd_readdir",
    "fd_renumber",
    "path_open",
    "path_filestat_get",
    "path_create_directory",
    "path_filestat_set_times",
    "path_link",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "path_readlink",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
    "environ_sizes_get",
    "environ_get",
    "args_sizes_get",
    "args_get",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "sched_yield",
    "poll_oneoff",
    "proc_exit",
];

/// WASI calls allowed while `_initialize` runs; everything else but `proxy_log` traps.
const ALLOWED_IN_INITIALIZE: [&str; 39] = [
    "fd_write",
    "args_sizes_get",
    "args_get",
    "environ_sizes_get",
    "environ_get",
    "clock_time_get",
    "clock_res_get",
    "random_get",
    "poll_oneoff",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_advise",
    "fd_allocate",
    "fd_datasync",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_pwrite",
    "fd_readdir",
    "fd_renumber",
    "fd_sync",
    "fd_tell",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];

/// Calls allowed while the host runs the guest allocator.
const ALLOWED_IN_ALLOCATOR: [&str; 4] = ["proxy_log", "fd_write", "clock_time_get", "poll_oneoff"];

/// What the VM is doing, for Envoy's restricted-callback rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Any hostcall allowed.
    Normal,
    /// `_initialize` / `_start` / `main`: only `proxy_log` and the WASI calls listed by cpp-host.
    Initialize,
    /// A host-initiated `proxy_on_memory_allocate`/`malloc`.
    Allocator,
}

impl Phase {
    /// Whether the hostcall `name` may run now; otherwise Envoy traps with "restricted_callback".
    pub fn allows(self, name: &str) -> bool {
        match self {
            Phase::Normal => true,
            Phase::Initialize => {
                matches!(name, "proxy_log" | "emscripten_notify_memory_growth") || ALLOWED_IN_INITIALIZE.contains(&name)
            }
            Phase::Allocator => ALLOWED_IN_ALLOCATOR.contains(&name),
        }
    }
}

/// The trap Envoy raises for a call outside its allowed phase.
pub fn restricted(phase: Phase, name: &str) -> wasmtime::Result<()> {
    if phase.allows(name) {
        Ok(())
    } else {
        Err(wasmtime::Error::msg(format!("restricted_callback ({name} during {phase:?})")))
    }
}

/// Who the WASI implementation serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasiMode {
    /// A proxy-wasm plugin, as Envoy runs it.
    Envoy,
    /// A test binary run by `wasm-test-runner`.
    Runner,
}

/// A settable clock shared by every VM of a [`super::Host`].
#[derive(Debug)]
pub struct TestClock {
    realtime_ns: Cell<u64>,
    monotonic_ns: Cell<u64>,
}

impl TestClock {
    /// A clock at `realtime_ns` since the Unix epoch.
    pub fn new(realtime_ns: u64) -> Self {
        Self { realtime_ns: Cell::new(realtime_ns), monotonic_ns: Cell::new(1_000_000_000) }
    }

    /// Nanoseconds since the Unix epoch.
    pub fn realtime_ns(&self) -> u64 {
        self.realtime_ns.get()
    }

    /// Monotonic nanoseconds.
    pub fn monotonic_ns(&self) -> u64 {
        self.monotonic_ns.get()
    }

    /// Sets the wall clock.
    pub fn set_realtime_ns(&self, ns: u64) {
        self.realtime_ns.set(ns);
    }

    /// Moves both clocks forward.
    pub fn advance_ns(&self, ns: u64) {
        self.realtime_ns.set(self.realtime_ns.get().saturating_add(ns));
        self.monotonic_ns.set(self.monotonic_ns.get().saturating_add(ns));
    }
}

/// The clock the guest sees.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The test's settable clock.
    Test(Rc<TestClock>),
    /// The machine's clock (the test runner).
    System,
}

impl Clock {
    fn now(&self, id: i32) -> Option<u64> {
        match (self, id) {
            (Clock::Test(clock), 0) => Some(clock.realtime_ns()),
            (Clock::Test(clock), 1) => Some(clock.monotonic_ns()),
            (Clock::System, 0 | 1) => {
                let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                Some(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
            }
            _ => None,
        }
    }
}

/// Per-store WASI state.
#[derive(Debug)]
pub struct WasiState {
    /// Envoy plugin or test runner.
    pub mode: WasiMode,
    /// `argv` (empty for plugins: Envoy reports argc 0).
    pub args: Vec<String>,
    /// `environ` (Envoy: `vm_config.environment_variables`).
    pub env: Vec<(String, String)>,
    /// The restricted-callback phase.
    pub phase: Phase,
    /// Wall and monotonic clocks.
    pub clock: Clock,
    rng: u64,
}

impl WasiState {
    /// A WASI state; `seed` drives `random_get` (deterministic per test).
    pub fn new(mode: WasiMode, clock: Clock, seed: u64) -> Self {
        Self { mode, args: Vec::new(), env: Vec::new(), phase: Phase::Normal, clock, rng: seed }
    }

    /// SplitMix64: not cryptographic, but stable across runs so failures reproduce.
    fn fill_random(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let bytes = z.to_le_bytes();
            chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
        }
    }
}

/// What a store's data offers the WASI functions.
pub trait WasiHost: 'static {
    /// The WASI state.
    fn wasi(&mut self) -> &mut WasiState;
    /// Where Envoy sends fd 1 (Info) and fd 2 (Error) output: the plugin's log.
    fn log(&mut self, level: LogLevel, message: String);
}

/// The reason a runner's guest stopped: `proc_exit(code)`.
#[derive(Debug, Clone, Copy)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proc_exit({})", self.0)
    }
}

impl std::error::Error for Exit {}

type R = wasmtime::Result<i32>;

fn guard<T: WasiHost>(caller: &mut Caller<'_, T>, name: &str) -> wasmtime::Result<()> {
    restricted(caller.data_mut().wasi().phase, name)
}

fn is_std(fd: i32) -> bool {
    fd == 1 || fd == 2
}

/// Registers Envoy's WASI functions under both module names.
pub fn add_to_linker<T: WasiHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    for module in MODULES {
        add_module(linker, module)?;
    }
    Ok(())
}

fn write_output<T: WasiHost>(caller: &mut Caller<'_, T>, fd: i32, iovs: i32, count: i32, nwritten: i32) -> i32 {
    if !is_std(fd) {
        return BADF;
    }
    let Some(bytes) = memory::read_iovecs(caller, iovs, count) else { return FAULT };
    let written = bytes.len();
    match caller.data_mut().wasi().mode {
        WasiMode::Envoy => {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
            let level = if fd == 1 { LogLevel::Info } else { LogLevel::Error };
            caller.data_mut().log(level, text);
        }
        WasiMode::Runner => {
            use std::io::Write;
            let result = if fd == 1 {
                std::io::stdout().write_all(&bytes).and_then(|()| std::io::stdout().flush())
            } else {
                std::io::stderr().write_all(&bytes)
            };
            if result.is_err() {
                return BADF;
            }
        }
    }
    if memory::write_u32(caller, nwritten, abi_len(written)) {
        SUCCESS
    } else {
        FAULT
    }
}

fn abi_len(len: usize) -> u32 {
    super::abi::len_u32(len)
}

/// `KEY=VALUE\0` strings (environ) or `arg\0` strings (argv).
fn strings(items: &[String]) -> (u32, u32) {
    let size: usize = items.iter().map(|s| s.len() + 1).sum();
    (abi_len(items.len()), abi_len(size))
}

fn write_strings<T>(caller: &mut Caller<'_, T>, items: &[String], ptrs: i32, buf: i32) -> i32 {
    let mut at = buf as u32;
    for (i, item) in items.iter().enumerate() {
        let slot = (ptrs as u32).wrapping_add(abi_len(i) * 4) as i32;
        let mut bytes = item.as_bytes().to_vec();
        bytes.push(0);
        if !memory::write_u32(caller, slot, at) || !memory::write(caller, at as i32, &bytes) {
            return FAULT;
        }
        at = at.wrapping_add(abi_len(bytes.len()));
    }
    SUCCESS
}

fn env_strings<T: WasiHost>(caller: &mut Caller<'_, T>) -> Vec<String> {
    caller.data_mut().wasi().env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn add_module<T: WasiHost>(linker: &mut Linker<T>, m: &str) -> wasmtime::Result<()> {
    linker.func_wrap(m, "fd_write", |mut c: Caller<'_, T>, fd: i32, iovs: i32, n: i32, out: i32| -> R {
        guard(&mut c, "fd_write")?;
        Ok(write_output(&mut c, fd, iovs, n, out))
    })?;
    linker.func_wrap(m, "fd_pwrite", |mut c: Caller<'_, T>, fd: i32, iovs: i32, n: i32, _off: i64, out: i32| -> R {
        guard(&mut c, "fd_pwrite")?;
        Ok(write_output(&mut c, fd, iovs, n, out))
    })?;
    linker.func_wrap(m, "fd_read", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32| -> R {
        guard(&mut c, "fd_read")?;
        Ok(NOSYS)
    })?;
    linker.func_wrap(m, "fd_seek", |mut c: Caller<'_, T>, _: i32, _: i64, _: i32, _: i32| -> R {
        guard(&mut c, "fd_seek")?;
        c.data_mut().log(LogLevel::Error, "wasi_unstable fd_seek".into());
        Ok(SUCCESS)
    })?;
    linker.func_wrap(m, "fd_close", |mut c: Caller<'_, T>, _: i32| -> R {
        guard(&mut c, "fd_close")?;
        c.data_mut().log(LogLevel::Error, "wasi_unstable fd_close".into());
        Ok(SUCCESS)
    })?;
    linker.func_wrap(m, "fd_fdstat_get", |mut c: Caller<'_, T>, fd: i32, out: i32| -> R {
        guard(&mut c, "fd_fdstat_get")?;
        if !is_std(fd) {
            return Ok(BADF);
        }
        // fdstat: filetype u8 (2 = character device), flags u16, rights base u64 (FD_WRITE = 1 << 6), inheriting.
        let mut stat = [0u8; 24];
        stat[0] = 2;
        stat[8..16].copy_from_slice(&(1u64 << 6).to_le_bytes());
        Ok(if memory::write(&mut c, out, &stat) { SUCCESS } else { FAULT })
    })?;
    linker.func_wrap(m, "fd_fdstat_set_flags", |mut c: Caller<'_, T>, _: i32, _: i32| -> R {
        guard(&mut c, "fd_fdstat_set_flags")?;
        Ok(NOSYS)
    })?;
    linker.func_wrap(m, "fd_prestat_get", |mut c: Caller<'_, T>, _: i32, _: i32| -> R {
        guard(&mut c, "fd_prestat_get")?;
        Ok(BADF)
    })?;
    linker.func_wrap(m, "fd_prestat_dir_name", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32| -> R {
        guard(&mut c, "fd_prestat_dir_name")?;
        Ok(NOSYS)
    })?;
    linker.func_wrap(m, "fd_filestat_get", |mut c: Caller<'_, T>, _: i32, _: i32| -> R {
        guard(&mut c, "fd_filestat_get")?;
        Ok(BADF)
    })?;
    linker.func_wrap(m, "fd_advise", |mut c: Caller<'_, T>, _: i32, _: i64, _: i64, _: i32| -> R {
        guard(&mut c, "fd_advise")?;
        Ok(SUCCESS)
    })?;
    let std_only = |fd: i32| if is_std(fd) { SUCCESS } else { BADF };
    linker.func_wrap(m, "fd_allocate", move |mut c: Caller<'_, T>, fd: i32, _: i64, _: i64| -> R {
        guard(&mut c, "fd_allocate")?;
        Ok(std_only(fd))
    })?;
    linker.func_wrap(m, "fd_datasync", move |mut c: Caller<'_, T>, fd: i32| -> R {
        guard(&mut c, "fd_datasync")?;
        Ok(std_only(fd))
    })?;
    linker.func_wrap(m, "fd_fdstat_set_rights", move |mut c: Caller<'_, T>, fd: i32, _: i64, _: i64| -> R {
        guard(&mut c, "fd_fdstat_set_rights")?;
        Ok(std_only(fd))
    })?;
    linker.func_wrap(m, "fd_filestat_set_size", move |mut c: Caller<'_, T>, fd: i32, _: i64| -> R {
        guard(&mut c, "fd_filestat_set_size")?;
        Ok(std_only(fd))
    })?;
    linker.func_wrap(
        m,
        "fd_filestat_set_times",
        move |mut c: Caller<'_, T>, fd: i32, _: i64, _: i64, _: i32| -> R {
            guard(&mut c, "fd_filestat_set_times")?;
            Ok(std_only(fd))
        },
    )?;
    linker.func_wrap(m, "fd_sync", move |mut c: Caller<'_, T>, fd: i32| -> R {
        guard(&mut c, "fd_sync")?;
        Ok(std_only(fd))
    })?;
    linker.func_wrap(m, "fd_tell", |mut c: Caller<'_, T>, fd: i32, out: i32| -> R {
        guard(&mut c, "fd_tell")?;
        if !is_std(fd) {
            return Ok(BADF);
        }
        Ok(if memory::write_u64(&mut c, out, 0) { SUCCESS } else { FAULT })
    })?;
    linker.func_wrap(m, "fd_pread", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i64, _: i32| -> R {
        guard(&mut c, "fd_pread")?;
        Ok(NOSYS)
    })?;
    linker.func_wrap(m, "fd_readdir", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i64, used: i32| -> R {
        guard(&mut c, "fd_readdir")?;
        memory::write_u32(&mut c, used, 0);
        Ok(NOTDIR)
    })?;
    linker.func_wrap(m, "fd_renumber", |mut c: Caller<'_, T>, fd: i32, to: i32| -> R {
        guard(&mut c, "fd_renumber")?;
        Ok(if is_std(fd) && is_std(to) { NOTSUP } else { BADF })
    })?;
    linker.func_wrap(
        m,
        "path_open",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32, _: i32| -> R {
            guard(&mut c, "path_open")?;
            Ok(NOENT)
        },
    )?;
    linker.func_wrap(m, "path_filestat_get", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32| -> R {
        guard(&mut c, "path_filestat_get")?;
        Ok(NOTSUP)
    })?;
    linker.func_wrap(m, "path_create_directory", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32| -> R {
        guard(&mut c, "path_create_directory")?;
        Ok(NOTSUP)
    })?;
    linker.func_wrap(
        m,
        "path_filestat_set_times",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32| -> R {
            guard(&mut c, "path_filestat_set_times")?;
            Ok(NOTSUP)
        },
    )?;
    linker.func_wrap(
        m,
        "path_link",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> R {
            guard(&mut c, "path_link")?;
            Ok(NOTSUP)
        },
    )?;
    linker.func_wrap(m, "path_remove_directory", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32| -> R {
        guard(&mut c, "path_remove_directory")?;
        Ok(NOTSUP)
    })?;
    linker.func_wrap(
        m,
        "path_rename",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> R {
            guard(&mut c, "path_rename")?;
            Ok(NOTSUP)
        },
    )?;
    linker.func_wrap(m, "path_symlink", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32| -> R {
        guard(&mut c, "path_symlink")?;
        Ok(NOTSUP)
    })?;
    linker.func_wrap(m, "path_unlink_file", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32| -> R {
        guard(&mut c, "path_unlink_file")?;
        Ok(NOTSUP)
    })?;
    linker.func_wrap(
        m,
        "path_readlink",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32, used: i32| -> R {
            guard(&mut c, "path_readlink")?;
            memory::write_u32(&mut c, used, 0);
            Ok(NOTSUP)
        },
    )?;
    linker.func_wrap(m, "sock_accept", |mut c: Caller<'_, T>, _: i32, _: i32, out: i32| -> R {
        guard(&mut c, "sock_accept")?;
        memory::write_u32(&mut c, out, 0);
        Ok(NOTSUP)
    })?;
    linker.func_wrap(
        m,
        "sock_recv",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, len: i32, flags: i32| -> R {
            guard(&mut c, "sock_recv")?;
            memory::write_u32(&mut c, len, 0);
            memory::write(&mut c, flags, &[0, 0]);
            Ok(NOTSUP)
        },
    )?;
    linker.func_wrap(m, "sock_send", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, len: i32| -> R {
        guard(&mut c, "sock_send")?;
        memory::write_u32(&mut c, len, 0);
        Ok(NOTSUP)
    })?;
    linker.func_wrap(m, "sock_shutdown", |mut c: Caller<'_, T>, _: i32, _: i32| -> R {
        guard(&mut c, "sock_shutdown")?;
        Ok(NOTSUP)
    })?;
    linker.func_wrap(m, "environ_sizes_get", |mut c: Caller<'_, T>, count: i32, size: i32| -> R {
        guard(&mut c, "environ_sizes_get")?;
        let (n, bytes) = strings(&env_strings(&mut c));
        Ok(if memory::write_u32(&mut c, count, n) && memory::write_u32(&mut c, size, bytes) { SUCCESS } else { FAULT })
    })?;
    linker.func_wrap(m, "environ_get", |mut c: Caller<'_, T>, ptrs: i32, buf: i32| -> R {
        guard(&mut c, "environ_get")?;
        let env = env_strings(&mut c);
        Ok(write_strings(&mut c, &env, ptrs, buf))
    })?;
    linker.func_wrap(m, "args_sizes_get", |mut c: Caller<'_, T>, count: i32, size: i32| -> R {
        guard(&mut c, "args_sizes_get")?;
        let (n, bytes) = strings(&c.data_mut().wasi().args.clone());
        Ok(if memory::write_u32(&mut c, count, n) && memory::write_u32(&mut c, size, bytes) { SUCCESS } else { FAULT })
    })?;
    linker.func_wrap(m, "args_get", |mut c: Caller<'_, T>, ptrs: i32, buf: i32| -> R {
        guard(&mut c, "args_get")?;
        let args = c.data_mut().wasi().args.clone();
        Ok(write_strings(&mut c, &args, ptrs, buf))
    })?;
    linker.func_wrap(m, "clock_time_get", |mut c: Caller<'_, T>, id: i32, _precision: i64, out: i32| -> R {
        guard(&mut c, "clock_time_get")?;
        let Some(now) = c.data_mut().wasi().clock.now(id) else { return Ok(NOTSUP) };
        Ok(if memory::write_u64(&mut c, out, now) { SUCCESS } else { FAULT })
    })?;
    linker.func_wrap(m, "clock_res_get", |mut c: Caller<'_, T>, id: i32, out: i32| -> R {
        guard(&mut c, "clock_res_get")?;
        if id != 0 && id != 1 {
            return Ok(NOTSUP);
        }
        Ok(if memory::write_u64(&mut c, out, 1) { SUCCESS } else { FAULT })
    })?;
    linker.func_wrap(m, "random_get", |mut c: Caller<'_, T>, buf: i32, len: i32| -> R {
        guard(&mut c, "random_get")?;
        let len = len as u32 as usize;
        if len > 65536 {
            return Ok(INVAL);
        }
        let mut bytes = vec![0u8; len];
        c.data_mut().wasi().fill_random(&mut bytes);
        Ok(if memory::write(&mut c, buf, &bytes) { SUCCESS } else { FAULT })
    })?;
    linker.func_wrap(m, "sched_yield", |mut c: Caller<'_, T>| -> R {
        guard(&mut c, "sched_yield")?;
        Ok(SUCCESS)
    })?;
    linker.func_wrap(m, "poll_oneoff", |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, nevents: i32| -> R {
        guard(&mut c, "poll_oneoff")?;
        Ok(if memory::write_u32(&mut c, nevents, 0) { SUCCESS } else { FAULT })
    })?;
    linker.func_wrap(m, "proc_exit", |mut c: Caller<'_, T>, code: i32| -> wasmtime::Result<()> {
        guard(&mut c, "proc_exit")?;
        match c.data_mut().wasi().mode {
            WasiMode::Envoy => {
                c.data_mut().log(LogLevel::Error, "wasi_unstable proc_exit".into());
                Ok(())
            }
            WasiMode::Runner => Err(wasmtime::Error::new(Exit(code))),
        }
    })?;
    Ok(())
}
