//! Permissions of what the server creates on disk. Files get mode 0644 and directories 0755,
//! narrowed further by the server's umask, so nothing is ever world-writable (a plain create
//! asks for 0666 and leaves it all to the umask). The session-password key gets 0600: anyone
//! who can read it can derive every session's password.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DATA_FILE_MODE: u32 = 0o644;
pub const DATA_DIR_MODE: u32 = 0o755;
pub const SECRET_FILE_MODE: u32 = 0o600;

/// `mkdir -p` with [`DATA_DIR_MODE`].
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DATA_DIR_MODE)
        .create(dir)
}

/// Creates (or truncates) a file for writing with `mode`.
pub fn create_file(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
}

/// Creates (or truncates) a file for O_DIRECT IO on the calling glommio executor.
pub async fn create_dma_file(path: &Path) -> io::Result<glommio::io::DmaFile> {
    glommio::io::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(DATA_FILE_MODE)
        .dma_open(path)
        .await
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Takes group and other permissions away from an existing secret file (older versions created
/// it 0644). Returns whether it had to.
pub fn restrict_secret(path: &Path) -> io::Result<bool> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SECRET_FILE_MODE))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rk-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn nothing_is_world_writable_whatever_the_umask() {
        let d = scratch("modes");
        create_dirs(&d.join("a/b")).unwrap();
        let f = d.join("a/b/f");
        create_file(&f, DATA_FILE_MODE).unwrap();
        let s = d.join("a/s");
        create_file(&s, SECRET_FILE_MODE).unwrap();
        for (p, forbidden) in [(d.join("a/b"), 0o022), (f, 0o022), (s.clone(), 0o077)] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & forbidden, 0, "{} has mode {mode:o}", p.display());
        }
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(restrict_secret(&s).unwrap());
        assert_eq!(
            std::fs::metadata(&s).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!restrict_secret(&s).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
