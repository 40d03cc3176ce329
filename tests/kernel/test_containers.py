"""Container enrichment against a real dockerd: derived container events, the
container fields on events, container scopes, and a runtime that goes away."""

from __future__ import annotations

import calendar
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.docker_env import IMAGE, Dockerd, DockerEnvError, docker, ensure_image
from tests.kernel.conftest import mounts_under, unmount_all
from tests.kernel.cli_proc import _no_leftover_tracers, start, stop  # noqa: F401

pytestmark = pytest.mark.usefixtures("require_bpf")

POD = {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop",
       "io.kubernetes.pod.uid": "1234-abcd"}
LOOP = ["sh", "-c", "while true; do sleep 0.2; done"]


def events_of(out: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines()]


def args(ev: dict[str, Any]) -> dict[str, Any]:
    return {a["name"]: a["value"] for a in ev["args"]}


def named(evs: list[dict[str, Any]], name: str, **fields: Any) -> list[dict[str, Any]]:
    return [e for e in evs if e["eventName"] == name
            and all(args(e).get(k) == v for k, v in fields.items())]


def created_ns(text: str) -> int:
    """Docker's RFC 3339 `Created` (UTC, nanoseconds) in ns since the epoch."""
    whole, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int(frac.ljust(9, "0"))


def inspect(name: str, fmt: str, socket: str) -> str:
    return docker("inspect", "--format", fmt, name, socket=socket).stdout.strip()


def test_create_exec_remove_carry_the_container(docker_containers: Any, dockerd: Dockerd) -> None:
    proc = start("-o", "json", "-e", "container_create,container_remove,sched_process_exec")
    cid = docker_containers.run("pt-web", POD, ["sleep", "30"])
    docker("exec", "pt-web", "cat", "/proc/self/cgroup", socket=dockerd.socket)
    created = created_ns(inspect("pt-web", "{{.Created}}", dockerd.socket))
    image_id = docker("image", "inspect", "--format", "{{.Id}}", IMAGE, socket=dockerd.socket).stdout.strip()
    docker("rm", "-f", "pt-web", socket=dockerd.socket)
    time.sleep(0.5)
    out, err = stop(proc)
    evs = events_of(out)

    [create] = named(evs, "container_create", container_id=cid)
    assert args(create) == {
        "runtime": "docker", "container_id": cid, "ctime": created,
        "container_image": IMAGE, "container_image_digest": image_id,
        "container_name": "pt-web", "pod_name": "web-0", "pod_namespace": "shop",
        "pod_uid": "1234-abcd", "pod_sandbox": False,
    }
    assert create["eventId"] == "2017"
    [remove] = named(evs, "container_remove", container_id=cid)
    assert args(remove) == {"runtime": "docker", "container_id": cid}
    assert evs.index(create) < evs.index(remove)

    inside = [e for e in evs if e["eventName"] == "sched_process_exec" and e["containerId"] == cid]
    assert sorted(args(e)["pathname"] for e in inside) == ["/bin/busybox", "/bin/busybox"]
    assert sorted(args(e)["argv"][0] for e in inside) == ["cat", "sleep"]
    for e in inside:
        assert e["container"] == {"id": cid, "name": "pt-web", "image": IMAGE, "imageDigest": image_id}
        assert e["kubernetes"] == {"podName": "web-0", "podNamespace": "shop", "podUID": "1234-abcd",
                                   "podSandbox": False}
        assert e["contextFlags"]["containerStarted"] is True
        assert e["hostName"] == cid[:12]
    # Host events carry no container.
    host = [e for e in evs if e["eventName"] == "sched_process_exec" and args(e)["pathname"] ==
            "/usr/local/bin/docker"]
    assert host and all(e["containerId"] == "" and e["container"] == {} for e in host)
    assert "containers seen: " in err


def test_existing_containers_and_container_new_scope(docker_containers: Any) -> None:
    old = docker_containers.run("pt-old", {}, LOOP)
    time.sleep(0.5)  # past its first execs
    proc = start("-o", "json", "-e", "existing_container,sched_process_exec", "-s", "container=new")
    new = docker_containers.run("pt-new", {}, LOOP)
    time.sleep(1.5)  # both loops exec sleep every 0.2 s
    out, _ = stop(proc)
    evs = events_of(out)

    existing = named(evs, "existing_container", container_id=old)
    assert len(existing) == 1
    assert args(existing[0])["container_name"] == "pt-old"
    assert args(existing[0])["container_image"] == IMAGE
    assert named(evs, "existing_container", container_id=new) == []
    execs = [e for e in evs if e["eventName"] == "sched_process_exec"]
    assert len(execs) >= 5
    assert {e["containerId"] for e in execs} == {new}  # not the old one, not the host
    assert {e["container"]["name"] for e in execs} == {"pt-new"}


def test_not_container_and_container_id_scopes(docker_containers: Any) -> None:
    a = docker_containers.run("pt-a", {}, LOOP)
    b = docker_containers.run("pt-b", {}, LOOP)
    proc = start("-o", "json", "-e", "sched_process_exec", "-s", f"container={a[:12]}")
    time.sleep(1.0)
    out, _ = stop(proc)
    evs = events_of(out)
    assert len(evs) >= 3
    assert {e["containerId"] for e in evs} == {a}

    proc = start("-o", "json", "-e", "sched_process_exec", "-s", "not-container")
    time.sleep(0.6)
    docker("inspect", b)  # a host exec
    out, _ = stop(proc)
    evs = events_of(out)
    assert {e["containerId"] for e in evs} == {""}
    assert any(args(e)["pathname"] == "/usr/local/bin/docker" for e in evs)


@pytest.fixture
def private_dockerd(busybox_image: str) -> Iterator[Dockerd]:
    """A dockerd of this test's own, with live-restore: its containers outlive it."""
    directory = Path(tempfile.mkdtemp(prefix="ptd-", dir="/tmp"))
    d = Dockerd.private(directory)
    d.extra_args = (*d.extra_args, "--live-restore")
    try:
        d.start()
        ensure_image(d.socket, IMAGE)
    except DockerEnvError as exc:
        pytest.fail(f"private dockerd: {exc}")
    yield d
    if d.proc is None or d.proc.poll() is not None:
        d.start()
    docker("rm", "-f", "pt-live", "pt-after", socket=d.socket, check=False)
    d.stop()
    unmount_all(mounts_under(str(directory) + "/"))  # dockerd bind-mounts its data root
    shutil.rmtree(directory, ignore_errors=True)


def test_runtime_down_degrades_then_recovers(private_dockerd: Dockerd) -> None:
    d = private_dockerd
    sock = d.socket
    cid = docker("run", "-d", "--network", "none", "--name", "pt-live", IMAGE, *LOOP,
                 socket=sock).stdout.strip()
    d.stop()  # live-restore: pt-live keeps running
    # No container scope: container_create is an event of the host task (runc) that made it.
    proc = start("-o", "json", "-e", "existing_container,sched_process_exec,container_create",
                 "-E", f"container.docker.socket={sock}")
    time.sleep(1.0)  # runtime down: ids only
    d.start()
    time.sleep(3.5)  # the failed lookup is retried every 2 s
    d.stop()          # down again, mid-run
    time.sleep(1.0)
    d.start()
    after = docker("run", "-d", "--network", "none", "--name", "pt-after", IMAGE, "true",
                   socket=sock).stdout.strip()
    time.sleep(1.0)
    out, err = stop(proc)
    evs = events_of(out)

    [existing] = named(evs, "existing_container", container_id=cid)
    assert args(existing)["container_name"] == ""  # the runtime could not say
    live = [e for e in evs if e["eventName"] == "sched_process_exec" and e["containerId"] == cid]
    names = [e["container"].get("name", "") for e in live]
    assert names[0] == "" and names[-1] == "pt-live"  # degraded, then enriched
    assert names.index("pt-live") > 2
    assert "" not in names[names.index("pt-live"):]  # the cache outlives the runtime
    # Tracing went on while the runtime was down the second time.
    assert len(live) >= 25
    [create] = named(evs, "container_create", container_id=after)
    assert args(create)["container_name"] == "pt-after"
    errors = int(err.split("runtime errors: ")[1].split(",")[0])
    assert errors >= 1


def test_table_shows_the_container_and_the_process(docker_containers: Any, dockerd: Dockerd) -> None:
    proc = start("-e", "sched_process_exec", "-s", "container")
    docker_containers.run("pt-tab", {}, ["sleep", "30"])
    time.sleep(0.5)
    out, _ = stop(proc)
    lines = out.decode().splitlines()
    assert lines[0].split() == ["TIME", "UID", "CONTAINER", "COMM", "PID", "TID", "RET", "EVENT", "ARGS"]
    [line] = [ln for ln in lines[1:] if "pt-tab" in ln]
    cols = line.split()
    assert cols[2:4] == ["pt-tab", "sleep"]
    assert cols[7] == "sched_process_exec"
    # The process tree: the executable, and the parent (runc's init, which exec'd sleep
    # in place, so the parent is the containerd shim).
    assert line.endswith("]") and "[exe: /bin/busybox, parent: containerd-shim(" in line
