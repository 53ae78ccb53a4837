//! Numbers written as decimal digits straight into a line, without allocating.

/// Appends `n` in decimal without allocating.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    push_padded(out, n, 1);
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
pub fn push_padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.extend_from_slice(&buf[start..]);
}

pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}
