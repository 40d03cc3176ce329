"""Signatures on persistence and privilege files: boot scripts, cron, sudoers.

Each fires on a write open (security_file_open with a write access mode) or a
rename onto (security_inode_rename's new_path) one of its files or into one of
its directories; the rc.d and cron ones also on running the tool that edits
them (sched_process_exec, by the program's basename or comm)."""

from __future__ import annotations

from pytracee.detect.builtin._common import basename, file_open, is_write, meta, renamed, select
from pytracee.detect.signature import EventSelector
from pytracee.detect.signature import Signature
from pytracee.events.event import Event


def modified_path(ev: Event) -> str | None:
    """The file an open-for-write or a rename changes, else None."""
    if ev.name == "security_file_open":
        return ev.arg("pathname") if is_write(ev.arg("flags")) else None
    if ev.name == "security_inode_rename":
        return ev.arg("new_path")
    return None


def under(path: str, files: frozenset[str], dirs: tuple[str, ...]) -> bool:
    """`path` is one of `files`, or one of `dirs` or anything below it."""
    return path in files or any(path == d or path.startswith(d + "/") for d in dirs)


def ran(ev: Event, programs: frozenset[str]) -> bool:
    """A sched_process_exec of one of `programs` (by file basename or by comm)."""
    return basename(ev.arg("pathname") or "") in programs or ev.ctx.comm in programs


def _changes(files: frozenset[str], dirs: tuple[str, ...]) -> tuple[EventSelector, ...]:
    """Write opens and renames, prefiltered to paths that start with a file or dir."""
    starts = (*sorted(files), *dirs)
    return (file_open(prefixes=starts, write=True), renamed("new_path", prefixes=starts))


class _FileModification(Signature):
    """Write open or rename onto FILES / into DIRS; exec of PROGRAMS."""

    FILES: frozenset[str] = frozenset()
    DIRS: tuple[str, ...] = ()
    PROGRAMS: frozenset[str] = frozenset()

    def on_event(self, ev: Event) -> None:
        if ev.name == "sched_process_exec":
            if ran(ev, self.PROGRAMS):
                self.match(ev)
            return
        path = modified_path(ev)
        if path and under(path, self.FILES, self.DIRS):
            self.match(ev)


class RcdModification(_FileModification):
    metadata = meta("TRC-1026", "Rcd modification detected", "rcd_modification", 2, "T1037.004",
                    "RC Scripts", "persistence",
                    "A boot or runlevel script (rc.local, init.d, rcN.d) was written or replaced, "
                    "or update-rc.d was run. Code placed there runs as root at every boot, "
                    "which attackers use to survive a reboot.")
    FILES = frozenset({"/etc/rc.local", "/etc/init.d/rc.local", "/etc/rc.d/rc.local"})
    DIRS = ("/etc/init.d", "/etc/rc.d",
            *(f"/etc/rc{level}.d" for level in ("0", "1", "2", "3", "4", "5", "6", "s", "S")))
    PROGRAMS = frozenset({"update-rc.d"})
    selected_events = (*_changes(FILES, DIRS), *select("sched_process_exec"))


class ScheduledTaskModification(_FileModification):
    metadata = meta("TRC-1027", "Scheduled tasks modification detected", "scheduled_task_mod", 2,
                    "T1053.003", "Cron", "persistence",
                    "A cron or anacron table, or a cron allow/deny list, was written or replaced, "
                    "or a task-scheduling command (crontab, at, batch) was run. Scheduled tasks "
                    "are a common way to keep malicious code running across reboots.")
    FILES = frozenset({"/etc/crontab", "/etc/anacrontab", "/etc/cron.deny", "/etc/cron.allow"})
    DIRS = ("/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly",
            "/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/anacron")
    PROGRAMS = frozenset({"crontab", "at", "batch", "launchd"})
    selected_events = (*_changes(FILES, DIRS), *select("sched_process_exec"))


class SudoersModification(_FileModification):
    metadata = meta("TRC-1028", "Sudoers file modification detected", "sudoers_modification", 2,
                    "T1548.003", "Sudo and Sudo Caching", "privilege-escalation",
                    "The sudoers policy (/etc/sudoers or a file in /etc/sudoers.d) was written or "
                    "replaced. Changing it lets a user run commands as root or as other users.")
    FILES = frozenset({"/etc/sudoers", "/private/etc/sudoers"})
    DIRS = ("/etc/sudoers.d", "/private/etc/sudoers.d")
    selected_events = _changes(FILES, DIRS)


SIGNATURES = (RcdModification, ScheduledTaskModification, SudoersModification)
