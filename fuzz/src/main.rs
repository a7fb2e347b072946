//! `bitdance-fuzz`: bounded, seeded mutation fuzzing of every parser of untrusted bytes in the
//! core, on stable Rust. Each input runs under `catch_unwind` and a counting allocator with
//! caps; a panic, an abort, an allocation over a cap or a hang is a find, saved to the finds
//! folder. See README.md.

mod alloc;
mod guard;
mod mutate;
mod rng;
mod run;
mod targets;
mod zipfile;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use targets::{Target, TARGETS};

#[global_allocator]
static GLOBAL: alloc::CapAlloc = alloc::CapAlloc;

/// Fuzz the parsers of untrusted bytes (weights, checkpoints, images, configs) for a bounded time.
#[derive(Parser)]
#[command(name = "bitdance-fuzz")]
struct Args {
    /// Seconds per target.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Target to run, or "all".
    #[arg(long, default_value = "all")]
    target: String,
    /// Seed of the mutations: the same seed gives the same inputs in the same order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Corpus folder (one sub-folder per target).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Where finds are saved.
    #[arg(long)]
    finds: Option<PathBuf>,
    /// Write the programmatic seeds into the corpus folder, then exit.
    #[arg(long)]
    write_seeds: bool,
    /// Run one saved input through `--target` (with the default panic message), then exit.
    #[arg(long)]
    reproduce: Option<PathBuf>,
    /// Print the distinct error kinds each target reached.
    #[arg(long)]
    list_errors: bool,
    /// Save each target's slowest input as `<finds>/<target>-slowest.bin` (not a find).
    #[arg(long)]
    save_slowest: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = args.corpus.clone().unwrap_or_else(|| root.join("corpus"));
    let finds = args
        .finds
        .clone()
        .unwrap_or_else(|| root.join("../target/fuzz-finds"));
    let chosen: Vec<&'static Target> = TARGETS
        .iter()
        .filter(|t| args.target == "all" || args.target == t.name)
        .collect();
    if chosen.is_empty() {
        let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "unknown target '{}'; targets: all, {}",
            args.target,
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    if args.write_seeds {
        return write_seeds(&chosen, &corpus);
    }
    if let Err(e) = std::fs::create_dir_all(&finds) {
        eprintln!("cannot create the finds folder {}: {e}", finds.display());
        return ExitCode::FAILURE;
    }
    let finds = finds.canonicalize().unwrap_or(finds);
    guard::install(&finds);
    if let Some(path) = &args.reproduce {
        if chosen.len() != 1 {
            eprintln!("--reproduce needs the input's --target");
            return ExitCode::FAILURE;
        }
        return reproduce(chosen[0], path);
    }
    run::install_panic_hook();
    println!(
        "bitdance-fuzz: seed {}, {} s per target; caps: one allocation <= {} MiB, live total <= {} MiB, one input <= {} s; input size <= {} KiB; finds go to {}",
        args.seed,
        args.seconds,
        alloc::MAX_SINGLE >> 20,
        alloc::MAX_LIVE >> 20,
        guard::HANG_SECS,
        mutate::MAX_INPUT >> 10,
        finds.display()
    );
    let mut total_finds = 0;
    for t in chosen {
        let inputs = load_corpus(t, &corpus);
        let report = run::fuzz(t, inputs, args.seconds, args.seed, &finds);
        println!(
            "  {:<12} {:>8} inputs in {:.1} s ({:.0}/s), {} distinct error kinds, {} distinct accepted, pool {}, slowest {:.1} ms, peak live {:.1} MiB, finds {}",
            t.name,
            report.execs,
            report.secs,
            report.execs as f64 / report.secs.max(1e-9),
            report.errors,
            report.accepted,
            report.pool,
            report.slowest.as_secs_f64() * 1e3,
            report.peak as f64 / (1 << 20) as f64,
            report.finds.len()
        );
        if args.save_slowest {
            let path = finds.join(format!("{}-slowest.bin", t.name));
            match std::fs::write(&path, &report.slowest_input) {
                Ok(()) => println!("    slowest input saved to {}", path.display()),
                Err(e) => eprintln!("cannot save {}: {e}", path.display()),
            }
        }
        if args.list_errors {
            for e in &report.error_list {
                println!("      {e}");
            }
        }
        for f in &report.finds {
            println!(
                "    FIND (panic) saved to {}:\n      {}",
                f.path.display(),
                f.message.replace('\n', "\n      ")
            );
            println!(
                "      reproduce: cargo run -p bitdance-fuzz -- --target {} --reproduce {}",
                t.name,
                f.path.display()
            );
        }
        total_finds += report.finds.len();
    }
    if total_finds > 0 {
        println!("bitdance-fuzz: {total_finds} finds");
        ExitCode::FAILURE
    } else {
        println!("bitdance-fuzz: no finds");
        ExitCode::SUCCESS
    }
}

/// The corpus files of `t` (sorted by name), or its programmatic seeds when the folder is empty.
fn load_corpus(t: &Target, corpus: &Path) -> Vec<Vec<u8>> {
    let dir = corpus.join(t.name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    let files: Vec<Vec<u8>> = paths.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if files.is_empty() {
        eprintln!(
            "bitdance-fuzz: no corpus in {}; using the built-in seeds",
            dir.display()
        );
        return (t.seeds)().into_iter().map(|(_, b)| b).collect();
    }
    files
}

fn write_seeds(chosen: &[&Target], corpus: &Path) -> ExitCode {
    for t in chosen {
        let dir = corpus.join(t.name);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        for (name, bytes) in (t.seeds)() {
            let path = dir.join(&name);
            if let Err(e) = std::fs::write(&path, &bytes) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("{} ({} bytes)", path.display(), bytes.len());
        }
    }
    ExitCode::SUCCESS
}

fn reproduce(t: &'static Target, path: &Path) -> ExitCode {
    let input = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: {} bytes through target {} ({})",
        path.display(),
        input.len(),
        t.name,
        t.about
    );
    match run::exec(t, &input) {
        Ok(outcomes) => {
            for o in outcomes {
                match o {
                    Ok(s) => println!("  ok: {s}"),
                    Err(s) => println!("  error: {s}"),
                }
            }
            println!("no panic");
            ExitCode::SUCCESS
        }
        Err(_) => {
            println!("PANIC (message above)");
            ExitCode::FAILURE
        }
    }
}
