//! Embeds the bundled fine-tuning sample: the first 24 images of each Fashion-MNIST class of
//! `assets/datasets/fashion-mnist/train` (the same sample the web studio serves).

use std::fmt::Write;
use std::path::Path;

const PER_CLASS: usize = 24;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/datasets/fashion-mnist/train");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut classes: Vec<_> = std::fs::read_dir(&root)
        .expect("the bundled dataset")
        .map(|e| e.expect("a class folder").path())
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut out = String::from("/// (class folder, file name, PNG bytes) of the bundled sample.\npub const BUNDLED: &[(&str, &str, &[u8])] = &[\n");
    for class in &classes {
        let mut files: Vec<_> = std::fs::read_dir(class)
            .expect("a class folder")
            .map(|e| e.expect("an image").path())
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .collect();
        files.sort();
        for file in files.iter().take(PER_CLASS) {
            let name = |p: &Path| p.file_name().unwrap().to_string_lossy().to_string();
            writeln!(
                out,
                "    ({:?}, {:?}, include_bytes!({:?})),",
                name(class),
                name(file),
                file.canonicalize().unwrap().display().to_string()
            )
            .unwrap();
        }
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("bundled_dataset.rs");
    std::fs::write(dest, out).expect("writing the bundled dataset's list");
}
