//! Plain-language pieces of the reasons attached to every recommended value: numbers as
//! people read them ("40,320 samples", "14.0 d", "+15 %").

/// `40320` -> `40,320`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A fraction as a signed whole percentage: `0.15` -> `+15 %`.
pub fn signed_percent(fraction: f64) -> String {
    format!("{:+.0} %", fraction * 100.0)
}

/// A quantile as people name it: `0.95` -> `p95`, `0.999` -> `p99.9`.
pub fn percentile_name(q: f64) -> String {
    let p = q * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("p{}", p.round())
    } else {
        format!("p{p:.1}")
    }
}

/// Seconds as days with one decimal: `1209600` -> `14.0 d`.
pub fn days(seconds: i64) -> String {
    format!("{:.1} d", seconds as f64 / 86_400.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (40_320, "40,320"),
            (1_234_567, "1,234,567"),
        ];
        for (n, want) in cases {
            assert_eq!(thousands(n), want);
        }
        assert_eq!(signed_percent(0.15), "+15 %");
        assert_eq!(signed_percent(0.0), "+0 %");
        assert_eq!(percentile_name(0.95), "p95");
        assert_eq!(percentile_name(0.999), "p99.9");
        assert_eq!(days(14 * 86_400), "14.0 d");
    }
}
