//! Parameter value types with units, parsed from strings with [`FromStr`] so that they work with
//! [`Context::param`](crate::Context::param).

use std::fmt;
use std::str::FromStr;

/// A number of bytes, written as a plain integer or with a unit: `10GiB`, `1.5 TB`, `512MiB`, `1048576`.
///
/// Units are case-insensitive: `B`; decimal `kB`, `MB`, `GB`, `TB`, `PB`, `EB` (powers of 1000); binary `KiB`,
/// `MiB`, `GiB`, `TiB`, `PiB`, `EiB` (powers of 1024). Single letters (`K`, `G`, ...) are rejected because tools
/// disagree on whether they mean 1000 or 1024. Fractions round down to a whole byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

const UNITS: [(&str, u64); 13] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("pb", 1_000_000_000_000_000),
    ("eb", 1_000_000_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("pib", 1 << 50),
    ("eib", 1 << 60),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<ByteSize, String> {
        let s = s.trim();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, unit) = (&s[..split], s[split..].trim());
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() {
            return Err("expected a number of bytes, e.g. 10GiB".into());
        }
        if frac.contains('.') || frac.len() > 18 {
            return Err(format!("malformed number {number:?}"));
        }
        let unit_lower = unit.to_ascii_lowercase();
        let multiplier = match unit_lower.as_str() {
            "" => 1,
            "byte" | "bytes" => 1,
            "k" | "m" | "g" | "t" | "p" | "e" => {
                let u = unit.to_ascii_uppercase();
                return Err(format!(
                    "ambiguous unit {unit:?}: write {u}B (powers of 1000) or {u}iB (powers of 1024)"
                ));
            }
            u => match UNITS.iter().find(|(name, _)| *name == u) {
                Some(&(_, m)) => m,
                None => {
                    return Err(format!(
                        "unknown unit {unit:?} (expected B, kB, MB, GB, TB, KiB, MiB, GiB, TiB, ...)"
                    ));
                }
            },
        };
        let digits = |d: &str| -> Result<u128, String> {
            if d.is_empty() {
                Ok(0)
            } else {
                d.parse::<u128>().map_err(|_| format!("malformed number {number:?}"))
            }
        };
        let scale = 10u128.pow(frac.len() as u32);
        let scaled = digits(int)?
            .checked_mul(scale)
            .and_then(|v| v.checked_add(digits(frac).ok()?))
            .ok_or_else(|| format!("{s:?} is too large"))?;
        let bytes = scaled
            .checked_mul(u128::from(multiplier))
            .map(|v| v / scale)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| format!("{s:?} is too large (at most 16 EiB)"))?;
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// In the largest binary unit that fits, with up to two decimals: `10 GiB`, `1.5 MiB`, `512 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const BINARY: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let n = self.0;
        if n < 1024 {
            return write!(f, "{n} B");
        }
        let exp = ((63 - n.leading_zeros()) / 10).min(6) as usize;
        let unit = 1u64 << (10 * exp);
        if n.is_multiple_of(unit) {
            return write!(f, "{} {}", n / unit, BINARY[exp - 1]);
        }
        // Integer arithmetic rounded to hundredths: float formatting would add ~20 KB to every plugin that prints sizes.
        let hundredths = (u128::from(n) * 100 + u128::from(unit / 2)) / u128::from(unit);
        let (whole, frac) = (hundredths / 100, hundredths % 100);
        let unit = BINARY[exp - 1];
        match frac {
            0 => write!(f, "{whole} {unit}"),
            _ if frac % 10 == 0 => write!(f, "{whole}.{} {unit}", frac / 10),
            _ => write!(f, "{whole}.{frac:02} {unit}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        let p = |s: &str| s.parse::<ByteSize>().map(ByteSize::bytes);
        assert_eq!(p("1048576"), Ok(1_048_576));
        assert_eq!(p("10GiB"), Ok(10 << 30));
        assert_eq!(p(" 10 gib "), Ok(10 << 30));
        assert_eq!(p("1.5KiB"), Ok(1536));
        assert_eq!(p("2kB"), Ok(2000));
        assert_eq!(p("0.5MB"), Ok(500_000));
        assert!(p("16EiB").is_err());
        assert!(p("10G").unwrap_err().contains("ambiguous"));
        assert!(p("10XB").unwrap_err().contains("unknown unit"));
        assert!(p("").is_err());
        assert!(p("1.2.3MB").is_err());
        assert!(p("GiB").is_err());
    }

    #[test]
    fn sizes_display_in_binary_units() {
        assert_eq!(ByteSize(512).to_string(), "512 B");
        assert_eq!(ByteSize(10 << 30).to_string(), "10 GiB");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
        assert_eq!(ByteSize(1450).to_string(), "1.42 KiB");
        assert_eq!(ByteSize(1034).to_string(), "1.01 KiB");
        assert_eq!(ByteSize(u64::MAX).to_string(), "16 EiB");
    }
}
