//! The Host check against DNS rebinding: a web page on an attacker's domain
//! that re-points its name at 127.0.0.1 makes the browser send requests to
//! orch with `Host: <attacker's name>`. Only names orch knows are its own
//! are accepted: `localhost`, and IP literals (which no DNS answer can
//! re-point) naming the bound address.

use std::net::{IpAddr, SocketAddr};

use axum::http::uri::Authority;

/// Whether a `Host` header value names this server. A port, when present,
/// must be the bound port. With an unspecified bind address (`0.0.0.0`,
/// `::`) any IP literal is accepted, since the server answers on all of
/// them; a DNS name other than `localhost` never is.
pub fn allowed(host: &str, bound: SocketAddr) -> bool {
    if host.contains('@') {
        return false;
    }
    let Ok(authority) = host.parse::<Authority>() else {
        return false;
    };
    if authority
        .port_u16()
        .is_some_and(|port| port != bound.port())
    {
        return false;
    }
    let name = authority.host();
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    match literal.parse::<IpAddr>() {
        Ok(ip) => bound.ip().is_unspecified() || canonical(ip) == canonical(bound.ip()),
        Err(_) => false,
    }
}

/// An IPv4-mapped IPv6 address and its IPv4 form are the same host.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether an address is on the loopback interface only.
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_bind_accepts_localhost_and_its_own_address() {
        let b = addr("127.0.0.1:8787");
        for ok in [
            "localhost",
            "localhost:8787",
            "LOCALHOST:8787",
            "127.0.0.1:8787",
            "127.0.0.1",
        ] {
            assert!(allowed(ok, b), "{ok}");
        }
        for refused in [
            "evil.example:8787",
            "evil.example",
            "localhost:9999",
            "127.0.0.1:9999",
            "127.0.0.2:8787",
            "localhost.evil.example:8787",
            "user@localhost:8787",
            "",
            "[::1]:8787",
            "local host",
        ] {
            assert!(!allowed(refused, b), "{refused}");
        }
    }

    #[test]
    fn ipv6_and_unspecified_binds() {
        let v6 = addr("[::1]:80");
        assert!(allowed("[::1]:80", v6));
        assert!(allowed("[::1]", v6));
        assert!(!allowed("127.0.0.1:80", v6));
        let any = addr("0.0.0.0:8787");
        assert!(allowed("10.1.2.3:8787", any));
        assert!(allowed("[fe80::1]:8787", any));
        assert!(!allowed("orch.example:8787", any));
        assert!(!allowed("10.1.2.3:1", any));
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("0.0.0.0".parse().unwrap()));
        assert!(!is_loopback("::".parse().unwrap()));
        assert!(!is_loopback("192.0.2.1".parse().unwrap()));
    }
}
