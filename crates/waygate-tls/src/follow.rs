//! A value read from files and read again when one of them changes on disk.
//!
//! Certificates are renewed in place (cert-manager, SPIFFE, an ACME client) and CA bundles
//! rotated by whatever mounts them; a long-running gateway should use the new files from
//! the next handshake on without a restart, and never drop what it has for a half-written
//! file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// Every file's modification time; `None` while one of them is missing.
type Stamp = Option<Vec<SystemTime>>;

/// The current value, and the file times it was read at.
#[derive(Debug)]
pub struct Followed<T> {
    paths: Vec<PathBuf>,
    current: RwLock<Arc<T>>,
    stamp: Mutex<Stamp>,
}

impl<T> Followed<T> {
    /// Reads the first value with `load`. The times are taken before reading, so a file
    /// replaced meanwhile is read again at the next [`Followed::refresh`].
    pub fn load<E>(paths: Vec<PathBuf>, load: impl FnOnce() -> Result<T, E>) -> Result<Followed<T>, E> {
        let stamp = stamp(&paths);
        Ok(Followed {
            current: RwLock::new(Arc::new(load()?)),
            stamp: Mutex::new(stamp),
            paths,
        })
    }

    pub fn get(&self) -> Arc<T> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Reads again with `load` when a file's modification time changed: `Ok(true)` when
    /// the value was replaced. A failed read keeps the current value (one file of a pair
    /// replaced, not yet the other) and is tried again at the next call.
    pub fn refresh<E>(&self, load: impl FnOnce() -> Result<T, E>) -> Result<bool, E> {
        let now = stamp(&self.paths);
        let mut last = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_none() || now == *last {
            return Ok(false);
        }
        let v = load()?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(v);
        *last = now;
        Ok(true)
    }
}

fn stamp(paths: &[PathBuf]) -> Stamp {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_read_again_and_a_bad_read_keeps_the_value() {
        let dir = std::env::temp_dir().join(format!("wg-tls-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("v");
        std::fs::write(&f, "1").unwrap();
        let read = || std::fs::read_to_string(&f).map_err(|e| e.to_string());
        let v = Followed::load(vec![f.clone()], read).unwrap();
        assert_eq!(*v.get(), "1");
        assert_eq!(v.refresh(read), Ok(false), "unchanged files are not read");
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::write(&f, "2").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(
            v.refresh(|| Err::<String, _>("half written".to_string())),
            Err("half written".into())
        );
        assert_eq!(*v.get(), "1", "a failed read keeps the current value");
        assert_eq!(v.refresh(read), Ok(true), "and is tried again");
        assert_eq!(*v.get(), "2");
        std::fs::remove_file(&f).unwrap();
        assert_eq!(v.refresh(read), Ok(false), "a missing file keeps the current value");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
