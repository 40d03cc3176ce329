"""cgroup path → (runtime, container id).

A container's processes live in a cgroup whose path carries the container id:
each runtime (and each cgroup driver, cgroupfs or systemd) spells it its own way.
The shapes are a table of rules; `parse_container_id` walks the path from the
innermost component outward and returns the first component a rule accepts, so
a process in a sub-cgroup of a container (or a container nested in another)
resolves to the innermost container.

A rule's regex is matched against the path *prefix* that ends at the component
being tried (anchored at that end), which lets a rule look at the parents too:
a bare 64-hex id means nothing alone, but under `docker/` it is Docker's and
under a kubelet pod cgroup it is a CRI (containerd) container.

Runtime names are Tracee's: docker, containerd, crio, podman.
Not handled: Garden (Cloud Foundry) UUID-shaped ids.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_ID = r"(?P<id>[0-9a-f]{64})"
# A kubelet pod uid: a UUID (dashes become underscores under systemd) or, for
# static pods, a 32-hex config hash.
_POD_UID = r"[0-9a-f_-]+"


class Rule(NamedTuple):
    pattern: re.Pattern[str]
    runtime: str
    example: str  # documents the shape; the unit tests use the same shapes


def _rule(pattern: str, runtime: str, example: str) -> Rule:
    return Rule(re.compile(pattern + "$"), runtime, example)


# Order matters only when two rules could accept the same component; none do
# today, the runtime prefixes are disjoint. `crio-conmon-<id>.scope` and
# `libpod-conmon-<id>.scope` (the monitor process, not the container) match no
# rule because the prefix must be followed directly by the hex id.
RULES: tuple[Rule, ...] = (
    # systemd cgroup driver: one transient scope unit per container.
    _rule(rf"(?:^|/)docker-{_ID}\.scope", "docker", "/system.slice/docker-<id>.scope"),
    _rule(rf"(?:^|/)cri-containerd-{_ID}\.scope", "containerd",
          "/kubepods.slice/.../cri-containerd-<id>.scope"),
    _rule(rf"(?:^|/)crio-{_ID}(?:\.scope)?", "crio", "/kubepods.slice/.../crio-<id>.scope"),
    _rule(rf"(?:^|/)libpod-{_ID}(?:\.scope)?", "podman", "/machine.slice/libpod-<id>.scope"),
    # containerd's systemd-style cgroupsPath "slice:prefix:name" used verbatim
    # as one component (seen when the cgroupfs driver is given systemd paths).
    _rule(rf":cri-containerd:{_ID}", "containerd",
          "/kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>"),
    # cgroupfs driver: a bare id under the runtime's parent cgroup.
    _rule(rf"(?:^|/)docker/{_ID}", "docker", "/docker/<id>"),
    _rule(rf"(?:^|/)actions_job/{_ID}", "docker", "/actions_job/<id>"),  # GitHub Actions
    # kubelet pod cgroups: a bare id is a CRI container, taken as containerd.
    _rule(rf"(?:^|/)kubepods(?:/besteffort|/burstable)?/pod{_POD_UID}/{_ID}", "containerd",
          "/kubepods/besteffort/pod<uid>/<id>"),
    _rule(rf"(?:^|/)kubepods(?:-besteffort|-burstable)?-pod{_POD_UID}\.slice/{_ID}", "containerd",
          "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/<id>"),
)


def parse_container_id(cgroup_path: str) -> tuple[str, str] | None:
    """(runtime, container_id) of the innermost container in `cgroup_path`, or None."""
    parts = [p for p in cgroup_path.split("/") if p]
    for end in range(len(parts), 0, -1):
        prefix = "/".join(parts[:end])
        for rule in RULES:
            m = rule.pattern.search(prefix)
            if m is not None:
                return rule.runtime, m.group("id")
    return None
