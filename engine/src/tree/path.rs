//! Path rules (ZooKeeper's `PathUtils.validatePath`) and path arithmetic.

/// Why a path is not a valid znode path; reported to clients as BADARGUMENTS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath(pub &'static str);

/// Checks a znode path. `sequential` allows a trailing `/` (the suffix will follow it).
pub fn validate(path: &str, sequential: bool) -> Result<(), BadPath> {
    if path.is_empty() {
        return Err(BadPath("Path length must be > 0"));
    }
    if !path.starts_with('/') {
        return Err(BadPath("Path must start with / character"));
    }
    if path.len() == 1 {
        return Ok(());
    }
    if !sequential && path.ends_with('/') {
        return Err(BadPath("Path must not end with / character"));
    }
    let mut prev = '/';
    let chars: Vec<char> = path.chars().collect();
    for (i, &c) in chars.iter().enumerate().skip(1) {
        if c == '\0' {
            return Err(BadPath("null character not allowed"));
        }
        if c == '/' && prev == '/' {
            return Err(BadPath("empty node name specified"));
        }
        if c == '.'
            && prev == '.'
            && chars[i - 2] == '/'
            && (i + 1 == chars.len() || chars[i + 1] == '/')
        {
            return Err(BadPath("relative paths not allowed"));
        }
        if c == '.' && prev == '/' && (i + 1 == chars.len() || chars[i + 1] == '/') {
            return Err(BadPath("relative paths not allowed"));
        }
        let u = c as u32;
        // Java validates the UTF-16 form: a character outside the BMP is a surrogate pair
        // there, inside the refused range 0xd800..=0xf8ff.
        if u > 0xffff
            || (0x1..=0x1f).contains(&u)
            || (0x7f..=0x9f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u)
        {
            return Err(BadPath("invalid character"));
        }
        prev = c;
    }
    Ok(())
}

/// The parent of a non-root path: `/a/b` -> `/a`, `/a` -> `/`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component: `/a/b` -> `b`.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// True when `path` is `ancestor` or lies below it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes()[ancestor.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_matches_zookeeper_rules() {
        for good in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/..a",
            "/a/.b",
            "/zookeeper",
            "/\u{A0}",
            "/\u{D7FF}",
            "/\u{F900}",
            "/\u{FFEF}",
            "/\u{4E2D}",
        ] {
            assert_eq!(validate(good, false), Ok(()), "{good}");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a\0b",
            "/a\u{1}",
            "/\u{1F600}",
            "/a/\u{10000}",
            "/\u{10FFFF}",
            "/\u{80}",
            "/\u{E000}",
            "/\u{FFFD}",
        ] {
            assert!(validate(bad, false).is_err(), "{bad:?}");
        }
        assert_eq!(validate("/a/", true), Ok(()));
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_within("/a/b", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/ab", "/"));
    }
}
