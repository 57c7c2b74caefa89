//! "Did you mean ...?" for misspelt keys and values.

/// The candidates closest to `typo`, if any is close enough to be a plausible misspelling.
///
/// Case is ignored when measuring, because keys are case-sensitive and `vip4` for `VIP4` is
/// the likeliest slip of all.
pub fn closest<'a>(typo: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let typo_lower = typo.to_lowercase();
    let scored: Vec<(usize, &'a str)> = candidates
        .iter()
        .map(|candidate| {
            (
                edit_distance(&typo_lower, &candidate.to_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= tolerated_distance(candidate))
        .collect();
    let Some(best) = scored.iter().map(|(distance, _)| *distance).min() else {
        return Vec::new();
    };
    scored
        .into_iter()
        .filter(|(distance, _)| *distance == best)
        .map(|(_, candidate)| candidate)
        .collect()
}

/// `" (did you mean 'x'?)"`, `" (did you mean 'x' or 'y'?)"`, or nothing.
pub fn did_you_mean(typo: &str, candidates: &[&str]) -> String {
    let quoted: Vec<String> = closest(typo, candidates)
        .iter()
        .map(|name| format!("'{name}'"))
        .collect();
    if quoted.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", quoted.join(" or "))
    }
}

/// Short names tolerate one slip, longer ones a slip per three characters; more than that and
/// the suggestion would be a guess that misleads.
fn tolerated_distance(candidate: &str) -> usize {
    (candidate.chars().count() / 3).max(1)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours each cost one, since a swap is as common a typo as a wrong letter.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        table[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        table[at(0, j)] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[at(i - 1, j)] + 1)
                .min(table[at(i, j - 1)] + 1)
                .min(table[at(i - 1, j - 1)] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[at(i - 2, j - 2)] + 1);
            }
            table[at(i, j)] = best;
        }
    }
    table[at(a.len(), b.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &[
        "VIP4",
        "VIP6",
        "server4",
        "server6",
        "strategy",
        "stickiness",
        "port_alive",
    ];

    #[test]
    fn distances() {
        assert_eq!(edit_distance("strategi", "strategy"), 1);
        assert_eq!(edit_distance("stratgey", "strategy"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(
            did_you_mean("strategi", KEYS),
            " (did you mean 'strategy'?)"
        );
        assert_eq!(did_you_mean("vip4", KEYS), " (did you mean 'VIP4'?)");
        assert_eq!(
            did_you_mean("portalive", KEYS),
            " (did you mean 'port_alive'?)"
        );
    }

    #[test]
    fn ties_are_all_offered() {
        assert_eq!(
            did_you_mean("server", KEYS),
            " (did you mean 'server4' or 'server6'?)"
        );
    }

    #[test]
    fn nothing_when_nothing_is_close() {
        assert_eq!(did_you_mean("frobnicate", KEYS), "");
        assert_eq!(did_you_mean("x", KEYS), "");
    }
}
