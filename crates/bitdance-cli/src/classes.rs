//! Class arguments: an index, or a class name: from the bundled ImageNet list for 1000-class
//! models, or from the names a weight file stores (metadata `bitdance.classes`, a JSON list).

pub use bitdance::model::{stored_class_names as stored_names, CLASSES_KEY};

/// The name of class `index`: a stored name, else the ImageNet name for 1000-class models.
pub fn name_of(index: usize, num_classes: usize, stored: Option<&[String]>) -> Option<String> {
    match stored {
        Some(names) => names.get(index).cloned(),
        None if num_classes == 1000 => imagenet_name(index).map(str::to_string),
        None => None,
    }
}

/// The 1000 ImageNet class names, `index<TAB>name` per line.
const IMAGENET: &str = include_str!("../../../assets/imagenet_classes.tsv");

/// The ImageNet name of class `index`, if the list has one.
pub fn imagenet_name(index: usize) -> Option<&'static str> {
    IMAGENET
        .lines()
        .nth(index)
        .and_then(|l| l.split('\t').nth(1))
}

/// Resolves `arg` (an index below `num_classes`, or a class name, case-insensitive: one of
/// `stored`, or an ImageNet name when the model has 1000 classes) to a class id.
pub fn resolve(arg: &str, num_classes: usize, stored: Option<&[String]>) -> anyhow::Result<u32> {
    if let Ok(index) = arg.trim().parse::<usize>() {
        if index >= num_classes {
            anyhow::bail!(
                "class index {index} is out of range: the model has {num_classes} classes (0..={})",
                num_classes - 1
            );
        }
        return Ok(index as u32);
    }
    if let Some(names) = stored {
        let wanted = arg.trim().to_lowercase();
        return match names.iter().position(|n| n.to_lowercase() == wanted) {
            Some(k) => Ok(k as u32),
            None => anyhow::bail!(
                "unknown class name '{arg}'; this model's classes: {}",
                names.join(", ")
            ),
        };
    }
    if num_classes != 1000 {
        anyhow::bail!(
            "class '{arg}' is not an index, and names are known only for ImageNet models \
             (1000 classes; this one has {num_classes})"
        );
    }
    let wanted = arg.trim().to_lowercase();
    let hits: Vec<usize> = (0..1000)
        .filter(|&i| imagenet_name(i).is_some_and(|n| n.to_lowercase() == wanted))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one as u32),
        [] => {
            let near: Vec<String> = (0..1000)
                .filter_map(|i| imagenet_name(i).map(|n| (i, n)))
                .filter(|(_, n)| n.to_lowercase().contains(&wanted))
                .take(8)
                .map(|(i, n)| format!("{i} {n}"))
                .collect();
            if near.is_empty() {
                anyhow::bail!("unknown ImageNet class name '{arg}'")
            }
            anyhow::bail!(
                "unknown ImageNet class name '{arg}'; names containing it: {}",
                near.join(", ")
            )
        }
        many => anyhow::bail!(
            "ImageNet class name '{arg}' is ambiguous: give one of the indices {many:?}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_names_resolve_and_bad_ones_are_explained() {
        assert_eq!(imagenet_name(0), Some("tench"));
        assert_eq!(imagenet_name(999), Some("toilet tissue"));
        assert_eq!(resolve("207", 1000, None).unwrap(), 207);
        assert_eq!(resolve("Goldfish", 1000, None).unwrap(), 1);
        let e = resolve("1000", 1000, None).unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = resolve("crane", 1000, None).unwrap_err().to_string();
        assert!(e.contains("ambiguous") && e.contains("134"), "{e}");
        let e = resolve("golden", 1000, None).unwrap_err().to_string();
        assert!(e.contains("golden retriever"), "{e}");
        let e = resolve("zzz", 1000, None).unwrap_err().to_string();
        assert!(e.contains("unknown ImageNet class name 'zzz'"), "{e}");
        let e = resolve("tench", 10, None).unwrap_err().to_string();
        assert!(e.contains("only for ImageNet"), "{e}");
        let names = ["coat".to_string(), "bag".to_string()];
        assert_eq!(resolve("Bag", 2, Some(&names)).unwrap(), 1);
        let e = resolve("shoe", 2, Some(&names)).unwrap_err().to_string();
        assert!(e.contains("coat, bag"), "{e}");
    }
}
