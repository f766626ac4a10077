//! "Did you mean": the known name nearest to a mistyped one, for the errors that list what
//! exists (verbs, datasets, layers). Near means within a few edits (a transposition counts as
//! one: `shwo` → `show`) or the only known name the word begins.

const MAX_WORD: usize = 256;

/// The known name `word` most likely meant, if one is near enough to guess.
pub fn nearest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    // Longer than any name: no guess, and no quadratic work on a pasted blob.
    if word.len() > MAX_WORD {
        return None;
    }
    let word = word.to_ascii_lowercase();
    // A third of the word's length, at least one: `lod` → `load`, but `x` is nobody's typo.
    let limit = (word.chars().count() / 3).max(1);
    let near: Vec<(usize, &str)> = known
        .iter()
        .map(|k| (distance(&word, &k.to_ascii_lowercase()), *k))
        .filter(|&(d, k)| d > 0 && d <= limit && d < k.chars().count())
        .collect();
    if let Some(&(best, k)) = near.iter().min_by_key(|&&(d, _)| d) {
        // `conv` is as near to conv1 as to conv2: a tie is no guess.
        let ties = near.iter().filter(|&&(d, _)| d == best).count();
        return (ties == 1).then_some(k);
    }
    let mut prefixed = known
        .iter()
        .filter(|k| word.len() >= 2 && k.len() > word.len())
        .filter(|k| k.to_ascii_lowercase().starts_with(&word));
    match (prefixed.next(), prefixed.next()) {
        (Some(k), None) => Some(*k),
        _ => None,
    }
}

/// The list an error shows after an unknown name: `did you mean 'show'? verbs: load, show, …`
/// (`label` names the list; `none` when it is empty).
pub fn listing(word: &str, known: &[&str], label: &str) -> String {
    let list = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    match nearest(word, known) {
        Some(k) => format!("did you mean '{k}'? {label}: {list}"),
        None => format!("{label}: {list}"),
    }
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost one.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERBS: [&str; 5] = ["load", "show", "save", "calibrate", "compare"];

    #[test]
    fn typos_find_their_verb() {
        assert_eq!(nearest("lod", &VERBS), Some("load"));
        assert_eq!(nearest("shwo", &VERBS), Some("show"));
        assert_eq!(nearest("SAVEE", &VERBS), Some("save"));
        assert_eq!(nearest("calib", &VERBS), Some("calibrate"));
        assert_eq!(nearest("calibrat", &VERBS), Some("calibrate"));
    }

    #[test]
    fn far_or_ambiguous_words_get_no_guess() {
        assert_eq!(nearest("frobnicate", &VERBS), None);
        assert_eq!(nearest("x", &VERBS), None);
        assert_eq!(nearest("load", &VERBS), None, "an exact name is not a typo");
        assert_eq!(nearest("co", &["compare", "convert"]), None);
        assert_eq!(nearest("conv", &["conv1", "conv2"]), None);
        assert_eq!(nearest("covn2", &["conv1", "conv2"]), Some("conv2"));
        assert_eq!(nearest(&"a".repeat(10_000), &VERBS), None);
    }

    #[test]
    fn listing_names_the_guess_then_everything() {
        assert_eq!(
            listing("tset", &["calib", "test"], "loaded"),
            "did you mean 'test'? loaded: calib, test"
        );
        assert_eq!(listing("t", &[], "loaded"), "loaded: none");
        assert_eq!(distance("abc", "acb"), 1);
        assert_eq!(distance("", "abc"), 3);
    }
}
