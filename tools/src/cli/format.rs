//! How zkCli prints things: Stat blocks, ACLs, dates, data, and KeeperException messages.

use ringkeeper_engine::proto::{Acl, ErrorCode, Stat};

/// A time in ms since the epoch as Java's `Date.toString()` prints it, in the local time zone
/// (`TZ`): `Tue Dec 01 10:56:42 UTC 2026`.
pub fn java_date(ms: i64) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    ts.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%a %b %d %H:%M:%S %Z %Y")
        .to_string()
}

/// The Stat block `get -s`, `stat`, `ls -s` and `set -s` print.
pub fn stat_block(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\ncversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\ndataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children
    )
}

/// `getAcl`'s lines for one ACL entry: `'world,'anyone` then `: cdrwa`.
pub fn acl_lines(acl: &Acl) -> String {
    format!(
        "'{},'{}\n: {}\n",
        acl.id.scheme,
        acl.id.id,
        perms_string(acl.perms)
    )
}

/// ZooKeeper's permission letters, in its order (`ZKUtil.getPermString`).
pub fn perms_string(perms: i32) -> String {
    use ringkeeper_engine::proto::perms as p;
    let mut out = String::new();
    for (bit, c) in [
        (p::CREATE, 'c'),
        (p::DELETE, 'd'),
        (p::READ, 'r'),
        (p::WRITE, 'w'),
        (p::ADMIN, 'a'),
    ] {
        if perms & bit != 0 {
            out.push(c);
        }
    }
    out
}

/// `scheme:id:perms[,scheme:id:perms...]` as zkCli's `AclParser` reads it; entries it cannot
/// read are reported (as zkCli prints them) and left out.
pub fn parse_acls(text: &str, warnings: &mut Vec<String>) -> Vec<Acl> {
    let mut out = Vec::new();
    for entry in text.split(',') {
        let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
            warnings.push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            warnings.push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        }
        let mut perms = 0;
        for c in entry[last + 1..].chars() {
            use ringkeeper_engine::proto::perms as p;
            perms |= match c {
                'r' => p::READ,
                'w' => p::WRITE,
                'c' => p::CREATE,
                'd' => p::DELETE,
                'a' => p::ADMIN,
                other => {
                    warnings.push(format!("Unknown perm type: {other}"));
                    0
                }
            };
        }
        out.push(Acl::new(perms, &entry[..first], &entry[first + 1..last]));
    }
    out
}

/// Data as zkCli prints it: UTF-8 text, or `null` for a znode without data.
pub fn data_text(data: &Option<bytes::Bytes>) -> String {
    match data {
        None => "null".to_string(),
        Some(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// What ZooKeeper's `KeeperException.getCodeMessage` calls a code.
pub fn code_message(code: ErrorCode) -> &'static str {
    use ErrorCode::*;
    match code {
        Ok => "ok",
        SystemError => "SystemError",
        RuntimeInconsistency => "RuntimeInconsistency",
        DataInconsistency => "DataInconsistency",
        ConnectionLoss => "ConnectionLoss",
        MarshallingError => "MarshallingError",
        Unimplemented => "Unimplemented",
        OperationTimeout => "OperationTimeout",
        BadArguments => "BadArguments",
        UnknownSession => "Unknown session",
        NewConfigNoQuorum => "NewConfigNoQuorum",
        ReconfigInProgress => "ReconfigInProgress",
        ApiError => "APIError",
        NoNode => "NoNode",
        NoAuth => "NoAuth",
        BadVersion => "BadVersion",
        NoChildrenForEphemerals => "NoChildrenForEphemerals",
        NodeExists => "NodeExists",
        NotEmpty => "Directory not empty",
        SessionExpired => "Session expired",
        InvalidCallback => "Invalid callback",
        InvalidAcl => "InvalidACL",
        AuthFailed => "AuthFailed",
        SessionMoved => "Session moved",
        NotReadOnly => "Not a read-only call",
        EphemeralOnLocalSession => "Ephemeral node on local session",
        NoWatcher => "No such watcher",
        RequestTimeout => "Request timeout",
        ReconfigDisabled => "Reconfig is disabled",
        SessionClosedRequireSaslAuth => "Session closed because client failed to authenticate",
        QuotaExceeded => "Quota has exceeded",
        Throttled => "Op throttled due to high load",
    }
}

/// `KeeperException.getMessage()`: `KeeperErrorCode = NoNode for /a`.
pub fn keeper_message(code: ErrorCode, path: Option<&str>) -> String {
    match path {
        Some(p) => format!("KeeperErrorCode = {} for {p}", code_message(code)),
        None => format!("KeeperErrorCode = {}", code_message(code)),
    }
}

/// The line zkCli prints for a failed command (`CliWrapperException`'s wording).
pub fn cli_error(code: ErrorCode, path: &str) -> String {
    use ErrorCode::*;
    match code {
        NoNode => format!("Node does not exist: {path}"),
        BadVersion => format!("version No is not valid : {path}"),
        AuthFailed => format!("Authentication is not valid : {path}"),
        BadArguments => format!("Arguments are not valid : {path}"),
        NoAuth => format!("Insufficient permission : {path}"),
        NodeExists => format!("Node already exists: {path}"),
        NotEmpty => format!("Node not empty: {path}"),
        NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path}"),
        InvalidAcl => format!("Acl is not valid : {path}"),
        other => keeper_message(other, Some(path)),
    }
}

/// ZooKeeper's client-side path check (`PathUtils.validatePath`), with its messages.
pub fn validate_path(path: &str, sequential: bool) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') && !sequential {
        return Err("Path must not end with / character".into());
    }
    if path.contains("//") {
        return Err(format!(
            "Invalid path string \"{path}\" caused by empty node name specified"
        ));
    }
    for part in path.split('/').skip(1) {
        if part == "." || part == ".." {
            return Err(format!(
                "Invalid path string \"{path}\" caused by relative paths not allowed"
            ));
        }
    }
    if path.chars().any(|c| c == '\0') {
        return Err(format!(
            "Invalid path string \"{path}\" caused by null character not allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_as_javas_date_to_string() {
        // SAFETY-free: the process's TZ is read once by jiff; the test asks for UTC.
        let s = jiff::Timestamp::from_millisecond(0)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%a %b %d %H:%M:%S %Z %Y")
            .to_string();
        assert_eq!(s, "Thu Jan 01 00:00:00 UTC 1970");
    }

    #[test]
    fn acls_parse_as_zkclis_parser() {
        let mut w = Vec::new();
        let acls = parse_acls(
            "world:anyone:r,digest:user:abc=:cdrwa,garbage,ip:1.2.3.4:rz",
            &mut w,
        );
        assert_eq!(acls.len(), 3);
        assert_eq!(acls[1].id.id, "user:abc=");
        assert_eq!(perms_string(acls[1].perms), "cdrwa");
        assert_eq!(perms_string(acls[2].perms), "r");
        assert_eq!(
            w,
            [
                "garbage does not have the form scheme:id:perm",
                "Unknown perm type: z"
            ]
        );
    }

    #[test]
    fn paths_are_checked_with_zookeepers_messages() {
        assert_eq!(
            validate_path("a", false).unwrap_err(),
            "Path must start with / character"
        );
        assert_eq!(
            validate_path("/a/", false).unwrap_err(),
            "Path must not end with / character"
        );
        assert!(validate_path("/a/", true).is_ok());
        assert!(validate_path("/", false).is_ok());
    }
}
