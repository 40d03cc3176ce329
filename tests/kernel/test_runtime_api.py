"""DockerClient against the real dockerd, and the dockerd fixture's own stop/start cycle."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from pytracee.enrich.runtime_api import ContainerNotFound, DockerClient, RuntimeUnavailable
from tests.kernel.conftest import mounts_under, unmount_all
from tests.docker_env import Containers, Dockerd, DockerEnvError, docker

POD_LABELS = {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop",
              "io.kubernetes.pod.uid": "1234-abcd"}


def test_inspect_a_running_container(dockerd: Dockerd, docker_containers: Containers) -> None:
    cid = docker_containers.run("pt-api-test", POD_LABELS, ["sleep", "30"])
    image_id = docker("image", "inspect", "--format", "{{.Id}}", "local/busybox:1",
                      socket=dockerd.socket).stdout.strip()
    client = DockerClient(dockerd.socket)

    info = client.inspect(cid)

    assert (info.id, info.runtime, info.name, info.image) == (cid, "docker", "pt-api-test",
                                                              "local/busybox:1")
    # an imported image has no RepoDigests: the image id stands in
    assert info.image_digest.startswith("sha256:") and info.image_digest == image_id
    assert info.labels == POD_LABELS
    assert (info.pod_name, info.pod_namespace, info.pod_uid, info.pod_sandbox) == (
        "web-0", "shop", "1234-abcd", False)
    assert abs(time.time_ns() - info.created_ns) < 60 * 10**9
    assert client.inspect("pt-api-test") == info  # by name too
    assert cid in client.list_running()
    assert client.ping() is True


def test_unknown_container_is_not_found(dockerd: Dockerd) -> None:
    with pytest.raises(ContainerNotFound):
        DockerClient(dockerd.socket).inspect("0" * 64)


def test_missing_socket_is_unavailable_at_once(tmp_path: Path) -> None:
    client = DockerClient(str(tmp_path / "docker.sock"))
    t0 = time.monotonic()
    with pytest.raises(RuntimeUnavailable, match="No such file"):
        client.inspect("0" * 64)
    assert time.monotonic() - t0 < 0.5
    assert client.ping() is False


def test_dockerd_stop_start_cycle(dockerd: Dockerd, busybox_image: str) -> None:
    """Cycle the session's dockerd when we own it; a dockerd we did not start is never
    stopped, so then a private one (own socket and data root) goes through the same code."""
    tmp: str | None = None
    if dockerd.started_by_us:
        target = dockerd
    else:
        with pytest.raises(DockerEnvError, match="not started by us"):
            dockerd.stop()
        tmp = tempfile.mkdtemp(prefix="ptd-")  # short: containerd's socket lives below it
        target = Dockerd.private(Path(tmp))
        target.start()
    client = DockerClient(target.socket, timeout=1.0)
    try:
        assert target.started_by_us and client.ping() is True
        target.stop()
        assert target.proc is not None and target.proc.returncode is not None
        with pytest.raises(RuntimeUnavailable):
            client.list_running()
        assert client.ping() is False

        target.start()
        assert client.ping() is True
        assert isinstance(client.list_running(), list)
        if target is dockerd:  # containerd came back too: a container runs
            res = docker("run", "--rm", "--network", "none", busybox_image, "echo", "back",
                         socket=dockerd.socket)
            assert res.stdout == "back\n"
    finally:
        if target is dockerd:
            if not client.ping():
                dockerd.start()  # the session's dockerd is left running
        else:
            target.stop()
            assert tmp is not None
            unmount_all(mounts_under(tmp + "/"))  # dockerd bind-mounts its data root
            shutil.rmtree(tmp, ignore_errors=True)
