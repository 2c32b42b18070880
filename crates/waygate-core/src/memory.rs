//! Resident memory of a long-running server: what start-up touched need not stay mapped.

/// Unmap this process's own machine code and read-only data from its page tables once
/// start-up is over, so what stays resident is what serving touches again. The pages stay
/// in the kernel's page cache (this is `MADV_DONTNEED` on a private file mapping, not
/// `MADV_PAGEOUT`), so code that runs again comes back with a minor fault and later
/// `waygate` commands do not read the binary from disk.
///
/// Why: parsing the configuration, migrating the store, compiling schemas and starting
/// plugins run ~2–3 MB of code once; the kernel maps 64 KiB around every page touched,
/// and file pages stay mapped until memory runs short — so they would count in the
/// server's RSS for ever. Mappings holding anonymous (copied-on-write) pages — the
/// relocated `.data.rel.ro`, a debugger's breakpoints — are left alone: dropping those
/// would lose their contents. Returns the bytes released from the page tables.
pub fn release_startup_pages() -> usize {
    #[cfg(target_os = "linux")]
    {
        let (Ok(exe), Ok(smaps)) = (
            std::fs::read_link("/proc/self/exe"),
            std::fs::read_to_string("/proc/self/smaps"),
        ) else {
            return 0;
        };
        let exe = exe.to_string_lossy();
        let mut released = 0;
        for m in mappings(&smaps) {
            if m.path != exe || m.anonymous_kb != 0 || !(m.perms == "r-xp" || m.perms == "r--p") {
                continue;
            }
            // SAFETY: the range is one whole private, read-only, file-backed mapping of
            // this executable with no anonymous pages; MADV_DONTNEED only drops its page
            // table entries, and the next access refaults the same bytes from the file.
            let r = unsafe { libc::madvise(m.start as *mut libc::c_void, m.end - m.start, libc::MADV_DONTNEED) };
            if r == 0 {
                released += m.rss_kb * 1024;
            }
        }
        released
    }
    #[cfg(not(target_os = "linux"))]
    0
}

#[derive(Debug, PartialEq)]
struct Mapping<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    path: &'a str,
    rss_kb: usize,
    anonymous_kb: usize,
}

/// The mappings of a `/proc/<pid>/smaps` text: a header line per mapping, then its fields.
fn mappings(smaps: &str) -> Vec<Mapping<'_>> {
    let mut out: Vec<Mapping<'_>> = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                let perms = f.next().unwrap_or("");
                // offset, device, inode, then the path (which may contain spaces).
                let path = line.splitn(6, char::is_whitespace).nth(5).unwrap_or("").trim();
                out.push(Mapping {
                    start,
                    end,
                    perms,
                    path,
                    rss_kb: 0,
                    anonymous_kb: 0,
                });
                continue;
            }
        }
        let kb = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        if let Some(m) = out.last_mut() {
            match first {
                "Rss:" => m.rss_kb = kb,
                "Anonymous:" => m.anonymous_kb = kb,
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_mappings_are_read_with_their_resident_and_anonymous_sizes() {
        let text = "\
55a0c0000000-55a0c0200000 r-xp 00001000 08:01 1234                       /opt/way gate/waygate
Size:               2048 kB
Rss:                 512 kB
Anonymous:             0 kB
55a0c0400000-55a0c0500000 r--p 00300000 08:01 1234                       /opt/way gate/waygate
Rss:                1024 kB
Anonymous:          1024 kB
7f0000000000-7f0000001000 rw-p 00000000 00:00 0 
Rss:                   4 kB
Anonymous:             4 kB
";
        let m = mappings(text);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0],
            Mapping {
                start: 0x55a0c0000000,
                end: 0x55a0c0200000,
                perms: "r-xp",
                path: "/opt/way gate/waygate",
                rss_kb: 512,
                anonymous_kb: 0
            }
        );
        assert_eq!((m[1].perms, m[1].anonymous_kb), ("r--p", 1024));
        assert_eq!(m[2].path, "");
    }

    #[test]
    fn released_code_runs_again() {
        // The test binary's own code and constants are dropped from its page tables and
        // this very function keeps running (refaulted from the page cache).
        let _ = release_startup_pages();
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(v.iter().sum::<u64>(), 55);
        assert_eq!(format!("{:?}", Some("ok")), "Some(\"ok\")");
    }
}
