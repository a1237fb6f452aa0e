//! Kubernetes resource quantities (`250m`, `1.5`, `512Mi`, `1G`, `2e3`) to and from plain
//! numbers: CPU in cores, memory in bytes.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
#[error("invalid quantity {input:?}: {reason}")]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses any Kubernetes quantity into its plain value (`250m` -> 0.25, `1Ki` -> 1024).
fn parse_quantity(input: &str) -> Result<f64, QuantityError> {
    let err = |reason| QuantityError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let base: f64 = number.parse().map_err(|_| err("not a number"))?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| err("bad exponent"))?;
            10f64.powi(exp)
        }
        _ => return Err(err("unknown suffix")),
    };
    let value = base * factor;
    if !value.is_finite() || value < 0.0 {
        return Err(err("must be a finite, non-negative number"));
    }
    Ok(value)
}

/// CPU quantity in cores.
pub fn parse_cpu(input: &str) -> Result<f64, QuantityError> {
    parse_quantity(input)
}

/// Memory quantity in bytes.
pub fn parse_memory(input: &str) -> Result<f64, QuantityError> {
    parse_quantity(input)
}

/// Formats cores the way people write them: whole cores as `2`, otherwise millicores `250m`
/// (rounded up to the next millicore, the API's own resolution).
pub fn format_cpu(cores: f64) -> String {
    let milli = (cores * 1000.0 - 1e-9).ceil().max(0.0) as u64;
    if milli.is_multiple_of(1000) && milli > 0 {
        format!("{}", milli / 1000)
    } else {
        format!("{milli}m")
    }
}

/// Formats bytes with the largest binary suffix that divides them exactly (`1Gi`, `384Mi`),
/// otherwise whole mebibytes rounded up (requests are never rounded down).
pub fn format_memory(bytes: f64) -> String {
    const MI: u64 = 1024 * 1024;
    const GI: u64 = 1024 * MI;
    let b = bytes.ceil().max(0.0) as u64;
    if b == 0 {
        return "0".into();
    }
    if b.is_multiple_of(GI) {
        format!("{}Gi", b / GI)
    } else if b.is_multiple_of(MI) {
        format!("{}Mi", b / MI)
    } else if b < MI && b.is_multiple_of(1024) {
        format!("{}Ki", b / 1024)
    } else {
        format!("{}Mi", b.div_ceil(MI))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_suffix_form() {
        let cases = [
            ("250m", 0.25),
            ("1", 1.0),
            ("1.5", 1.5),
            ("100n", 1e-7),
            ("1Ki", 1024.0),
            ("512Mi", 512.0 * 1048576.0),
            ("2Gi", 2.0 * 1073741824.0),
            ("1G", 1e9),
            ("1k", 1e3),
            ("2e3", 2000.0),
            ("1E", 1e18),
            (" 3 ", 3.0),
        ];
        for (input, want) in cases {
            let got = parse_cpu(input).unwrap();
            assert!((got - want).abs() <= want * 1e-12, "{input}: got {got}, want {want}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in ["", "abc", "1Xi", "-1", "1e", "m"] {
            assert!(parse_memory(input).is_err(), "{input} should not parse");
        }
    }

    #[test]
    fn formats_cpu_and_memory() {
        assert_eq!(format_cpu(0.25), "250m");
        assert_eq!(format_cpu(2.0), "2");
        assert_eq!(format_cpu(0.0101), "11m");
        assert_eq!(format_cpu(0.0), "0m");
        assert_eq!(format_memory(1073741824.0), "1Gi");
        assert_eq!(format_memory(384.0 * 1048576.0), "384Mi");
        assert_eq!(format_memory(100.0 * 1048576.0 + 1.0), "101Mi");
        assert_eq!(format_memory(4096.0), "4Ki");
    }

    #[test]
    fn round_trips() {
        for s in ["250m", "2", "384Mi", "1Gi"] {
            let v = parse_cpu(s).unwrap();
            let back = if s.ends_with('i') {
                format_memory(v)
            } else {
                format_cpu(v)
            };
            assert_eq!(back, s);
        }
    }
}
