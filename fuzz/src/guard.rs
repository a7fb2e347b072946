//! What is running now, kept where an abort can find it without allocating: the target name and
//! the input. An abort (the allocation cap, a stack overflow, a hang) saves that input to the
//! finds folder from a signal handler that only calls async-signal-safe functions.

use std::cell::UnsafeCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Longest one input may run before it counts as a hang (saved, then abort).
pub const HANG_SECS: u64 = 30;

static INPUT_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);
static TARGET_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static TARGET_LEN: AtomicUsize = AtomicUsize::new(0);
/// Milliseconds since `EPOCH` at which the current input started, 0 when none runs.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);

/// A NUL-terminated path written once at start-up, read by the signal handler.
struct FixedPath(UnsafeCell<[u8; 1024]>);
// SAFETY: written once by `install` before any input runs, only read afterwards.
unsafe impl Sync for FixedPath {}
static FINDS_DIR: FixedPath = FixedPath(UnsafeCell::new([0; 1024]));

static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// FNV-1a, 64 bits: the name of a saved find (same input, same file).
pub fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Records where finds go, installs the abort handler and starts the hang watchdog.
pub fn install(finds: &Path) {
    let bytes = finds.as_os_str().as_encoded_bytes();
    assert!(bytes.len() < 900, "finds folder path too long");
    // SAFETY: no input runs yet, so nothing reads the buffer concurrently.
    unsafe { (&mut *FINDS_DIR.0.get())[..bytes.len()].copy_from_slice(bytes) };
    now_ms();
    #[cfg(unix)]
    // SAFETY: the handler only calls async-signal-safe functions (open, write, close).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_abort as *const () as usize;
        action.sa_flags = libc::SA_RESETHAND | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut());
    }
    std::thread::spawn(|| loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let started = STARTED_MS.load(Ordering::Acquire);
        if started != 0 && now_ms().saturating_sub(started) > HANG_SECS * 1000 {
            stderr(b"\nbitdance-fuzz: HANG: one input ran longer than the limit (HANG_SECS)\n");
            std::process::abort();
        }
    });
}

/// Marks `input` of `target` as the one running now (`None`: nothing runs).
pub fn set_current(target: &'static str, input: Option<&[u8]>) {
    TARGET_PTR.store(target.as_ptr() as *mut u8, Ordering::Release);
    TARGET_LEN.store(target.len(), Ordering::Release);
    let (ptr, len) = input.map_or((std::ptr::null(), 0), |i| (i.as_ptr(), i.len()));
    INPUT_LEN.store(len, Ordering::Release);
    INPUT_PTR.store(ptr as *mut u8, Ordering::Release);
    let started = if input.is_some() { now_ms() } else { 0 };
    STARTED_MS.store(started, Ordering::Release);
}

/// The path a find of `target` with bytes `data` is saved to.
pub fn find_path(finds: &Path, target: &str, data: &[u8]) -> PathBuf {
    finds.join(format!("{target}-{:016x}.bin", hash(data)))
}

/// Writes `msg` to standard error without allocating.
pub fn stderr(msg: &[u8]) {
    #[cfg(unix)]
    // SAFETY: write(2) on fd 2 with a valid buffer.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
    #[cfg(not(unix))]
    {
        use std::io::Write;
        let _ = std::io::stderr().write_all(msg);
    }
}

/// Writes `n` in decimal to standard error without allocating.
pub fn stderr_num(mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    stderr(&buf[at..]);
}

/// SIGABRT handler: saves the running input as `<finds>/<target>-<hash>.bin`, says so, and
/// returns (the handler was reset, so the abort then ends the process).
#[cfg(unix)]
extern "C" fn on_abort(_sig: libc::c_int) {
    let ptr = INPUT_PTR.load(Ordering::Acquire);
    let len = INPUT_LEN.load(Ordering::Acquire);
    if ptr.is_null() {
        stderr(b"bitdance-fuzz: aborted outside any input\n");
        return;
    }
    // SAFETY: the pointers were set from live slices by `set_current` on the thread that aborts
    // (or that the watchdog found stuck), which does not run on while this handler runs.
    let (input, target) = unsafe {
        (
            std::slice::from_raw_parts(ptr, len),
            std::slice::from_raw_parts(
                TARGET_PTR.load(Ordering::Acquire),
                TARGET_LEN.load(Ordering::Acquire),
            ),
        )
    };
    let mut path = [0u8; 1024];
    // SAFETY: written once before any input ran.
    let dir = unsafe { &*FINDS_DIR.0.get() };
    let dir_len = dir.iter().position(|&b| b == 0).unwrap_or(0);
    let mut at = 0;
    let hex = hash(input);
    let mut name = [0u8; 16];
    for (i, c) in name.iter_mut().enumerate() {
        *c = b"0123456789abcdef"[(hex >> (60 - 4 * i)) as usize & 15];
    }
    let target = &target[..target.len().min(64)];
    for part in [&dir[..dir_len], b"/", target, b"-", &name, b".bin"] {
        path[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    // SAFETY: `path` is NUL-terminated (zeroed past `at`); open/write/close are signal-safe.
    unsafe {
        let fd = libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o644,
        );
        if fd >= 0 {
            let mut done = 0;
            while done < input.len() {
                let n = libc::write(fd, input[done..].as_ptr().cast(), input.len() - done);
                if n <= 0 {
                    break;
                }
                done += n as usize;
            }
            libc::close(fd);
        }
    }
    stderr(b"bitdance-fuzz: FIND (abort) in target ");
    stderr(target);
    stderr(b": input saved to ");
    stderr(&path[..at]);
    stderr(b"\n  reproduce: cargo run -p bitdance-fuzz -- --target ");
    stderr(target);
    stderr(b" --reproduce ");
    stderr(&path[..at]);
    stderr(b"\n");
}
