//! A model's class names and the search over them that the CLI, the desktop app and the web page
//! share: the names a weight file stores, else ImageNet's for 1000-class models, else indices.

use crate::{Error, Result};

/// The 1000 ILSVRC-2012 classes as WordNet synonym lists, `index<TAB>name, synonym, ...` per
/// line (the list TensorFlow.js's MobileNet ships, Apache-2.0).
const IMAGENET: &str = include_str!("../../../../assets/imagenet_classes.tsv");

/// The ImageNet synonym list of class `index` ("tabby, tabby cat"), if there is one.
pub fn imagenet_name(index: usize) -> Option<&'static str> {
    IMAGENET
        .lines()
        .nth(index)
        .and_then(|l| l.split('\t').nth(1))
}

/// One hit of a class search: the class id and its full name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClassMatch {
    /// Class id (the row of the class table).
    pub index: usize,
    /// The class's full name (every synonym, comma-separated).
    pub name: String,
}

/// The names of a model's classes, one per class id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassNames {
    names: Vec<String>,
    /// Whether the names are only the indices (a model that stores no names and is not ImageNet).
    numbered: bool,
}

impl ClassNames {
    /// The names of a model with `num_classes` classes: `stored` (from its weight file) when it
    /// has one per class, else ImageNet's for 1000 classes, else the indices "0".."n-1".
    pub fn for_model(num_classes: usize, stored: Option<Vec<String>>) -> Self {
        if let Some(names) = stored.filter(|n| n.len() == num_classes) {
            return ClassNames {
                names,
                numbered: false,
            };
        }
        if num_classes == 1000 {
            let names = (0..1000)
                .map(|i| imagenet_name(i).unwrap_or_default().to_string())
                .collect();
            return ClassNames {
                names,
                numbered: false,
            };
        }
        ClassNames {
            names: (0..num_classes).map(|i| i.to_string()).collect(),
            numbered: true,
        }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the model has no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every name, by class id.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The full name of class `index` (every synonym), if it exists.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// The first synonym of class `index` ("tabby" of "tabby, tabby cat"), for file names and
    /// short labels.
    pub fn short_name(&self, index: usize) -> Option<&str> {
        self.name(index)
            .map(|n| n.split(',').next().unwrap_or(n).trim())
    }

    /// How a picker shows class `index`: "281 · tabby, tabby cat", or the name alone when the
    /// name is the index (digit models).
    pub fn label(&self, index: usize) -> String {
        match self.name(index) {
            Some(name) if name == index.to_string() => name.to_string(),
            Some(name) => format!("{index} · {name}"),
            None => index.to_string(),
        }
    }

    /// The classes matching `query` (case-insensitive), best first, at most `limit`: an index,
    /// then a name or synonym equal to the query, then synonyms starting with it, then words
    /// starting with it, then names containing it. An empty query lists classes in order.
    pub fn search(&self, query: &str, limit: usize) -> Vec<ClassMatch> {
        let wanted = query.trim().to_lowercase();
        let mut ranked: Vec<(u8, usize)> = self
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| match_rank(&wanted, i, name).map(|r| (r, i)))
            .collect();
        ranked.sort();
        ranked
            .into_iter()
            .take(limit)
            .map(|(_, index)| ClassMatch {
                index,
                name: self.names[index].clone(),
            })
            .collect()
    }

    /// Resolves `arg` to a class id: an index below the class count, or a name equal to one
    /// synonym of exactly one class (case-insensitive). Errors name the range, the ambiguity
    /// (with the candidate ids) or the names that contain the query.
    pub fn resolve(&self, arg: &str) -> Result<u32> {
        let n = self.len();
        if let Ok(index) = arg.trim().parse::<usize>() {
            if index >= n {
                return Err(invalid(format!(
                    "class index {index} is out of range: the model has {n} classes (0..={})",
                    n.saturating_sub(1)
                )));
            }
            return Ok(index as u32);
        }
        if self.numbered {
            return Err(invalid(format!(
                "class '{arg}' is not an index, and this model stores no class names \
                 ({n} classes: give 0..={})",
                n.saturating_sub(1)
            )));
        }
        let wanted = arg.trim().to_lowercase();
        let hits: Vec<usize> = (0..n)
            .filter(|&i| synonyms(&self.names[i]).any(|s| s.to_lowercase() == wanted))
            .collect();
        match hits.as_slice() {
            [one] => Ok(*one as u32),
            [] => {
                let near: Vec<String> = self
                    .search(&wanted, 8)
                    .into_iter()
                    .map(|m| format!("{} {}", m.index, m.name))
                    .collect();
                if near.is_empty() {
                    Err(invalid(format!("unknown class name '{arg}'")))
                } else {
                    Err(invalid(format!(
                        "unknown class name '{arg}'; names containing it: {}",
                        near.join("; ")
                    )))
                }
            }
            many => Err(invalid(format!(
                "class name '{arg}' is ambiguous: give one of the indices {many:?}"
            ))),
        }
    }
}

fn invalid(message: String) -> Error {
    Error::Invalid(message)
}

/// The comma-separated synonyms of a full name.
fn synonyms(name: &str) -> impl Iterator<Item = &str> {
    name.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// How well `name` (class `index`) matches the lower-cased `wanted`: lower is better, `None`
/// when it does not match.
fn match_rank(wanted: &str, index: usize, name: &str) -> Option<u8> {
    if wanted.is_empty() {
        return Some(0);
    }
    if wanted == index.to_string() {
        return Some(0);
    }
    let lower = name.to_lowercase();
    let syns: Vec<&str> = synonyms(&lower).collect();
    if syns.contains(&wanted) {
        return Some(1);
    }
    if syns.iter().any(|s| s.starts_with(wanted)) {
        return Some(2);
    }
    let word_start = lower
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w.starts_with(wanted));
    if word_start {
        return Some(3);
    }
    if lower.contains(wanted) {
        return Some(4);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imagenet() -> ClassNames {
        ClassNames::for_model(1000, None)
    }

    #[test]
    fn imagenet_names_are_the_full_synonym_lists() {
        let c = imagenet();
        assert_eq!(c.len(), 1000);
        assert_eq!(c.name(281), Some("tabby, tabby cat"));
        assert_eq!(c.short_name(281), Some("tabby"));
        assert_eq!(c.name(0), Some("tench, Tinca tinca"));
        assert!(c.name(999).unwrap().starts_with("toilet tissue"));
        assert_eq!(c.label(207), "207 · golden retriever");
    }

    #[test]
    fn search_ranks_exact_then_prefix_then_words_then_substrings() {
        let c = imagenet();
        let tabby = c.search("tabby", 5);
        assert_eq!(tabby[0].index, 281, "{tabby:?}");
        let retrievers: Vec<usize> = c.search("Retriever", 20).iter().map(|m| m.index).collect();
        for id in [205, 206, 207, 208, 209] {
            assert!(retrievers.contains(&id), "{retrievers:?}");
        }
        assert_eq!(c.search("207", 3)[0].index, 207);
        assert_eq!(c.search("", 3).len(), 3);
        assert!(c.search("zzzz", 5).is_empty());
        assert_eq!(
            c.search("cat", 400).len(),
            c.search("cat", 1000).len().min(400)
        );
    }

    #[test]
    fn resolve_takes_indices_and_synonyms_and_explains_failures() {
        let c = imagenet();
        assert_eq!(c.resolve("207").unwrap(), 207);
        assert_eq!(c.resolve("Goldfish").unwrap(), 1);
        assert_eq!(c.resolve("tabby cat").unwrap(), 281);
        let e = c.resolve("1000").unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = c.resolve("crane").unwrap_err().to_string();
        assert!(e.contains("ambiguous") && e.contains("134"), "{e}");
        let e = c.resolve("golden").unwrap_err().to_string();
        assert!(e.contains("golden retriever"), "{e}");
        let e = c.resolve("zzz").unwrap_err().to_string();
        assert!(e.contains("unknown class name 'zzz'"), "{e}");
    }

    #[test]
    fn stored_names_win_and_models_without_names_take_indices() {
        let stored = ClassNames::for_model(2, Some(vec!["coat".into(), "bag".into()]));
        assert_eq!(stored.resolve("Bag").unwrap(), 1);
        let e = stored.resolve("shoe").unwrap_err().to_string();
        assert!(e.contains("unknown class name 'shoe'"), "{e}");
        let digits = ClassNames::for_model(10, None);
        assert_eq!(digits.label(3), "3");
        assert_eq!(digits.resolve("3").unwrap(), 3);
        let e = digits.resolve("tench").unwrap_err().to_string();
        assert!(e.contains("stores no class names"), "{e}");
        let wrong_count = ClassNames::for_model(3, Some(vec!["a".into()]));
        assert_eq!(wrong_count.name(2), Some("2"));
    }
}
