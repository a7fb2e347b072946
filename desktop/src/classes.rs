//! The 1000 ImageNet class names, compiled in from assets/imagenet_classes.tsv ("id\tname").

const TSV: &str = include_str!("../../assets/imagenet_classes.tsv");

/// Class names indexed by ImageNet class id (0..1000).
pub fn names() -> Vec<&'static str> {
    TSV.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(_, name)| name.trim())
        .collect()
}

/// Lines in the table, counted at compile time so `cargo check` catches a truncated file.
const fn line_count(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            n += 1;
        }
        i += 1;
    }
    n
}

const _: () = assert!(
    line_count(TSV) == 1000,
    "assets/imagenet_classes.tsv must list 1000 classes"
);

#[cfg(test)]
mod tests {
    #[test]
    fn thousand_classes_in_id_order() {
        let ids: Vec<usize> = super::TSV
            .lines()
            .map(|l| l.split_once('\t').unwrap().0.parse().unwrap())
            .collect();
        assert_eq!(ids, (0..1000).collect::<Vec<_>>());
        let names = super::names();
        assert_eq!(names[0], "tench");
        assert_eq!(names[999], "toilet tissue");
    }
}
