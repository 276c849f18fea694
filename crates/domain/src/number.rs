//! Numbers as people read them on screen and in messages.

/// 1234567 as "1 234 567": counts read at a glance (a thin gap, not a comma, so no locale reads
/// it as a decimal point).
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(5_001), "5 001");
        assert_eq!(grouped(1_234_567), "1 234 567");
        assert_eq!(grouped(-1_234), "-1 234");
        assert_eq!(grouped(i64::MIN), "-9 223 372 036 854 775 808");
    }
}
