//! The per-job agent log: stdout and stderr appended to one file, capped.
//!
//! Both streams share one pipe (as with `2>&1`), so the log keeps the order
//! in which the agent wrote its lines. The pipe is always drained to the end,
//! also past the cap, because an agent blocked on a full pipe would hang
//! instead of finishing. Past the cap the output is discarded and one marker
//! line says so; the marker's room is reserved, so the file never grows
//! beyond the cap.

use std::io;
use std::path::Path;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe::Receiver;

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

/// Copies the agent's output pipe into the log until end of file, which is
/// when the agent and every descendant holding the pipe have exited or
/// closed it.
pub(super) async fn drain(mut output: Receiver, mut log: CappedLog) -> LogSummary {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match output.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => log.write(&buf[..n]).await,
            Err(e) => {
                tracing::warn!(error = %e, "reading the agent's output failed");
                break;
            }
        }
    }
    log.finish().await
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
