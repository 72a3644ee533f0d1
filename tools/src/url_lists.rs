//! BitTornado's URL list syntaxes: announce tiers `a,b|c` (commas within a tier, pipes
//! between tiers) and http seeds `a|b`; and how BitTornado prints them back.

/// `a,b|c` → `[[a, b], [c]]`. Empty URLs and empty tiers are dropped; surrounding
/// whitespace is trimmed.
pub fn parse_tiers(text: &str) -> Vec<Vec<String>> {
    text.split('|')
        .map(|tier| {
            tier.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|tier| !tier.is_empty())
        .collect()
}

/// `a|b` → `[a, b]`, empty entries dropped.
pub fn parse_pipe_list(text: &str) -> Vec<String> {
    text.split('|')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// Tiers as BitTornado prints them: `a,b|c`.
pub fn format_tiers(tiers: &[Vec<String>]) -> String {
    tiers
        .iter()
        .map(|t| t.join(","))
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bittornado_syntax() {
        let t = parse_tiers("http://a/ann, http://b/ann|udp://c:1||");
        assert_eq!(
            t,
            vec![
                vec!["http://a/ann".to_string(), "http://b/ann".into()],
                vec!["udp://c:1".into()]
            ]
        );
        assert_eq!(format_tiers(&t), "http://a/ann,http://b/ann|udp://c:1");
        assert_eq!(
            parse_pipe_list("http://s1/|http://s2/"),
            ["http://s1/", "http://s2/"]
        );
        assert!(parse_tiers("").is_empty());
    }
}
