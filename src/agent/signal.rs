//! Sending a signal to exactly the process that was verified.
//!
//! A pid read from `/proc` may be reused by an unrelated process before the
//! signal is sent. A pidfd closes that window: the descriptor refers to the
//! process that held the pid when it was opened, so checking the start time
//! *after* opening it proves the descriptor names the expected process, and
//! `pidfd_send_signal` cannot reach anyone else. Kernels older than 5.3 lack
//! pidfds; there the start time is checked and `kill(2)` follows at once.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::proc::read_stat;

/// Sends `sig` to `pid` only if it is still the process that started at
/// `start_time`. Returns true when the signal was delivered.
pub(super) fn signal_verified(pid: u32, start_time: u64, sig: Signal) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    match pidfd_open(raw) {
        Ok(fd) => started_at(pid, start_time) && pidfd_send_signal(&fd, sig).is_ok(),
        Err(Errno::ENOSYS) => started_at(pid, start_time) && kill(Pid::from_raw(raw), sig).is_ok(),
        // ESRCH: it has gone; anything else: it cannot be addressed safely.
        Err(_) => false,
    }
}

/// Sends `sig` to the process group `pgid`. The caller has verified, right
/// before, that the group's leader is the expected process: while the leader
/// (or any member) exists the kernel keeps the group id allocated, so it
/// cannot name another group.
pub(super) fn signal_group(pgid: u32, sig: Signal) -> bool {
    match libc::pid_t::try_from(pgid) {
        // pgid 0 and 1 would address orch's own group or init's; never.
        Ok(raw) if raw > 1 => killpg(Pid::from_raw(raw), sig).is_ok(),
        _ => false,
    }
}

fn started_at(pid: u32, start_time: u64) -> bool {
    matches!(read_stat(pid), Ok(Some(s)) if s.start_time == start_time)
}

fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    let flags: libc::c_uint = 0;
    // SAFETY: pidfd_open(2) takes a pid and flags by value and returns a new
    // descriptor or -1; no memory is shared with the kernel.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    if ret < 0 {
        return Err(Errno::last());
    }
    let fd = libc::c_int::try_from(ret).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel has just created this descriptor for us and nothing
    // else owns it, so OwnedFd may close it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pidfd_send_signal(fd: &OwnedFd, sig: Signal) -> Result<(), Errno> {
    let info: *const libc::siginfo_t = std::ptr::null();
    let flags: libc::c_uint = 0;
    // SAFETY: a live pidfd borrowed for the call, a valid signal number, a
    // null siginfo (the kernel then fills it in as for kill(2)) and no flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as libc::c_int,
            info,
            flags,
        )
    };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}
