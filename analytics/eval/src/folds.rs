//! Cross-validation shared by the eval commands: items (cases, series, systems) split into
//! folds, and for each fold the setting chosen on the items outside it.

/// Some items left out together.
#[derive(Debug, Clone)]
pub struct Fold {
    /// What the fold holds (a fault type, a category, a system, a half).
    pub name: String,
    /// Indices of its items.
    pub items: Vec<usize>,
}

impl Fold {
    /// A fold named `name` holding `items`.
    pub fn new(name: impl Into<String>, items: Vec<usize>) -> Self {
        Self {
            name: name.into(),
            items,
        }
    }
}

/// Per fold, the setting `fit` chooses on the `n` items outside it; and per item, the setting of
/// its fold (the one it is scored with).
pub fn fit_outside(
    folds: &[Fold],
    n: usize,
    fit: impl Fn(&[usize]) -> usize,
) -> (Vec<usize>, Vec<usize>) {
    let mut per_item = vec![0; n];
    let chosen = folds
        .iter()
        .map(|fold| {
            let train: Vec<usize> = (0..n).filter(|i| !fold.items.contains(i)).collect();
            let setting = fit(&train);
            for &i in &fold.items {
                per_item[i] = setting;
            }
            setting
        })
        .collect();
    (chosen, per_item)
}

/// The setting of `0..settings` with the highest `key`; a tie keeps `shipped`, then the first.
pub fn best_by<K: PartialOrd>(settings: usize, shipped: usize, key: impl Fn(usize) -> K) -> usize {
    let mut best = (shipped, key(shipped));
    for s in 0..settings {
        let k = key(s);
        if k > best.1 {
            best = (s, k);
        }
    }
    best.0
}

/// Every setting made of one value of `a` and one of `b`, in order of `a` then `b`.
pub fn grid<A: Copy, B: Copy, T>(a: &[A], b: &[B], make: impl Fn(A, B) -> T) -> Vec<T> {
    a.iter()
        .flat_map(|&x| b.iter().map(move |&y| (x, y)))
        .map(|(x, y)| make(x, y))
        .collect()
}

/// Items grouped by `group`, one fold per group in order of first appearance.
pub fn by_group<'a>(groups: impl Iterator<Item = &'a str>) -> Vec<Fold> {
    let mut folds: Vec<Fold> = Vec::new();
    for (i, g) in groups.enumerate() {
        match folds.iter_mut().find(|f| f.name == g) {
            Some(f) => f.items.push(i),
            None => folds.push(Fold::new(g, vec![i])),
        }
    }
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fold_gets_the_setting_fitted_without_it() {
        let folds = by_group(["a", "b", "a"].into_iter());
        assert_eq!(folds[0].items, [0, 2]);
        // The fit picks the setting named by the first training item.
        let (chosen, per_item) = fit_outside(&folds, 3, |train| train[0]);
        assert_eq!(chosen, [1, 0]);
        assert_eq!(per_item, [1, 0, 1]);
    }

    #[test]
    fn a_tie_keeps_the_shipped_setting() {
        assert_eq!(best_by(3, 1, |_| 0), 1);
        assert_eq!(best_by(3, 1, |s| s), 2);
    }
}
