//! The layer the CLI, the desktop app and the web page share around generation: class names and
//! their search, the recipe of an image (everything that determines it), its PNG text chunk, and the hashes that identify a
//! model and a result. Written once here so an image made by any of them re-runs in the others.

mod classes;
mod duration;
mod grid;
mod hash;
mod image_run;
mod model_card;
mod png_text;
mod recipe;

pub use classes::{imagenet_name, ClassMatch, ClassNames};
pub use duration::duration_text;
pub use grid::tile_grid;
pub use hash::{sha256_hex, token_hash, FileHasher};
pub use image_run::{FinishedImage, ImageRun, PreviewPacer};
pub use model_card::{file_role, model_config_of, FileRole, ModelCard};
pub use png_text::{png_text_chunks, with_png_text, MAX_TEXT_BYTES};
pub use recipe::{Recipe, RecipeModel, RunRecord, SampleRequest, RECIPE_KEYWORD, RECIPE_VERSION};
