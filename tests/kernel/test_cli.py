"""The `pytracee` command as users run it: output formats, exit codes, stop summary."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.kernel.cli_proc import PYTRACEE, _no_leftover_tracers, start, stop  # noqa: F401


def test_json_round_trips_a_non_utf8_file_name(syscaller: Path, tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/caf\xe9-\xff.txt"
    with open(name, "wb"):
        pass
    proc = start("-e", "openat", "-s", "comm=pt-utf8", "-o", "json")
    subprocess.run([os.fsencode(syscaller), b"-c", b"pt-utf8", b"open", name, b"0"], check=True,
                   capture_output=True)
    out, err = stop(proc)
    events = [orjson.loads(line) for line in out.splitlines()]  # every line is valid JSON
    paths = [a["value"] for e in events for a in e["args"] if a["name"] == "pathname"]
    expected = f"{tmp_path}/caf\\xe9-\\xff.txt"
    assert paths.count(expected) == 1
    ev = next(e for e in events if expected in [a["value"] for a in e["args"]])
    assert ev["eventName"] == "openat" and ev["eventId"] == "257"
    assert ev["processName"] == "pt-utf8"
    assert ev["returnValue"] == 3
    assert ev["matchedPolicies"] == ["cli"]
    assert ev["syscall"] == "openat"
    assert "events delivered: " in err


def test_table_escapes_terminal_sequences_in_comm(syscaller: Path) -> None:
    evil = "\x1b[31mred"
    proc = start("-e", "getppid", "-s", "comm=" + evil, "-E", "none")
    subprocess.run([str(syscaller), "-c", evil, "getppid", "1"], check=True)
    out, _ = stop(proc)
    text = out.decode()
    assert "\x1b" not in text
    lines = [ln for ln in text.splitlines() if "getppid" in ln]
    assert len(lines) == 1
    assert "\\x1b[31mred" in lines[0]
    assert text.splitlines()[0].split() == ["TIME", "UID", "COMM", "PID", "TID", "RET", "EVENT", "ARGS"]


def test_parse_arguments_decodes_flags(syscaller: Path, tmp_path: Path) -> None:
    target = tmp_path / "flags"
    proc = start("-e", "openat", "-s", "comm=pt-flags", "-o", "json", "-o", "option:parse-arguments")
    subprocess.run([str(syscaller), "-c", "pt-flags", "open", str(target), hex(0o2101)], check=True,
                   capture_output=True)
    out, _ = stop(proc)
    ev = next(e for e in map(orjson.loads, out.splitlines())
              if any(a["value"] == str(target) for a in e["args"]))
    args = {a["name"]: a["value"] for a in ev["args"]}
    assert args["flags"] == "O_WRONLY|O_CREAT|O_APPEND"
    assert args["dirfd"] == "AT_FDCWD"


def test_bad_input_is_one_line_and_exit_2() -> None:
    for argv, token in ((["-e", "opnat"], "opnat"),
                        (["-e", "openat.data.nosuch=1"], "nosuch"),
                        (["-s", "comm>x"], "comm>x"),
                        (["-o", "xml"], "xml"),
                        (["-b", "kernel.events=3"], "kernel.events=3")):
        res = subprocess.run([str(PYTRACEE), *argv], capture_output=True, text=True, timeout=30)
        assert res.returncode == 2, (argv, res.stderr)
        assert res.stderr.count("\n") == 1, res.stderr
        assert token in res.stderr
        assert "Traceback" not in res.stderr


def test_without_bpf_privileges_one_line_and_exit_1() -> None:
    # root, but with every capability dropped: what a non-root user or a
    # locked-down container sees.
    res = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                          str(PYTRACEE), "-e", "openat"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr == ("pytracee: pytracee needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) "
                          "to load BPF programs\n")


def _link_ids(pid: int) -> set[int]:
    """Ids of the BPF links a process holds, from its fdinfo."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith("link_id:"):
                ids.add(int(line.split()[1]))
    return ids


def _all_links() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "link", "list"], capture_output=True, check=True).stdout
    return {ln["id"] for ln in orjson.loads(out)}


def test_sigterm_stops_cleanly_and_detaches() -> None:
    proc = start("-e", "getppid", "-o", "none")
    try:
        mine = _link_ids(proc.pid)
        assert len(mine) == 9  # sys_enter/exit, sched_process_fork/exec/exit, task_rename, cgroup x3
        assert mine <= _all_links()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert err.decode().splitlines()[-1].startswith("pytracee: events delivered: ")
    assert mine.isdisjoint(_all_links())


def test_config_file_and_flags_that_override_it(syscaller: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "pytracee.yaml"
    cfg.write_text("events: [getppid]\nscope: [comm=pt-cfg]\noutput: [json]\n")
    proc = start("-c", str(cfg))
    subprocess.run([str(syscaller), "-c", "pt-cfg", "getppid", "2"], check=True)
    out, _ = stop(proc)
    assert [orjson.loads(ln)["eventName"] for ln in out.splitlines()] == ["getppid", "getppid"]
    proc = start("-c", str(cfg), "-s", "comm=pt-cfg2")  # the flag replaces the file's scope
    subprocess.run([str(syscaller), "-c", "pt-cfg", "getppid", "2"], check=True)
    subprocess.run([str(syscaller), "-c", "pt-cfg2", "getppid", "3"], check=True)
    out, _ = stop(proc)
    assert [orjson.loads(ln)["processName"] for ln in out.splitlines()] == ["pt-cfg2"] * 3


def test_policy_cannot_be_mixed_with_events_or_scope(tmp_path: Path) -> None:
    res = subprocess.run([str(PYTRACEE), "-p", str(tmp_path), "-e", "openat"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert res.stderr == ("pytracee: --policy cannot be combined with --scope or --events "
                          "(put them in a policy file)\n")


def test_reader_closing_the_pipe_stops_tracing_cleanly(syscaller: Path) -> None:
    """`pytracee -o json | head -c 100`: once head is gone, pytracee stops by itself."""
    proc = start("-e", "getppid", "-s", "comm=pt-pipe", "-o", "json")
    assert proc.stdout is not None
    subprocess.run([str(syscaller), "-c", "pt-pipe", "getppid", "10"], check=True)
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()
    for _ in range(50):  # keep writing until pytracee notices the closed pipe
        subprocess.run([str(syscaller), "-c", "pt-pipe", "getppid", "100"], check=True)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    lines = err.decode().splitlines()
    assert "output closed by its reader" in lines[-2]
    assert lines[-1].startswith("pytracee: events delivered: ")
    assert "Traceback" not in err.decode()
