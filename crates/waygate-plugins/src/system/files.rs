//! File tools confined to roots. Every access goes through a `cap_std::fs::Dir` opened on
//! a root, which resolves paths beneath it only: `..` past the root, absolute paths and
//! symlinks pointing outside fail inside the OS calls, not in a string check that a
//! race could get around.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use cap_std::fs::Dir;

use super::SystemSpec;
use waygate_core::policy::glob;

/// Entries a search looks at, at most.
const MAX_VISITED: usize = 20_000;
/// Entries a listing shows, at most.
const MAX_LISTED: usize = 1_000;

pub(super) struct Roots {
    roots: Vec<(PathBuf, Dir)>,
    max_read: u64,
    max_write: u64,
    max_results: usize,
}

impl Roots {
    pub fn open(spec: &SystemSpec) -> Result<Roots, String> {
        let mut roots = Vec::new();
        for r in &spec.roots {
            let canon = r.canonicalize().map_err(|e| format!("root {}: {e}", r.display()))?;
            let dir = Dir::open_ambient_dir(&canon, cap_std::ambient_authority())
                .map_err(|e| format!("root {}: {e}", r.display()))?;
            roots.push((canon, dir));
        }
        Ok(Roots {
            roots,
            max_read: spec.max_read_bytes,
            max_write: spec.max_write_bytes,
            max_results: spec.max_search_results,
        })
    }

    pub fn first(&self) -> PathBuf {
        self.roots[0].0.clone()
    }

    /// The root a tool path belongs to and the path relative to it.
    fn locate<'a>(&'a self, path: &str) -> Result<(&'a Path, &'a Dir, PathBuf), String> {
        if path.contains('\0') {
            return Err("path contains a NUL byte".into());
        }
        let p = Path::new(path);
        let (root, dir, rel) = if p.is_absolute() {
            self.roots
                .iter()
                .find_map(|(r, d)| p.strip_prefix(r).ok().map(|rel| (r.as_path(), d, rel.to_path_buf())))
                .ok_or_else(|| format!("{path} is outside the allowed roots"))?
        } else {
            let (r, d) = &self.roots[0];
            (r.as_path(), d, p.to_path_buf())
        };
        // Refuse climbing lexically too, for a clear message (the Dir would refuse anyway).
        let mut depth = 0i32;
        for c in rel.components() {
            match c {
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Err(format!("{path} climbs out of its root"));
            }
        }
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        Ok((root, dir, rel))
    }

    pub fn read(&self, path: &str) -> Result<String, String> {
        let (_, dir, rel) = self.locate(path)?;
        let f = dir.open(&rel).map_err(|e| refused(path, e))?;
        let meta = f.metadata().map_err(|e| refused(path, e))?;
        if meta.is_dir() {
            return Err(format!("{path} is a directory; use list_directory"));
        }
        if meta.len() > self.max_read {
            return Err(format!(
                "{path} is {} bytes; max_read_bytes is {}",
                meta.len(),
                self.max_read
            ));
        }
        let mut buf = Vec::new();
        f.into_std()
            .take(self.max_read + 1)
            .read_to_end(&mut buf)
            .map_err(|e| refused(path, e))?;
        if buf.len() as u64 > self.max_read {
            return Err(format!("{path} grew past max_read_bytes ({})", self.max_read));
        }
        String::from_utf8(buf).map_err(|_| format!("{path} is not UTF-8 text"))
    }

    pub fn write(&self, path: &str, content: &str) -> Result<String, String> {
        if content.len() as u64 > self.max_write {
            return Err(format!(
                "content is {} bytes; max_write_bytes is {}",
                content.len(),
                self.max_write
            ));
        }
        let (_, dir, rel) = self.locate(path)?;
        if rel == Path::new(".") {
            return Err(format!("{path} is a directory"));
        }
        dir.write(&rel, content.as_bytes()).map_err(|e| refused(path, e))?;
        Ok(format!("wrote {} bytes to {path}", content.len()))
    }

    pub fn list(&self, path: &str) -> Result<String, String> {
        let (_, dir, rel) = self.locate(path)?;
        let mut rows = Vec::new();
        for entry in dir.read_dir(&rel).map_err(|e| refused(path, e))? {
            if rows.len() >= MAX_LISTED {
                rows.push(format!("… more than {MAX_LISTED} entries"));
                break;
            }
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = match entry.file_type() {
                Ok(t) if t.is_dir() => "dir ",
                Ok(t) if t.is_symlink() => "link",
                _ => "file",
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            rows.push(format!("{kind} {size:>10} {name}"));
        }
        rows.sort();
        Ok(rows.join("\n"))
    }

    pub fn search(&self, path: &str, pattern: &str, contains: Option<&str>) -> Result<String, String> {
        let (root, dir, rel) = self.locate(path)?;
        let start = dir.open_dir(&rel).map_err(|e| refused(path, e))?;
        let mut stack = vec![(start, root.join(&rel))];
        let (mut visited, mut hits) = (0usize, Vec::new());
        while let Some((d, at)) = stack.pop() {
            let Ok(entries) = d.entries() else { continue };
            for entry in entries.flatten() {
                visited += 1;
                if visited > MAX_VISITED || hits.len() >= self.max_results {
                    hits.push(format!("… stopped after {} results / {visited} entries", hits.len()));
                    return Ok(hits.join("\n"));
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(ft) = entry.file_type() else { continue };
                // Symlinks are not followed: they could point out of the root.
                if ft.is_symlink() {
                    continue;
                }
                if ft.is_dir() {
                    if let Ok(sub) = entry.open_dir() {
                        stack.push((sub, at.join(&name)));
                    }
                    continue;
                }
                if !glob(pattern, &name) {
                    continue;
                }
                if let Some(needle) = contains {
                    let Ok(f) = entry.open() else { continue };
                    let mut buf = Vec::new();
                    if f.into_std().take(self.max_read).read_to_end(&mut buf).is_err()
                        || !String::from_utf8_lossy(&buf).contains(needle)
                    {
                        continue;
                    }
                }
                hits.push(at.join(&name).display().to_string());
            }
        }
        hits.sort();
        Ok(hits.join("\n"))
    }

    /// A directory inside the roots as a host path (the working directory of a command).
    pub fn host_dir(&self, path: &str) -> Result<PathBuf, String> {
        let (root, dir, rel) = self.locate(path)?;
        dir.open_dir(&rel).map_err(|e| refused(path, e))?;
        let host = root.join(&rel).canonicalize().map_err(|e| refused(path, e))?;
        if !host.starts_with(root) {
            return Err(format!("{path} is outside the allowed roots"));
        }
        Ok(host)
    }
}

fn refused(path: &str, e: std::io::Error) -> String {
    // cap-std reports an escape attempt as PermissionDenied ("a path led outside of the
    // filesystem"); say so plainly.
    if e.kind() == std::io::ErrorKind::PermissionDenied || e.to_string().contains("outside of the filesystem") {
        return format!("{path}: access outside the allowed roots refused");
    }
    format!("{path}: {e}")
}
