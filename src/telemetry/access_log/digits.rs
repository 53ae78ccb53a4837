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

/// Each octet's decimal digits, then their count (`[b'1', b'0', 0, 2]`).
const OCTETS: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let v = i as u8;
        t[i] = if v >= 100 {
            [b'0' + v / 100, b'0' + v / 10 % 10, b'0' + v % 10, 3]
        } else if v >= 10 {
            [b'0' + v / 10, b'0' + v % 10, 0, 2]
        } else {
            [b'0' + v, 0, 0, 1]
        };
        i += 1;
    }
    t
};

/// Appends an IPv4 address in dotted decimal (`10.0.0.1`) and, when given, `:port`: the
/// bytes std's `Display` writes for an `Ipv4Addr` / `SocketAddrV4`, without `core::fmt`.
pub fn push_ipv4(out: &mut Vec<u8>, ip: std::net::Ipv4Addr, port: Option<u16>) {
    let mut buf = [0u8; IPV4_TEXT_MAX];
    let n = write_ipv4(&mut buf, ip, port);
    out.extend_from_slice(&buf[..n]);
}

/// Room for the longest [`write_ipv4`] text, `255.255.255.255:65535` (21), and for
/// copying whole table rows.
pub const IPV4_TEXT_MAX: usize = 24;

/// Writes what [`push_ipv4`] appends at the start of `buf`; returns its length.
pub fn write_ipv4(
    buf: &mut [u8; IPV4_TEXT_MAX],
    ip: std::net::Ipv4Addr,
    port: Option<u16>,
) -> usize {
    let mut n = 0;
    for (i, o) in ip.octets().into_iter().enumerate() {
        let digits = OCTETS[usize::from(o)];
        buf[n..n + 4].copy_from_slice(&digits);
        buf[n + usize::from(digits[3])] = b'.';
        n += usize::from(digits[3]) + usize::from(i < 3);
    }
    if let Some(port) = port {
        buf[n] = b':';
        n = put_port(buf, n + 1, port);
    }
    n
}

/// Writes a port in decimal at `buf[at..]`; returns the index past it.
#[inline(always)]
fn put_port(buf: &mut [u8; 24], mut at: usize, v: u16) -> usize {
    // Constant divisors: multiplications, not divisions.
    if v >= 10_000 {
        buf[at] = b'0' + (v / 10_000) as u8;
        at += 1;
    }
    if v >= 1_000 {
        buf[at] = b'0' + (v / 1_000 % 10) as u8;
        at += 1;
    }
    if v >= 100 {
        buf[at] = b'0' + (v / 100 % 10) as u8;
        at += 1;
    }
    if v >= 10 {
        buf[at] = b'0' + (v / 10 % 10) as u8;
        at += 1;
    }
    buf[at] = b'0' + (v % 10) as u8;
    at + 1
}
