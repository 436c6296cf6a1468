//! Reading `/proc/<pid>/stat`: parent, process group, session and start time.
//!
//! The start time (field 22, clock ticks since boot) is what tells a process
//! from a later one that reuses its pid. The second field, `comm`, is the
//! executable name in parentheses and may itself contain spaces and
//! parentheses (a program can name itself `a) b (c`), so the line is split at
//! its *last* `)`; every field after it is a plain number or a state letter.

use std::fs;
use std::io;

/// The fields of `/proc/<pid>/stat` orch needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub comm: String,
    /// `R`, `S`, `D`, `Z` (zombie), `T`, `X` (dead), ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    /// Field 22: when the process started, in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// A zombie or dead process has finished; it only waits to be reaped and
    /// no signal changes anything for it.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses one `/proc/<pid>/stat` line; `None` when it is malformed.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = line[..open].trim().parse().ok()?;
    let comm = line[open + 1..close].to_owned();
    // After `comm` come fields 3 (state), 4 (ppid), 5 (pgrp), 6 (session)
    // ... 22 (starttime): index 0 here is field 3.
    let rest: Vec<&str> = line[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    let mut state_chars = field(3)?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Reads one process's stat. `Ok(None)` when there is no such process (it
/// may have ended between listing `/proc` and reading the file).
pub fn read_stat(pid: u32) -> io::Result<Option<ProcStat>> {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => parse_stat(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed /proc/{pid}/stat"),
            )
        }),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every process currently listed in `/proc` (thread group leaders only,
/// which is what signals are addressed to).
pub fn snapshot() -> io::Result<Vec<ProcStat>> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc")? {
        // An entry that cannot be listed is a process that just ended.
        let Ok(entry) = entry else {
            continue;
        };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        match read_stat(pid) {
            Ok(Some(stat)) => all.push(stat),
            Ok(None) => {}
            // A single unreadable entry must not hide every other process;
            // the kernel never writes a malformed line, so this is only
            // logged.
            Err(e) => tracing::warn!(pid, error = %e, "skipping unreadable /proc entry"),
        }
    }
    Ok(all)
}

/// True when `pid` is running and is the process that started at
/// `start_time`: false for a pid that has ended, that is a zombie, or that
/// now belongs to another process. Start-up recovery uses it to tell an
/// agent that survived an earlier boot from an unrelated process that reused
/// its pid. It says nothing about the agent's descendants; `stop_tree` looks
/// for those.
pub fn is_alive(pid: u32, start_time: u64) -> bool {
    matches!(read_stat(pid), Ok(Some(s)) if s.start_time == start_time && !s.is_finished())
}

/// A `/proc` read error that means the process has gone.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(comm: &str) -> String {
        // A real line from a sleeping process, with `comm` substituted.
        format!(
            "4242 ({comm}) S 4000 4242 4242 0 -1 4194560 105 0 0 0 0 0 0 0 20 0 1 0 \
             987654 8388608 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        )
    }

    #[test]
    fn parses_the_fields() {
        let s = parse_stat(&line("sleep")).unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                comm: "sleep".into(),
                state: 'S',
                ppid: 4000,
                pgrp: 4242,
                session: 4242,
                start_time: 987654,
            }
        );
        assert!(!s.is_finished());
    }

    #[test]
    fn comm_with_spaces_and_parentheses() {
        for comm in ["a b", "x) S 1 2 3 (y", ")", "((", "a)b)c", ""] {
            let s = parse_stat(&line(comm)).unwrap();
            assert_eq!(s.comm, comm);
            assert_eq!(s.start_time, 987654);
            assert_eq!(s.ppid, 4000);
        }
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            "",
            "12",
            "12 (x",
            "x (a) S 1 2 3",
            "12 (a) S 1 2",
            "12 (a) SS 1 2 3",
            ")12 (",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
        let zombie = line("z").replace(") S ", ") Z ");
        assert!(parse_stat(&zombie).unwrap().is_finished());
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let s = read_stat(me).unwrap().unwrap();
        assert_eq!(s.pid, me);
        assert!(is_alive(me, s.start_time));
        assert!(!is_alive(me, s.start_time + 1));
        assert!(snapshot().unwrap().iter().any(|p| p.pid == me));
    }
}
