//! Class arguments: an index, or for ImageNet-1k configs a class name from the bundled list.

/// The 1000 ImageNet class names, `index<TAB>name` per line.
const IMAGENET: &str = include_str!("../../../assets/imagenet_classes.tsv");

/// The ImageNet name of class `index`, if the list has one.
pub fn imagenet_name(index: usize) -> Option<&'static str> {
    IMAGENET
        .lines()
        .nth(index)
        .and_then(|l| l.split('\t').nth(1))
}

/// Resolves `arg` (an index below `num_classes`, or an ImageNet class name, case-insensitive,
/// when the model has 1000 classes) to a class id.
pub fn resolve(arg: &str, num_classes: usize) -> anyhow::Result<u32> {
    if let Ok(index) = arg.trim().parse::<usize>() {
        if index >= num_classes {
            anyhow::bail!(
                "class index {index} is out of range: the model has {num_classes} classes (0..={})",
                num_classes - 1
            );
        }
        return Ok(index as u32);
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
        assert_eq!(resolve("207", 1000).unwrap(), 207);
        assert_eq!(resolve("Goldfish", 1000).unwrap(), 1);
        let e = resolve("1000", 1000).unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = resolve("crane", 1000).unwrap_err().to_string();
        assert!(e.contains("ambiguous") && e.contains("134"), "{e}");
        let e = resolve("golden", 1000).unwrap_err().to_string();
        assert!(e.contains("golden retriever"), "{e}");
        let e = resolve("zzz", 1000).unwrap_err().to_string();
        assert!(e.contains("unknown ImageNet class name 'zzz'"), "{e}");
        let e = resolve("tench", 10).unwrap_err().to_string();
        assert!(e.contains("only for ImageNet"), "{e}");
    }
}
