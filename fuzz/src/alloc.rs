//! The counting global allocator: every request is checked against a cap on its own size and
//! on the bytes live at once (the fuzzer's own included); a request over either prints what it
//! asked for and aborts, and the abort handler saves the input (see `guard`). Nothing here
//! allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::guard::{stderr, stderr_num};

/// Largest single allocation a parser may ask for: 1 GiB.
pub const MAX_SINGLE: usize = 1 << 30;
/// Most bytes live at once, the fuzzer's own included: 1 GiB.
pub const MAX_LIVE: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// `System`, counting and capping.
pub struct CapAlloc;

/// Bytes live now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The peak of live bytes since the last call, which restarts it at the live bytes of now.
pub fn take_peak() -> usize {
    PEAK.swap(live(), Ordering::Relaxed)
}

/// Admits a request of `size` bytes that grows the live total by `grow`, or aborts.
fn admit(size: usize, grow: usize) {
    if size > MAX_SINGLE {
        over(
            b"one allocation of ",
            size as u64,
            b"MAX_SINGLE",
            MAX_SINGLE,
        );
    }
    let now = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
    if now > MAX_LIVE {
        over(b"live total of ", now as u64, b"MAX_LIVE", MAX_LIVE);
    }
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn over(what: &[u8], n: u64, name: &[u8], cap: usize) -> ! {
    stderr(b"\nbitdance-fuzz: ALLOCATION OVER THE CAP: ");
    stderr(what);
    stderr_num(n);
    stderr(b" bytes requested, over ");
    stderr(name);
    stderr(b" = ");
    stderr_num(cap as u64);
    stderr(b" bytes\n");
    std::process::abort();
}

// SAFETY: every call is forwarded to `System` with the same arguments; only counters change.
unsafe impl GlobalAlloc for CapAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        admit(layout.size(), layout.size());
        let p = System.alloc(layout);
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        admit(layout.size(), layout.size());
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        admit(new_size, new_size.saturating_sub(old));
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            LIVE.fetch_sub(new_size.saturating_sub(old), Ordering::Relaxed);
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}
