"""Runtime API clients against stub servers on unix sockets (the real dockerd test is
tests/kernel/test_runtime_api.py; CRI-O has no real-daemon test, so its documented
reply shape is checked here)."""

from __future__ import annotations

import calendar
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from pytracee.enrich.runtime_api import (
    ContainerInfo,
    ContainerNotFound,
    CrioClient,
    DockerClient,
    RuntimeUnavailable,
    default_clients,
    rfc3339_ns,
)

CID = "c" * 64
IMG = "sha256:" + "e" * 64

Routes = dict[str, tuple[int, object]]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    routes: Routes


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        status, body = self.server.routes.get(self.path, (404, {"message": "no such thing"}))
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # unix peers have no address to log
        pass


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[tuple[str, Routes]]:
    path = str(tmp_path / "rt.sock")
    server = _Server(path, _Handler)
    server.routes = {}
    t = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield path, server.routes
    server.shutdown()
    server.server_close()


def test_rfc3339_keeps_nanoseconds() -> None:
    base = calendar.timegm((2026, 11, 25, 2, 40, 24, 0, 0, 0)) * 1_000_000_000
    assert rfc3339_ns("2026-11-25T02:40:24.04607115Z") == base + 46_071_150
    assert rfc3339_ns("2026-11-25T02:40:24.123456789Z") == base + 123_456_789
    assert rfc3339_ns("2026-11-25T02:40:24Z") == base
    assert rfc3339_ns("2026-11-25T04:40:24.5+02:00") == base + 500_000_000
    with pytest.raises(ValueError):
        rfc3339_ns("yesterday")


def docker_container(**labels: str) -> dict[str, object]:
    return {"Id": CID, "Name": "/web", "Created": "2026-11-25T02:40:24.000000001Z",
            "Image": IMG, "Config": {"Image": "nginx:1.27", "Labels": labels}}


def test_docker_inspect_prefers_the_repo_digest(stub: tuple[str, Routes]) -> None:
    path, routes = stub
    routes[f"/v1.41/containers/{CID}/json"] = (200, docker_container(**{
        "io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.pod.uid": "u-1", "io.kubernetes.docker.type": "podsandbox"}))
    routes[f"/v1.41/images/{IMG}/json"] = (200, {"Id": IMG, "RepoDigests": [
        "nginx@sha256:" + "d" * 64, "mirror/nginx@sha256:" + "f" * 64]})
    info = DockerClient(path).inspect(CID)
    assert info == ContainerInfo(
        id=CID, runtime="docker", name="web", image="nginx:1.27",
        image_digest="nginx@sha256:" + "d" * 64,
        created_ns=calendar.timegm((2026, 11, 25, 2, 40, 24, 0, 0, 0)) * 10**9 + 1,
        labels={"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop",
                "io.kubernetes.pod.uid": "u-1", "io.kubernetes.docker.type": "podsandbox"},
        pod_name="web-0", pod_namespace="shop", pod_uid="u-1", pod_sandbox=True)


def test_podman_is_the_docker_api_under_another_name(stub: tuple[str, Routes]) -> None:
    path, routes = stub
    routes[f"/v1.41/containers/{CID}/json"] = (200, docker_container(
        **{"io.cri-containerd.kind": "sandbox"}))
    info = DockerClient(path, runtime="podman").inspect(CID)
    # the image is gone (404): its id stands in for the digest
    assert (info.runtime, info.image_digest, info.pod_sandbox) == ("podman", IMG, True)


def test_docker_errors(stub: tuple[str, Routes]) -> None:
    path, routes = stub
    routes[f"/v1.41/containers/{CID}/json"] = (500, {"message": "boom"})
    routes["/v1.41/containers/json"] = (200, b"not json")
    client = DockerClient(path)
    with pytest.raises(RuntimeUnavailable, match="HTTP 500 .*boom"):
        client.inspect(CID)
    with pytest.raises(ContainerNotFound):
        client.inspect("d" * 64)
    with pytest.raises(RuntimeUnavailable, match="bad JSON"):
        client.list_running()
    assert client.ping() is False  # /_ping is not routed: 404


def test_timeout_is_unavailable(tmp_path: Path) -> None:
    # Listening but never answering: connect succeeds, the read times out.
    path = str(tmp_path / "mute.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(path)
        mute.listen(4)
        t0 = time.monotonic()
        with pytest.raises(RuntimeUnavailable, match="timed out"):
            DockerClient(path, timeout=0.2).inspect(CID)
        assert time.monotonic() - t0 < 2


def test_crio_inspect(stub: tuple[str, Routes]) -> None:
    path, routes = stub
    labels = {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop",
              "io.kubernetes.pod.uid": "u-1", "io.kubernetes.container.name": "nginx"}
    routes[f"/containers/{CID}"] = (200, {
        "name": "k8s_nginx_web-0_shop_u-1_0", "pid": 4242, "image": "docker.io/library/nginx:1.27",
        "image_ref": "d" * 64, "created_time": 1_795_574_472_991_243_117, "labels": labels,
        "annotations": {}, "sandbox": "b" * 64, "ip_addresses": ["10.0.0.7"]})
    routes["/containers/" + "b" * 64] = (200, {
        "name": "k8s_POD_web-0_shop_u-1_0", "image": "registry.k8s.io/pause:3.9",
        "created_time": 1, "labels": {"io.kubernetes.pod.name": "web-0"}, "sandbox": "b" * 64})
    routes["/info"] = (200, {"storage_driver": "overlay", "cgroup_driver": "systemd"})
    client = CrioClient(path)
    assert client.ping() is True
    assert client.inspect(CID) == ContainerInfo(
        id=CID, runtime="crio", name="nginx", image="docker.io/library/nginx:1.27",
        image_digest="sha256:" + "d" * 64, created_ns=1_795_574_472_991_243_117, labels=labels,
        pod_name="web-0", pod_namespace="shop", pod_uid="u-1", pod_sandbox=False)
    pause = client.inspect("b" * 64)
    assert (pause.name, pause.image_digest, pause.pod_sandbox) == ("k8s_POD_web-0_shop_u-1_0", "", True)
    with pytest.raises(ContainerNotFound):
        client.inspect("a" * 64)


def test_default_clients_only_for_existing_sockets(tmp_path: Path) -> None:
    socks = []
    for name in ("docker.sock", "crio.sock"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(tmp_path / name))
        socks.append(s)
    (tmp_path / "podman.sock").write_text("a stale file, not a socket")
    try:
        clients = default_clients({"docker": str(tmp_path / "docker.sock"),
                                   "podman": str(tmp_path / "podman.sock"),
                                   "crio": str(tmp_path / "crio.sock")})
    finally:
        for s in socks:
            s.close()
    assert sorted(clients) == ["crio", "docker"]
    assert isinstance(clients["docker"], DockerClient) and isinstance(clients["crio"], CrioClient)
    assert clients["docker"].socket_path == str(tmp_path / "docker.sock")
