"""Outputs of the real `pytracee` command: streams with their own buffers and filters,
a slow destination in drop mode, templates and rotation, with real kernel events."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import stat
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.kernel.cli_proc import _no_leftover_tracers, start, stop  # noqa: F401


def _events(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_two_streams_one_slow_in_drop_mode_the_fast_one_gets_everything(
        syscaller: Path, tmp_path: Path) -> None:
    """The slow stream writes to a FIFO nobody reads until the workload is over: its
    worker blocks in write(), its buffer (64 events) fills and the rest is dropped,
    counted. The other stream, a file, gets every event; the kernel loses none."""
    n = 30_000
    fifo = tmp_path / "slow.fifo"
    os.mkfifo(fifo, 0o600)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so pytracee's open does not wait
    fast = tmp_path / "fast.json"
    got: list[bytes] = []
    go = threading.Event()

    def read_slowly() -> None:
        go.wait(60)
        while True:
            try:
                chunk = os.read(reader, 1 << 16)
            except BlockingIOError:
                go.wait(0.005)
                continue
            if not chunk:  # pytracee closed its end
                return
            got.append(chunk)

    t = threading.Thread(target=read_slowly, daemon=True)
    t.start()
    try:
        proc = start("-e", "getppid", "-s", "comm=pt-streams", "-E", "none",
                     "-o", f"destinations.fast.path={fast}", "-o", "destinations.fast.format=json",
                     "-o", f"destinations.slow.path={fifo}", "-o", "destinations.slow.format=json",
                     "-o", "streams.slow.destinations=slow", "-o", "streams.slow.buffer.mode=drop",
                     "-o", "streams.slow.buffer.size=64")
        subprocess.run([str(syscaller), "-c", "pt-streams", "getppid", str(n)], check=True)
        go.set()  # start reading now: pytracee's close() waits for the slow stream to drain
        _, err = stop(proc)
        t.join(30)
        assert not t.is_alive()
    finally:
        go.set()
        os.close(reader)
    summary = err.splitlines()[-1]
    assert ", lost: 0 " in summary, summary
    events = _events(fast)
    assert len(events) == n
    assert {(e["eventName"], e["processName"], e["returnValue"]) for e in events} == {
        ("getppid", "pt-streams", os.getpid())}
    m = re.search(r", stream slow \(file:[^)]*\): delivered (\d+), dropped (\d+), failed (\d+), "
                  r"pending (\d+)", summary)
    assert m is not None, summary
    delivered, dropped, failed, pending = map(int, m.groups())
    slow_events = [orjson.loads(line) for line in b"".join(got).splitlines()]
    assert (failed, pending) == (0, 0)
    assert dropped > n // 2  # most of the storm did not fit
    assert delivered == len(slow_events)
    assert delivered + dropped == n  # every event delivered or counted as dropped
    # Delivered means delivered to every output that selected it: the slow one's count.
    assert f"events delivered: {delivered} of {n}, " in summary
    assert all(e["eventName"] == "getppid" for e in slow_events)
    assert "stream fast" not in summary  # nothing dropped there: not mentioned


def test_streams_filter_by_event_and_by_policy(syscaller: Path, tmp_path: Path) -> None:
    pol = tmp_path / "policies"
    pol.mkdir()
    for name, event in (("pa", "getppid"), ("pb", "close")):
        (pol / f"{name}.yaml").write_text(
            f"type: policy\nname: {name}\nscope: [comm=pt-route]\nrules:\n  - event: {event}\n")
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    proc = start("-p", str(pol), "-E", "none",
                 "-o", f"destinations.a.path={a}", "-o", "destinations.a.format=json",
                 "-o", f"destinations.b.path={b}", "-o", "destinations.b.format=json",
                 "-o", f"json:{c}",
                 "-o", "streams.by-policy.destinations=a", "-o", "streams.by-policy.filters.policies=pa",
                 "-o", "streams.by-event.destinations=b", "-o", "streams.by-event.filters.events=close")
    subprocess.run([str(syscaller), "-c", "pt-route", "getppid", "3"], check=True)
    subprocess.run([str(syscaller), "-c", "pt-route", "close", "99"], check=True, capture_output=True)
    stop(proc)
    assert [(e["eventName"], e["matchedPolicies"]) for e in _events(a)] == [("getppid", ["pa"])] * 3
    assert [(e["eventName"], e["returnValue"], e["matchedPolicies"]) for e in _events(b)] == [
        ("close", -9, ["pb"])]
    assert [e["eventName"] for e in _events(c)] == ["getppid"] * 3 + ["close"]


def test_template_output_file(syscaller: Path, tmp_path: Path) -> None:
    tmpl = tmp_path / "line.j2"
    tmpl.write_text("{{ eventName }} {{ processName }} pid={{ hostProcessId }} ret={{ returnValue }} "
                    "policies={{ matchedPolicies | join(',') }} args={{ args | length }}\n")
    out = tmp_path / "out" / "events.log"
    proc = start("-e", "getppid", "-s", "comm=pt-tmpl", "-E", "none", "-o", f"gotemplate={tmpl}:{out}")
    work = subprocess.Popen([str(syscaller), "-c", "pt-tmpl", "getppid", "2"])
    assert work.wait() == 0
    stop(proc)
    line = f"getppid pt-tmpl pid={work.pid} ret={os.getpid()} policies=cli args=0\n"
    assert out.read_text() == line * 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_template_syntax_error_is_one_line_exit_2(tmp_path: Path) -> None:
    tmpl = tmp_path / "bad.j2"
    tmpl.write_text("{{ eventName }}\n{% if returnValue %}\n")
    res = subprocess.run([str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pytracee"),
                          "-e", "getppid", "-o", f"template:{tmpl}"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.startswith(f"pytracee: {tmpl}:2: template syntax error: ")
    assert res.stderr.count("\n") == 1


def test_rotation_with_real_events(syscaller: Path, tmp_path: Path) -> None:
    n, limit = 600, 16 << 10
    path = tmp_path / "rot" / "ev.json"
    proc = start("-e", "getppid", "-s", "comm=pt-rotate", "-E", "none",
                 "-o", f"destinations.r.path={path}", "-o", "destinations.r.format=json",
                 "-o", "destinations.r.rotate=16KB", "-o", "destinations.r.rotate.keep=1000")
    subprocess.run([str(syscaller), "-c", "pt-rotate", "getppid", str(n)], check=True)
    stop(proc)
    rotated = sorted(path.parent.glob("ev.json.*"), key=lambda p: -int(p.suffix[1:]))
    files = [*rotated, path]  # oldest first
    assert [p.name for p in rotated] == [f"ev.json.{i}" for i in range(len(rotated), 0, -1)]
    assert len(files) >= (n * 400) // limit  # a getppid line is well over 400 bytes
    contents = [p.read_bytes() for p in files]
    for p, data in zip(files, contents):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert 0 < len(data) <= limit and data.endswith(b"\n")
    # Each file was filled with whole lines until the next line would not fit.
    for data, following in zip(contents, contents[1:]):
        first_line = following.split(b"\n", 1)[0] + b"\n"
        assert len(data) + len(first_line) > limit
    events = [orjson.loads(line) for data in contents for line in data.splitlines()]
    assert len(events) == n
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert {e["processName"] for e in events} == {"pt-rotate"}


# -- the table: a terminal's fits its width, a file's lines are whole --------------------------

HEAD = re.compile(r"\d\d:\d\d:\d\d:\d{6} 0     pt-width        (\d+) +(\d+) +3    openat               ")


def _drain(fd: int, quiet: float = 0.5) -> bytes:
    """What the terminal got, until nothing more comes for `quiet` seconds."""
    seen = b""
    while select.select([fd], [], [], quiet)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other end is closed and everything was read
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_table_on_a_terminal_fits_its_width_a_file_gets_whole_lines(
        syscaller: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The window's own size, not COLUMNS: this process may have COLUMNS in its C-level
    # environment without os.environ knowing (put there by a library); setting it then
    # deleting it unsets it there too, so pytracee gets none.
    monkeypatch.setenv("COLUMNS", "0")
    monkeypatch.delenv("COLUMNS")
    target = tmp_path / ("long-directory-name-" * 4) / "target-file"
    target.parent.mkdir()
    target.touch()
    log = tmp_path / "table.log"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    try:
        proc = start("-e", "openat", "-s", "comm=pt-width", "-E", "none", "-o", "table",
                     "-o", f"table:{log}", stdout=slave)
        os.close(slave)
        slave = -1
        work = subprocess.run([str(syscaller), "-c", "pt-width", "open", str(target), "0"],
                              check=True, capture_output=True)
        assert work.stdout.strip() == b"3"
        time.sleep(0.3)
        screen = _drain(master)
        stop(proc)
        screen += _drain(master, 0.2)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    shown = screen.decode().replace("\r\n", "\n").splitlines()
    whole = log.read_text().splitlines()
    assert shown[0] == whole[0] == ("TIME            UID   COMM            PID     TID     RET  "
                                    "EVENT                ARGS")
    # The file: the whole line, the summary of the open (path and flags).
    [line] = [ln for ln in whole if str(target) in ln]
    m = HEAD.match(line)
    assert m is not None, line
    assert m[1] == m[2]
    me = Path("/proc/self/comm").read_text().strip()  # the workload's parent
    assert line == (f"{m[0]}pathname: {target}, flags: O_RDONLY "
                    f"[exe: {syscaller}, parent: {me}({os.getpid()})]")
    # The terminal: every line 120 columns at most, one line per event; the open's line
    # is the file's, cut with the marker.
    assert len(shown) == len(whole)
    assert all(len(ln) <= 120 for ln in shown)
    [cut] = [ln for ln in shown if ln.startswith(m[0])]
    assert cut.endswith("…") and len(cut) <= 120 and line.startswith(cut[:-1])
    assert len(cut) > 110  # only what did not fit is cut
    assert [ln for ln in shown if not ln.endswith("…")] == [ln for ln in whole if len(ln) <= 120]


def test_option_args_all_prints_every_argument_in_the_table_json_unchanged(
        syscaller: Path, tmp_path: Path) -> None:
    target = tmp_path / "args-all"
    target.touch()
    table, js = tmp_path / "t.log", tmp_path / "e.json"
    proc = start("-e", "openat", "-s", "comm=pt-args", "-E", "none", "-o", f"table:{table}",
                 "-o", f"json:{js}", "-o", "option:args=all", "-o", "option:parse-arguments")
    subprocess.run([str(syscaller), "-c", "pt-args", "open", str(target), hex(0o2101)], check=True,
                   capture_output=True)
    stop(proc)
    [line] = [ln for ln in table.read_text().splitlines() if str(target) in ln]
    me = Path("/proc/self/comm").read_text().strip()
    assert line.endswith(f" openat               dirfd: AT_FDCWD, pathname: {target}, "
                         f"flags: O_WRONLY|O_CREAT|O_APPEND, mode: 0644 "
                         f"[exe: {syscaller}, parent: {me}({os.getpid()})]")
    [ev] = [e for e in _events(js) if any(a["value"] == str(target) for a in e["args"])]
    assert ev["args"] == [{"name": "dirfd", "type": "int32", "value": "AT_FDCWD"},
                          {"name": "pathname", "type": "string", "value": str(target)},
                          {"name": "flags", "type": "int32", "value": "O_WRONLY|O_CREAT|O_APPEND"},
                          {"name": "mode", "type": "uint16", "value": "0644"}]
