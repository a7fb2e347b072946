//! `bitdance convert IN.pt OUT.safetensors [--ema]`: an official PyTorch checkpoint to
//! safetensors under the same official names, read without executing anything.

use std::path::PathBuf;
use std::process::ExitCode;

use bitdance::io::{read_state_dict, Select};

use crate::files::{read_bytes, write_atomic};

/// Arguments of `bitdance convert`.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// The PyTorch checkpoint (`torch.save` zip archive), e.g. BitDance_B_4x.pt or ae_d16c32.pt.
    input: PathBuf,
    /// The safetensors file to write (f32).
    output: PathBuf,
    /// Read the `ema` weights instead of `model`.
    #[arg(long)]
    ema: bool,
    /// Prefix added to every name, e.g. `vae.` for the standalone autoencoder file so it loads
    /// like the `vae.*` tensors of a model checkpoint.
    #[arg(long, default_value = "")]
    prefix: String,
}

/// Runs `bitdance convert`.
pub fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_bytes(&args.input)?;
    let label = args.input.display().to_string();
    let select = if args.ema { Select::Ema } else { Select::Model };
    let sd = read_state_dict(&label, &bytes, select)?;
    drop(bytes);
    let out = sd.to_safetensors(&args.prefix)?;
    write_atomic(&args.output, &out)?;
    let params: usize = sd.tensors.values().map(|t| t.data.len()).sum();
    let mut dtypes: Vec<&str> = sd.tensors.values().map(|t| t.dtype.as_str()).collect();
    dtypes.sort();
    dtypes.dedup();
    println!(
        "{}: read '{}' ({} tensors, {:.1}M parameters, {}); skipped {:?}; wrote {} (f32)",
        label,
        if sd.key.is_empty() {
            "<bare state dict>"
        } else {
            &sd.key
        },
        sd.tensors.len(),
        params as f64 / 1e6,
        dtypes.join(", "),
        sd.skipped,
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
