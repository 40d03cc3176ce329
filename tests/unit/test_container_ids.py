from __future__ import annotations

import pytest

from pytracee.enrich.container_ids import RULES, parse_container_id

A = "a" * 56 + "0123abcd"
B = "4f1c" + "9" * 60
UID = "8dcd3b9c-7a41-4bd0-a3f1-9a0e1c2b3d4e"
UID_ = UID.replace("-", "_")
POD_SLICE = f"kubepods-besteffort-pod{UID_}.slice"


@pytest.mark.parametrize(("path", "expected"), [
    (f"/docker/{A}", ("docker", A)),
    (f"/system.slice/docker-{A}.scope", ("docker", A)),
    (f"/actions_job/{A}", ("docker", A)),
    (f"/kubepods.slice/kubepods-besteffort.slice/{POD_SLICE}/cri-containerd-{A}.scope",
     ("containerd", A)),
    (f"/{POD_SLICE}:cri-containerd:{A}", ("containerd", A)),
    (f"/kubepods/besteffort/pod{UID}/{A}", ("containerd", A)),
    (f"/kubepods/burstable/pod{UID}/{A}", ("containerd", A)),
    (f"/kubepods/pod{UID}/{A}", ("containerd", A)),  # Guaranteed QoS has no class level
    (f"/kubepods.slice/kubepods-besteffort.slice/{POD_SLICE}/{A}", ("containerd", A)),
    (f"/kubepods.slice/kubepods-pod{UID_}.slice/{A}", ("containerd", A)),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{A}.scope",
     ("crio", A)),
    (f"/kubepods/besteffort/pod{UID}/crio-{A}", ("crio", A)),  # CRI-O, cgroupfs driver
    (f"/machine.slice/libpod-{A}.scope", ("podman", A)),
    (f"/libpod_parent/libpod-{A}", ("podman", A)),
    # a sub-cgroup of a container (systemd inside it) still belongs to it
    (f"/docker/{A}/init.scope", ("docker", A)),
    # docker-in-docker: the innermost container wins
    (f"/docker/{A}/docker/{B}", ("docker", B)),
    (f"docker/{A}/", ("docker", A)),  # no leading slash, trailing slash
])
def test_container_paths(path: str, expected: tuple[str, str]) -> None:
    assert parse_container_id(path) == expected


@pytest.mark.parametrize("path", [
    "",
    "/",
    "/user.slice/user-1000.slice/session-3.scope",
    "/process_api/cf940fff950d1698f8a1d1265e48de28",
    f"/process_api/{A}",  # 64 hex under an unknown parent is not a container
    "/system.slice/docker.service",
    "/system.slice/containerd.service",
    f"/{A}",
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{A}.scope",
    f"/machine.slice/libpod-conmon-{A}.scope",
    f"/kubepods/besteffort/pod{UID}",
    f"/docker/{A[:-1]}",  # 63 hex
    f"/docker/{A.upper()}",
    f"/system.slice/docker-{A}.service",
])
def test_not_a_container(path: str) -> None:
    assert parse_container_id(path) is None


def test_every_rule_accepts_its_documented_example() -> None:
    for rule in RULES:
        path = rule.example.replace("<id>", A).replace("<uid>", UID_).replace("/...", "")
        assert parse_container_id(path) == (rule.runtime, A), rule.example
