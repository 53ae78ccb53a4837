//! systemd's readiness protocol (`sd_notify`): `READY=1` once every listener listens,
//! `RELOADING=1` / `READY=1` around a reload, `STOPPING=1` when draining starts, sent as
//! a datagram to `$NOTIFY_SOCKET` (the unit's `Type=notify`). Without the variable (not
//! under systemd) nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `READY=1`) to systemd; false when not under systemd or it failed.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let bytes = path.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        // An abstract socket (`@name`), as systemd often uses.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
        }
        None => sock.send_to(state.as_bytes(), &path),
    };
    if let Err(e) = &sent {
        log::warn!("sd_notify {state:?}: {e}");
    }
    sent.is_ok()
}

/// `RELOADING=1` with the `MONOTONIC_USEC` systemd wants since v253 to time a reload.
pub fn reloading() -> bool {
    // CLOCK_MONOTONIC in microseconds: std exposes no raw monotonic value, and
    // /proc/uptime counts on the same clock (boot time, without suspend) systemd reads.
    let usec = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |secs| (secs * 1e6) as u64);
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("mg-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        // The only test touching NOTIFY_SOCKET in this process.
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(notify("READY=1"));
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(reloading());
        let n = server.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .starts_with("RELOADING=1\nMONOTONIC_USEC="));
        std::env::remove_var("NOTIFY_SOCKET");
        assert!(!notify("READY=1"), "not under systemd: nothing sent");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
