"""The policy file watcher: a change counts once, after the files have settled."""

from pathlib import Path

from pytracee.policy.reload import PolicyWatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_change_counts_once_after_it_settles(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a")
    clock = Clock()
    w = PolicyWatcher([str(tmp_path)], interval=1.0, settle=0.25, clock=clock)
    clock.now += 1.0
    assert w.changed() is False  # nothing changed
    (tmp_path / "b.yaml").write_text("b")
    clock.now += 1.0
    assert w.changed() is False  # seen, not settled yet
    clock.now += 0.1
    assert w.changed() is False  # too early to look again
    clock.now += 0.2
    assert w.changed() is True   # the same for 0.25 s: a change
    clock.now += 1.0
    assert w.changed() is False  # counted once


def test_a_directory_rewritten_in_steps_is_taken_whole(tmp_path: Path) -> None:
    """Remove both, write one, (watcher looks), write the other: the half-written set is
    never reported; the finished one is."""
    for name in ("0.yaml", "1.yaml"):
        (tmp_path / name).write_text("old")
    clock = Clock()
    w = PolicyWatcher([str(tmp_path)], interval=1.0, settle=0.25, clock=clock)
    for name in ("0.yaml", "1.yaml"):
        (tmp_path / name).unlink()
    (tmp_path / "0.yaml").write_text("new 0")
    clock.now += 1.0
    assert w.changed() is False  # half written
    (tmp_path / "1.yaml").write_text("new 1")
    clock.now += 0.25
    assert w.changed() is False  # it changed again since: wait once more
    clock.now += 0.25
    assert w.changed() is True


def test_sync_takes_the_files_as_read(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a")
    clock = Clock()
    w = PolicyWatcher([str(tmp_path)], interval=1.0, settle=0.25, clock=clock)
    (tmp_path / "a.yaml").write_text("changed, and longer")
    clock.now += 1.0
    assert w.changed() is False
    w.sync()  # a SIGHUP reload read them meanwhile
    clock.now += 0.25
    assert w.changed() is False
