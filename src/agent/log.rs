//! The per-job agent log: stdout and stderr appended to one file, capped.
//!
//! The pipes are always drained to the end, also past the cap, because an
//! agent blocked on a full pipe would hang instead of finishing. Past the cap
//! the output is discarded and one marker line says so; the marker's room is
//! reserved, so the file never grows beyond the cap.

use std::io;
use std::path::Path;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStderr, ChildStdout};

/// What the drain did, for the job's diagnostics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct LogSummary {
    pub written: u64,
    pub discarded: u64,
}

/// An append-only log file that stops growing at its cap.
pub(super) struct CappedLog {
    file: File,
    /// Current size of the file, including what earlier attempts wrote.
    size: u64,
    cap: u64,
    capped: bool,
    failed: bool,
    summary: LogSummary,
}

fn marker(cap: u64) -> String {
    format!("\n[orch: the agent log reached its cap of {cap} bytes; further output is discarded]\n")
}

impl CappedLog {
    /// Opens (creating it and its parent directories) the log at `path` in
    /// append mode.
    pub(super) async fn open(path: &Path, cap: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        let size = file.metadata().await?.len();
        let capped = size.saturating_add(marker(cap).len() as u64) > cap;
        Ok(Self {
            file,
            size,
            cap,
            capped,
            failed: false,
            summary: LogSummary::default(),
        })
    }

    async fn write(&mut self, chunk: &[u8]) {
        if self.capped || self.failed {
            self.summary.discarded += chunk.len() as u64;
            return;
        }
        let mark = marker(self.cap);
        let room = self
            .cap
            .saturating_sub(self.size)
            .saturating_sub(mark.len() as u64);
        let keep = chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let mut out = chunk[..keep].to_vec();
        if keep < chunk.len() {
            out.extend_from_slice(mark.as_bytes());
            self.capped = true;
            self.summary.discarded += (chunk.len() - keep) as u64;
        }
        match self.file.write_all(&out).await {
            Ok(()) => {
                self.size += out.len() as u64;
                self.summary.written += keep as u64;
            }
            Err(e) => {
                // A full disk must not stall the agent: keep draining, note
                // it once.
                tracing::warn!(error = %e, "cannot write the agent log; discarding its output");
                self.failed = true;
                self.summary.discarded += chunk.len() as u64;
            }
        }
    }

    /// Flushes what tokio still holds for the file. Without it the last
    /// write may not have reached the file when the caller reads it.
    async fn finish(mut self) -> LogSummary {
        if let Err(e) = self.file.flush().await {
            tracing::warn!(error = %e, "cannot flush the agent log");
        }
        self.summary
    }
}

/// Copies both pipes into the log until both reach end of file, which is
/// when the agent and every descendant holding them have exited or closed
/// them.
pub(super) async fn drain(
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    mut log: CappedLog,
) -> LogSummary {
    let (mut out, mut err) = (stdout, stderr);
    let mut out_buf = vec![0u8; 16 * 1024];
    let mut err_buf = vec![0u8; 16 * 1024];
    while out.is_some() || err.is_some() {
        tokio::select! {
            r = read_some(&mut out, &mut out_buf) => match r {
                Ok(n) if n > 0 => log.write(&out_buf[..n]).await,
                _ => out = None,
            },
            r = read_some(&mut err, &mut err_buf) => match r {
                Ok(n) if n > 0 => log.write(&err_buf[..n]).await,
                _ => err = None,
            },
        }
    }
    log.finish().await
}

/// Reads from the pipe if it is still open; a closed pipe never completes,
/// so `select!` only waits on the open ones.
async fn read_some<R: AsyncRead + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match pipe {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_including_the_marker_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/job.log");
        let cap = 200;
        let mut log = CappedLog::open(&path, cap).await.unwrap();
        log.write(&[b'x'; 50]).await;
        log.write(&[b'y'; 150]).await;
        log.write(&[b'z'; 10]).await;
        let summary = log.finish().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len() as u64, cap);
        assert!(text.ends_with(&marker(cap)));
        assert!(text.starts_with(&"x".repeat(50)));
        assert_eq!(summary.written + summary.discarded, 210);

        // A later attempt appending to the full file adds nothing.
        let mut again = CappedLog::open(&path, cap).await.unwrap();
        again.write(b"more").await;
        assert_eq!(again.finish().await.discarded, 4);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), cap);
    }
}
