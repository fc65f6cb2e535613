//! Access control: ZooKeeper's schemes (world, auth, digest, ip, super), `fixupACL` and `checkACL`.
//!
//! A session's identities are a list of [`Id`]s: its `ip:<address>` from the connection, plus one
//! per successful `addauth`. A `super` identity passes every check.

use crate::proto::{Acl, ErrorCode, Id};
use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// `user:base64(sha1("user:password"))`, the id a `digest` ACL names.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Whether identities of this scheme count for the `auth` ACL scheme.
fn is_authenticated_scheme(scheme: &str) -> bool {
    matches!(scheme, "digest" | "sasl" | "x509")
}

fn ip_pattern_valid(id: &str) -> bool {
    let mut parts = id.splitn(2, '/');
    let Some(addr) = parts.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
        return false;
    };
    match parts.next() {
        None => true,
        Some(bits) => {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            matches!(bits.parse::<u32>(), Ok(b) if b <= max)
        }
    }
}

fn ip_matches(pattern: &str, client: &str) -> bool {
    let Ok(client) = client.parse::<IpAddr>() else {
        return false;
    };
    let mut parts = pattern.splitn(2, '/');
    let Some(addr) = parts.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
        return false;
    };
    let bits = match parts.next() {
        None => {
            if addr.is_ipv4() {
                32
            } else {
                128
            }
        }
        Some(b) => match b.parse::<u32>() {
            Ok(b) => b,
            Err(_) => return false,
        },
    };
    match (addr, client) {
        (IpAddr::V4(a), IpAddr::V4(c)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits.min(32))
            };
            (u32::from(a) & mask) == (u32::from(c) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(c)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits.min(128))
            };
            (u128::from(a) & mask) == (u128::from(c) & mask)
        }
        _ => false,
    }
}

/// Turns a client's ACL into the stored one (ZooKeeper's `fixupACL`): drops duplicates, expands
/// `auth` into the session's authenticated identities, and rejects anything invalid.
pub fn fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let push = |a: Acl, out: &mut Vec<Acl>| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => push(a.clone(), &mut out),
            "auth" => {
                let mut any = false;
                for id in auth.iter().filter(|id| is_authenticated_scheme(&id.scheme)) {
                    any = true;
                    push(
                        Acl {
                            perms: a.perms,
                            id: id.clone(),
                        },
                        &mut out,
                    );
                }
                if !any {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            "digest"
                if a.id.id.split(':').filter(|s| !s.is_empty()).count() == 2
                    && a.id.id.matches(':').count() == 1 =>
            {
                push(a.clone(), &mut out)
            }
            "ip" if ip_pattern_valid(&a.id.id) => push(a.clone(), &mut out),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(out)
}

/// ZooKeeper's `checkACL`: may a session with identities `auth` do `perm` on a node with `acl`?
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return Ok(());
    }
    for entry in acl.iter().filter(|a| a.perms & perm != 0) {
        let id = &entry.id;
        if id.scheme == "world" && id.id == "anyone" {
            return Ok(());
        }
        for who in auth.iter().filter(|who| who.scheme == id.scheme) {
            let matched = match id.scheme.as_str() {
                "ip" => ip_matches(&id.id, &who.id),
                _ => id.id == who.id,
            };
            if matched {
                return Ok(());
            }
        }
    }
    Err(ErrorCode::NoAuth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::perms;

    #[test]
    fn digest_matches_zookeeper() {
        // DigestAuthenticationProvider.generateDigest("super:test") in ZooKeeper's docs.
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn fixup_expands_auth_and_rejects_bad_ids() {
        let ip = Id::new("ip", "127.0.0.1");
        let user = Id::new("digest", &digest_id("u:p"));
        assert_eq!(
            fixup(&[Acl::new(31, "auth", "")], std::slice::from_ref(&ip)),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[Acl::new(31, "auth", "")], &[ip.clone(), user.clone()]),
            Ok(vec![Acl {
                perms: 31,
                id: user
            }])
        );
        assert_eq!(fixup(&[], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            fixup(&[Acl::new(31, "world", "nobody")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[Acl::new(31, "digest", "nocolon")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[Acl::new(31, "ip", "10.0.0.0/33")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[Acl::new(31, "bogus", "x")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert!(fixup(&[Acl::new(31, "ip", "10.0.0.0/8")], &[]).is_ok());
        assert_eq!(
            fixup(&[Acl::open_unsafe(), Acl::open_unsafe()].concat(), &[])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn check_applies_schemes() {
        let acl = vec![
            Acl::new(perms::READ, "ip", "127.0.0.0/8"),
            Acl::new(perms::ALL, "digest", &digest_id("u:p")),
        ];
        let local = [Id::new("ip", "127.0.0.1")];
        assert_eq!(check(&acl, perms::READ, &local), Ok(()));
        assert_eq!(check(&acl, perms::WRITE, &local), Err(ErrorCode::NoAuth));
        let user = [
            Id::new("ip", "10.1.1.1"),
            Id::new("digest", &digest_id("u:p")),
        ];
        assert_eq!(check(&acl, perms::WRITE, &user), Ok(()));
        assert_eq!(check(&acl, perms::WRITE, &[Id::new("super", "")]), Ok(()));
        assert_eq!(check(&[], perms::WRITE, &[]), Ok(()));
    }
}
