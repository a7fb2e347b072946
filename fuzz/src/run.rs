//! The fuzzing loop of one target: the corpus as given, then mutants of a pool that grows with
//! every input reaching an outcome not seen before (a cheap stand-in for coverage feedback),
//! each run under `catch_unwind` and the hang watchdog; panics are saved as finds.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::guard;
use crate::mutate;
use crate::rng::Rng;
use crate::targets::{Outcome, Target};

/// Most inputs kept in the pool.
const MAX_POOL: usize = 2048;
/// Characters of a key that make its class: inputs reaching new keys of one class join the pool
/// at most `PER_CLASS` times, so one message echoing input bytes cannot flood it.
const CLASS_CHARS: usize = 48;
/// Pool entries per class.
const PER_CLASS: usize = 16;
/// Most distinct outcomes remembered.
const MAX_SEEN: usize = 100_000;
/// Most finds saved per target (the same bug tends to repeat).
const MAX_SAVED: usize = 20;

/// The message of the last panic, set by the hook `install_panic_hook` installs.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// Replaces the default panic hook (which prints each caught panic) by one that keeps the
/// message and location for the report.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = info.to_string();
        }
    }));
}

/// A panic found: its message and where its input was saved.
pub struct Find {
    /// The panic message with its location.
    pub message: String,
    /// The saved input.
    pub path: PathBuf,
}

/// What fuzzing one target did.
pub struct Report {
    /// Inputs executed.
    pub execs: u64,
    /// Seconds spent.
    pub secs: f64,
    /// Distinct error kinds (see `fold`).
    pub errors: usize,
    /// Distinct accepted outcomes.
    pub accepted: usize,
    /// Inputs in the pool at the end.
    pub pool: usize,
    /// The slowest input's time.
    pub slowest: Duration,
    /// The slowest input (saved by `--save-slowest` to look at).
    pub slowest_input: Vec<u8>,
    /// Peak bytes live during the run.
    pub peak: usize,
    /// Panics found, one per distinct message.
    pub finds: Vec<Find>,
    /// Folded error messages, sorted (for `--list-errors`).
    pub error_list: Vec<String>,
}

/// Characters of an outcome kept in its key.
const KEY_CHARS: usize = 96;

/// The key of an outcome in "seen": its first `KEY_CHARS` characters, up to the first that is
/// not printable ASCII, with every word holding a digit (numbers, hex, dtype names) folded to
/// `#` (lists of them to one), and everything between the first and the last quote left out
/// (names and values echoed from the input).
fn fold(o: &Outcome) -> String {
    let (tag, text) = match o {
        Ok(s) => ("ok: ", s.as_str()),
        Err(s) => ("error: ", s.as_str()),
    };
    let quote = |c: char| matches!(c, '\'' | '"' | '`');
    let text = match (text.find(quote), text.rfind(quote)) {
        (Some(a), Some(b)) if a < b => format!("{}..{}", &text[..a], &text[b + 1..]),
        _ => text.to_string(),
    };
    let mut out = String::from(tag);
    let end = text
        .find(|c: char| !(c.is_ascii_graphic() || c == ' '))
        .unwrap_or(text.len());
    let mut rest = &text[..end];
    while let Some(c) = rest.chars().next() {
        let word = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        if word == 0 {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let (w, tail) = rest.split_at(word);
        if w.bytes().any(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(w);
        }
        rest = tail;
        while out.ends_with("#, #") || out.ends_with("##") {
            out.truncate(out.len() - if out.ends_with("##") { 1 } else { 3 });
        }
        if out.len() > tag.len() + KEY_CHARS {
            break;
        }
    }
    out.chars().take(tag.len() + KEY_CHARS).collect()
}

/// Runs `input` once under `catch_unwind`: its outcomes, or the panic message.
pub fn exec(t: &'static Target, input: &[u8]) -> Result<Vec<Outcome>, String> {
    guard::set_current(t.name, Some(input));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| (t.run)(input)));
    guard::set_current(t.name, None);
    result.map_err(|_| {
        LAST_PANIC
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|_| "panic (message lost)".into())
    })
}

/// Fuzzes `t` for `seconds`, starting from `corpus`; finds are saved under `finds`.
pub fn fuzz(
    t: &'static Target,
    corpus: Vec<Vec<u8>>,
    seconds: f64,
    seed: u64,
    finds: &Path,
) -> Report {
    let mut rng = Rng::new(seed ^ guard::hash(t.name.as_bytes()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let seeds = corpus.len();
    let mut pool = corpus;
    let mut seen = HashSet::new();
    let mut classes: HashMap<String, usize> = HashMap::new();
    let mut errors = HashSet::new();
    let mut accepted = 0;
    let mut found: Vec<Find> = Vec::new();
    let mut saved = 0;
    let (mut execs, mut slowest, mut slowest_input) = (0u64, Duration::ZERO, Vec::new());
    crate::alloc::take_peak();
    let mut next_seed = 0;
    while next_seed < seeds || Instant::now() < deadline {
        let input = if next_seed < seeds {
            next_seed += 1;
            pool[next_seed - 1].clone()
        } else {
            mutant(t, &mut rng, &pool)
        };
        let t0 = Instant::now();
        let result = exec(t, &input);
        if t0.elapsed() > slowest {
            slowest = t0.elapsed();
            slowest_input.clone_from(&input);
        }
        execs += 1;
        match result {
            Ok(outcomes) => {
                let mut new = false;
                for o in &outcomes {
                    let key = fold(o);
                    if seen.len() < MAX_SEEN && seen.insert(key.clone()) {
                        let class = classes
                            .entry(key.chars().take(CLASS_CHARS).collect())
                            .or_default();
                        *class += 1;
                        new |= *class <= PER_CLASS;
                        match o {
                            Ok(_) => accepted += 1,
                            Err(_) => {
                                errors.insert(key);
                            }
                        }
                    }
                }
                if new && next_seed >= seeds {
                    if pool.len() < MAX_POOL {
                        pool.push(input);
                    } else {
                        let i = seeds + rng.below(pool.len() - seeds);
                        pool[i] = input;
                    }
                }
            }
            Err(message) => {
                let path = guard::find_path(finds, t.name, &input);
                if saved < MAX_SAVED {
                    saved += 1;
                    if let Err(e) = std::fs::write(&path, &input) {
                        eprintln!("bitdance-fuzz: cannot save {}: {e}", path.display());
                    }
                }
                if !found.iter().any(|f| f.message == message) {
                    found.push(Find { message, path });
                }
            }
        }
    }
    let mut error_list: Vec<String> = errors.iter().cloned().collect();
    error_list.sort();
    Report {
        execs,
        secs: start.elapsed().as_secs_f64(),
        errors: errors.len(),
        accepted,
        pool: pool.len(),
        slowest,
        slowest_input,
        peak: crate::alloc::take_peak(),
        finds: found,
        error_list,
    }
}

/// A new input: the target's format-aware mutation half of the time (when it applies), else
/// generic edits of a pool entry.
fn mutant(t: &Target, rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    let parent = if pool.is_empty() {
        &[][..]
    } else {
        &pool[rng.below(pool.len())][..]
    };
    if rng.chance(1, 2) {
        let mut out = match (t.mutate)(rng, parent, pool) {
            Some(out) => out,
            None => mutate::mutate(rng, parent, pool, t.dict),
        };
        if rng.chance(1, 8) {
            mutate::mutate_once(rng, &mut out, pool, t.dict);
        }
        out.truncate(mutate::MAX_INPUT);
        out
    } else {
        mutate::mutate(rng, parent, pool, t.dict)
    }
}
