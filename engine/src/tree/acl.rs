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

/// Largest ACL, in encoded bytes, that [`fixup`] stores. The `auth` scheme multiplies entries by
/// the session's identities, so a request-sized ACL could otherwise expand to tens of megabytes
/// per node (a txn no ZooKeeper peer could even read back).
pub const ACL_BYTES_MAX: usize = 1 << 20;

/// Encoded bytes of one entry: perms, then scheme and id as strings.
fn entry_bytes(perms_scheme_id: (&str, &str)) -> usize {
    4 + 4 + perms_scheme_id.0.len() + 4 + perms_scheme_id.1.len()
}

/// Turns a client's ACL into the stored one (ZooKeeper's `fixupACL`): drops duplicates (the
/// first of each stays), expands each `auth` entry into the session's authenticated identities
/// (duplicates that expansion makes are kept, as ZooKeeper keeps them), and rejects anything
/// invalid, or an ACL that would expand past [`ACL_BYTES_MAX`]. Linear in the ACL's length
/// times the session's identities, which are few (see the front's cap).
pub fn fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let mut seen =
        std::collections::HashSet::with_capacity_and_hasher(acl.len(), ahash::RandomState::new());
    let unique: Vec<&Acl> = acl.iter().filter(|a| seen.insert(*a)).collect();
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let authenticated: Vec<&Id> = auth
        .iter()
        .filter(|id| is_authenticated_scheme(&id.scheme))
        .collect();
    let mut bytes = 0usize;
    for a in &unique {
        bytes += match a.id.scheme.as_str() {
            "auth" => authenticated
                .iter()
                .map(|id| entry_bytes((&id.scheme, &id.id)))
                .sum(),
            _ => entry_bytes((&a.id.scheme, &a.id.id)),
        };
    }
    if bytes > ACL_BYTES_MAX {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(unique.len());
    for a in unique {
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => out.push(a.clone()),
            "auth" => {
                if authenticated.is_empty() {
                    return Err(ErrorCode::InvalidAcl);
                }
                out.extend(authenticated.iter().map(|id| Acl {
                    perms: a.perms,
                    id: (*id).clone(),
                }));
            }
            "digest"
                if a.id.id.split(':').filter(|s| !s.is_empty()).count() == 2
                    && a.id.id.matches(':').count() == 1 =>
            {
                out.push(a.clone())
            }
            "ip" if ip_pattern_valid(&a.id.id) => out.push(a.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(out)
}

/// ZooKeeper's `checkACL`: may a session with identities `auth` do `perm` on a node with `acl`?
/// Linear in the ACL: past a few entries, the session's digest identities (up to 32) are sorted
/// once and each digest entry is a binary search, so a long ACL costs no more per identity.
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return Ok(());
    }
    let mut digests: Vec<&str> = Vec::new();
    if acl.len() > LINEAR_CHECK_ENTRIES_MAX {
        digests.extend(
            auth.iter()
                .filter(|w| w.scheme == "digest")
                .map(|w| w.id.as_str()),
        );
        digests.sort_unstable();
    }
    for entry in acl.iter().filter(|a| a.perms & perm != 0) {
        let id = &entry.id;
        if id.scheme == "world" && id.id == "anyone" {
            return Ok(());
        }
        if !digests.is_empty() && id.scheme == "digest" {
            if digests.binary_search(&id.id.as_str()).is_ok() {
                return Ok(());
            }
            continue;
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

/// ACLs up to this long are checked entry by identity, with no index.
const LINEAR_CHECK_ENTRIES_MAX: usize = 8;

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
    fn fixup_dedups_its_input_like_zookeeper_and_keeps_what_expansion_repeats() {
        let user = Id::new("digest", &digest_id("u:p"));
        let auth = [Id::new("ip", "127.0.0.1"), user.clone()];
        let explicit = Acl {
            perms: 31,
            id: user.clone(),
        };
        let out = fixup(
            &[
                Acl::new(1, "world", "anyone"),
                explicit.clone(),
                Acl::new(31, "auth", ""),
                Acl::new(1, "world", "anyone"),
                explicit.clone(),
            ],
            &auth,
        )
        .unwrap();
        // removeDuplicates runs on the request's list; the auth expansion may repeat an entry.
        assert_eq!(
            out,
            vec![Acl::new(1, "world", "anyone"), explicit.clone(), explicit]
        );
    }

    #[test]
    fn fixup_refuses_an_acl_that_expands_past_the_limit() {
        let many: Vec<Id> = (0..32)
            .map(|i| Id::new("digest", &digest_id(&format!("user{i}:p"))))
            .collect();
        let entries = |n: usize| -> Vec<Acl> {
            (0..n)
                .map(|i| Acl::new(31, "auth", &format!("x{i}")))
                .collect()
        };
        assert!(fixup(&entries(10), &many).is_ok());
        assert_eq!(
            fixup(&entries(2_000), &many),
            Err(ErrorCode::InvalidAcl),
            "2,000 entries times 32 identities is over a megabyte"
        );
        let distinct: Vec<Acl> = (0..20_000)
            .map(|i| Acl::new(31, "digest", &format!("u{i}:h")))
            .collect();
        assert_eq!(fixup(&distinct, &[]).unwrap().len(), 20_000);
    }

    #[test]
    fn a_long_acl_is_checked_as_a_short_one_is() {
        let mut acl: Vec<Acl> = (0..50)
            .map(|i| Acl::new(perms::ALL, "digest", &format!("u{i}:h")))
            .collect();
        acl.push(Acl::new(perms::READ, "ip", "10.0.0.0/8"));
        let ids = |names: &[&str]| -> Vec<Id> {
            let mut v = vec![Id::new("ip", "127.0.0.1")];
            v.extend(names.iter().map(|n| Id::new("digest", n)));
            v
        };
        for (auth, perm, want) in [
            (ids(&["u49:h"]), perms::WRITE, Ok(())),
            (ids(&["zz:h", "u0:h"]), perms::DELETE, Ok(())),
            (
                ids(&["u50:h", "nobody:h"]),
                perms::READ,
                Err(ErrorCode::NoAuth),
            ),
            (vec![Id::new("ip", "10.1.2.3")], perms::READ, Ok(())),
            (
                vec![Id::new("ip", "10.1.2.3")],
                perms::WRITE,
                Err(ErrorCode::NoAuth),
            ),
        ] {
            assert_eq!(check(&acl, perm, &auth), want, "{auth:?} {perm}");
            // The same answer from the same entries checked one identity at a time.
            let short = acl
                .chunks(LINEAR_CHECK_ENTRIES_MAX)
                .any(|part| check(part, perm, &auth).is_ok());
            assert_eq!(short, want.is_ok(), "{auth:?} {perm}");
        }
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
