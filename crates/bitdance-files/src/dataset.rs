//! Image folders for training: one sub-folder per class (sorted names), PNG and JPEG, each
//! image resized and center-cropped as the official ADM-style `center_crop_arr` does (box
//! halving while the short side is at least twice the target, then bicubic to the target
//! short side, then the center crop), stored as f32 CHW in [-1, 1].

use std::path::{Path, PathBuf};

use anyhow::Context;
use bitdance::train::TrainingImages;

/// Most bytes the pixels of a loaded image folder may take (f32, [N, 3, R, R]).
const MAX_DATASET_BYTES: u64 = 8 << 30;

/// A loaded image folder: the core's `TrainingImages` (class names are the sub-folder names,
/// sorted), and what was skipped.
pub struct ImageFolder {
    data: TrainingImages,
    /// Files that are not PNG or JPEG (by extension), skipped.
    pub skipped: usize,
}

impl std::ops::Deref for ImageFolder {
    type Target = TrainingImages;
    fn deref(&self) -> &TrainingImages {
        &self.data
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        .unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the folder {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort();
    Ok(entries)
}

/// The class folders of an image folder (its sub-folders, sorted by name), as `ImageFolder::load`
/// reads them; an error names a folder without any.
pub fn class_folders(root: &Path) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = sorted_entries(root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    if names.is_empty() {
        anyhow::bail!(
            "{}: no class folders (expected one sub-folder of images per class)",
            root.display()
        );
    }
    Ok(names)
}

impl ImageFolder {
    /// The images, without the folder's notes.
    pub fn into_images(self) -> TrainingImages {
        self.data
    }

    /// Loads every PNG/JPEG under `root/<class>/` at `resolution`; errors name the folder or
    /// file at fault (no class folders, an empty class, an unreadable image).
    pub fn load(root: &Path, resolution: usize) -> anyhow::Result<Self> {
        if resolution == 0 {
            anyhow::bail!("image resolution must be positive");
        }
        let class_dirs: Vec<PathBuf> = sorted_entries(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if class_dirs.is_empty() {
            anyhow::bail!(
                "{}: no class folders (expected one sub-folder of images per class)",
                root.display()
            );
        }
        // Every class's image files first, so the memory the pixels will take is known (and
        // refused above the budget) before one image is decoded.
        let mut listed = Vec::with_capacity(class_dirs.len());
        let mut skipped = 0;
        for dir in &class_dirs {
            let (images, others): (Vec<PathBuf>, Vec<PathBuf>) = sorted_entries(dir)?
                .into_iter()
                .partition(|f| f.is_file() && is_image(f));
            skipped += others.len();
            if images.is_empty() {
                anyhow::bail!("class folder {} holds no PNG or JPEG image", dir.display());
            }
            listed.push(images);
        }
        let count: usize = listed.iter().map(Vec::len).sum();
        let bytes = (count as u64).saturating_mul(3 * 4 * (resolution as u64).pow(2));
        anyhow::ensure!(
            bytes <= MAX_DATASET_BYTES,
            "{}: {count} image(s) at {resolution}x{resolution} take {:.1} GiB as f32 pixels, more \
             than the {} GiB a dataset may hold in memory; train on a subset",
            root.display(),
            bytes as f64 / (1u64 << 30) as f64,
            MAX_DATASET_BYTES >> 30
        );
        let mut data = Self {
            data: TrainingImages::new(resolution),
            skipped,
        };
        for (dir, files) in class_dirs.iter().zip(listed) {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let label = data.data.class_id(&name);
            for file in files {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("reading the image {}", file.display()))?;
                data.data
                    .push_encoded(&file.display().to_string(), &bytes, label)?;
            }
        }
        if data.skipped > 0 {
            eprintln!(
                "note: {} entries of {} are not PNG or JPEG files and were skipped",
                data.skipped,
                root.display()
            );
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("bitdance-dataset-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn folders_load_crop_centered_and_flip() {
        let d = temp("ok");
        std::fs::create_dir_all(d.join("b-cat")).unwrap();
        std::fs::create_dir_all(d.join("a-dog")).unwrap();
        // 6x4 image: the red column x = 3 is the center of the crop to 4x4 (columns 1..5).
        let img = RgbImage::from_fn(6, 4, |x, _| {
            image::Rgb(if x == 3 { [255, 0, 0] } else { [0, 0, 255] })
        });
        img.save(d.join("a-dog/1.png")).unwrap();
        RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]))
            .save(d.join("b-cat/1.jpg"))
            .unwrap();
        std::fs::write(d.join("b-cat/notes.txt"), "not an image").unwrap();
        let data = ImageFolder::load(&d, 4).unwrap();
        assert_eq!(data.classes, ["a-dog", "b-cat"]);
        assert_eq!((data.len(), data.skipped), (2, 1));
        assert_eq!((data.label(0), data.label(1)), (0, 1));
        let red = &data.image(0)[..16];
        // Row 0 of the red plane: columns 1..5 of the source -> red at crop column 2.
        assert_eq!(red[..4], [-1.0, -1.0, 1.0, -1.0]);
        let (flipped, labels) = data.batch(&[0, 1], &[true, false]);
        assert_eq!(flipped[..4], [-1.0, 1.0, -1.0, -1.0]);
        assert_eq!(labels, [0, 1]);
        assert!(
            flipped[48..].iter().all(|v| (*v - 1.0).abs() < 0.02),
            "white JPEG"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_folders_and_files_are_named() {
        let d = temp("bad");
        let err = ImageFolder::load(&d, 4).err().unwrap().to_string();
        assert!(err.contains("no class folders"), "{err}");
        std::fs::create_dir_all(d.join("empty")).unwrap();
        let err = ImageFolder::load(&d, 4).err().unwrap().to_string();
        assert!(
            err.contains("empty") && err.contains("no PNG or JPEG"),
            "{err}"
        );
        std::fs::write(d.join("empty/broken.png"), b"\x89PNG broken").unwrap();
        let err = format!("{:#}", ImageFolder::load(&d, 4).err().unwrap());
        assert!(err.contains("broken.png"), "{err}");
        // Pixels past the budget are refused from the file count, before any image is read.
        let err = ImageFolder::load(&d, 40_000).err().unwrap().to_string();
        assert!(
            err.contains("1 image(s) at 40000x40000") && err.contains("train on a subset"),
            "{err}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
