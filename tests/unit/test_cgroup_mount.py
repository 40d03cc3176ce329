"""Finding the cgroup v2 hierarchy in mountinfo (network programs attach at its root)."""

from __future__ import annotations

from pathlib import Path

from pytracee.enrich.cgroupfs import v2_mount

HYBRID = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
35 33 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,name=systemd
"""


def test_hybrid_layout(tmp_path: Path) -> None:
    (tmp_path / "mi").write_text(HYBRID)
    assert v2_mount(str(tmp_path / "mi")) == "/sys/fs/cgroup/unified"


def test_the_hierarchy_root_wins_over_a_subtree(tmp_path: Path) -> None:
    sub = "90 34 0:29 /docker/abc /mnt/my\\040cg rw,relatime - cgroup2 cgroup2 rw\n"
    (tmp_path / "mi").write_text(sub + HYBRID)
    assert v2_mount(str(tmp_path / "mi")) == "/sys/fs/cgroup/unified"
    (tmp_path / "mi").write_text(sub)
    assert v2_mount(str(tmp_path / "mi")) == "/mnt/my cg"  # only a subtree: better than none


def test_none(tmp_path: Path) -> None:
    (tmp_path / "mi").write_text(HYBRID.replace("cgroup2 cgroup2", "tmpfs tmpfs"))
    assert v2_mount(str(tmp_path / "mi")) is None
    assert v2_mount(str(tmp_path / "missing")) is None
