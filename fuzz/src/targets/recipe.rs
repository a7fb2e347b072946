//! Recipes in PNG text chunks: `Recipe::from_png` (the chunk parser, then the JSON and its
//! checks), as `bitdance generate --recipe` and the apps read a dropped image; a recipe that
//! parses is written back into the file and must read back equal.

use bitdance::model::{CfgSchedule, Precision};
use bitdance::studio::{png_text_chunks, Recipe, RECIPE_KEYWORD};
use image::{ImageFormat, RgbImage};

use super::image::{chunks, fix_crcs};
use super::{Outcome, Target};
use crate::mutate;
use crate::rng::Rng;

/// The target.
pub const TARGET: Target = Target {
    name: "recipe",
    about: "Recipe::from_png (PNG chunks, tEXt, recipe JSON and its checks) and its round trip",
    run,
    mutate: mutate_text,
    dict: &[
        b"tEXt", b"IEND", b"bitdance-recipe", b"\"classes\":", b"\"batch\":", b"\"head_steps\":",
        b"\"cfg\":", b"\"seed\":", b"\"version\":", b"\"linear\"", b"\"f16\"", b"null", b"1e39",
        b"-0", b"[]",
    ],
    seeds,
};

fn run(data: &[u8]) -> Vec<Outcome> {
    let chunks = png_text_chunks(data).map(|t| format!("{} text chunk(s)", t.len()));
    let recipe = match Recipe::from_png("fuzz.png", data) {
        Ok(r) => {
            let again = r.into_png(data).expect("a file that held a recipe takes it back");
            let back = Recipe::from_png("again.png", &again).expect("the written recipe reads");
            assert_eq!(back, r, "recipe round trip");
            Ok(format!("recipe of {} image(s)", r.classes.len()))
        }
        Err(e) => Err(e.to_string()),
    };
    vec![chunks.map_err(|e| e.to_string()), recipe]
}

/// The text of a `tEXt` chunk (or any chunk) edited with the generic mutations, its length
/// and every CRC fixed, so most mutants reach the JSON.
fn mutate_text(rng: &mut Rng, data: &[u8], pool: &[Vec<u8>]) -> Option<Vec<u8>> {
    let list = chunks(data);
    let text: Vec<_> = list
        .iter()
        .filter(|(at, _)| data.get(at + 4..at + 8) == Some(b"tEXt"))
        .collect();
    let &(at, len) = if text.is_empty() || rng.below(4) == 0 {
        list.get(rng.below(list.len().max(1)))?
    } else {
        text[rng.below(text.len())]
    };
    let mut body = data[at + 8..at + 8 + len].to_vec();
    if !mutate::replace_number(rng, &mut body) {
        mutate::mutate_once(rng, &mut body, pool, TARGET.dict);
    }
    let mut out = data.to_vec();
    out.splice(at + 8..at + 8 + len, body.iter().copied());
    out[at..at + 4].copy_from_slice(&(body.len() as u32).to_be_bytes());
    fix_crcs(&mut out);
    Some(out)
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut png = Vec::new();
    RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8 * 60, y as u8 * 80, 7]))
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .expect("encode a seed image");
    let recipe = Recipe::example();
    let with = recipe.into_png(&png).expect("a seed recipe");
    let both = bitdance::studio::with_png_text(&with, "Comment", "made by bitdance")
        .expect("a comment chunk");
    let mut vae = recipe.clone();
    vae.vae_sha256 = Some("ae".repeat(32));
    vae.precision = Precision::F32;
    vae.schedule = CfgSchedule::Constant;
    let keyword_only = bitdance::studio::with_png_text(&png, RECIPE_KEYWORD, "{}").expect("{}");
    vec![
        ("recipe-png.bin".into(), with),
        ("recipe-and-comment-png.bin".into(), both),
        ("recipe-vae-png.bin".into(), vae.into_png(&png).expect("a seed recipe")),
        ("empty-recipe-png.bin".into(), keyword_only),
        ("plain-png.bin".into(), png),
    ]
}
