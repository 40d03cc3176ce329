"""Container runtime APIs over unix sockets: name, image, pod labels of a container id.

Standard library only (http.client over AF_UNIX). One request per connection:
lookups are rare (once per new container, then cached by the caller) and a fresh
connection never inherits a half-read response from a timed-out call.

Supported:
- Docker Engine API (`DockerClient`), also Podman's Docker-compatible API on its
  own socket (`DockerClient(PODMAN_SOCKET, runtime="podman")`).
- CRI-O's HTTP inspect endpoint `GET /containers/<id>` on crio.sock (`CrioClient`).
containerd speaks only gRPC (CRI or its native API): not supported here.

Errors: `RuntimeUnavailable` when the runtime cannot answer (socket missing,
refused, timeout, HTTP 5xx, a reply that is not what the API documents) and
`ContainerNotFound` on 404. Nothing is retried here; the caller decides.
"""

from __future__ import annotations

import calendar
import http.client
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

DOCKER_SOCKET = "/var/run/docker.sock"
PODMAN_SOCKET = "/run/podman/podman.sock"
CRIO_SOCKET = "/var/run/crio/crio.sock"
DEFAULT_SOCKETS: Mapping[str, str] = {
    "docker": DOCKER_SOCKET,
    "podman": PODMAN_SOCKET,
    "crio": CRIO_SOCKET,
}

# The oldest Engine we target is 20.10 (API 1.41); Podman's compat API accepts it too.
DOCKER_API_VERSION = "1.41"

LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"


class RuntimeUnavailable(Exception):
    """The runtime did not answer usefully: no socket, refused, timeout, 5xx, bad reply."""


class ContainerNotFound(Exception):
    """The runtime answered 404 for this container id."""


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    id: str
    runtime: str
    name: str
    image: str  # as configured, e.g. "local/busybox:1"
    image_digest: str  # first RepoDigest if any, else the image id "sha256:…"
    created_ns: int  # ns since the epoch; 0 when the runtime gave no usable time
    labels: dict[str, str] = field(default_factory=dict)
    pod_name: str = ""
    pod_namespace: str = ""
    pod_uid: str = ""
    pod_sandbox: bool = False


class RuntimeClient(Protocol):
    runtime: str
    socket_path: str

    def inspect(self, container_id: str) -> ContainerInfo: ...

    def ping(self) -> bool: ...


def rfc3339_ns(text: str) -> int:
    """ns since the epoch of an RFC 3339 time with up to 9 fractional digits.

    datetime keeps microseconds only; runtimes report nanoseconds."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    tz = m.group(8)
    if tz not in ("Z", "z"):
        offset = int(tz[1:3]) * 3600 + int(tz[4:6]) * 60
        secs -= offset if tz[0] == "+" else -offset
    frac = (m.group(7) or "")[:9].ljust(9, "0")
    return secs * 1_000_000_000 + int(frac)


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)  # host only fills the Host header
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _UnixHTTPClient:
    runtime: str

    def __init__(self, socket_path: str, timeout: float) -> None:
        self.socket_path = socket_path
        self.timeout = timeout  # per socket operation (connect, send, each read)

    def _get(self, path: str) -> tuple[int, bytes]:
        conn = _UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise RuntimeUnavailable(
                f"{self.runtime} at {self.socket_path}: {str(e) or type(e).__name__}") from e
        finally:
            conn.close()
        if resp.status >= 500:
            raise RuntimeUnavailable(
                f"{self.runtime} at {self.socket_path}: GET {path}: HTTP {resp.status} "
                f"{body[:200].decode(errors='replace').strip()}")
        return resp.status, body

    def _get_json(self, path: str, missing: str | None = None) -> Any:
        """The JSON body of a 200; a 404 is ContainerNotFound(missing) when `missing`
        names what the path looks up, else the API itself is not there."""
        status, body = self._get(path)
        if status == 404 and missing is not None:
            raise ContainerNotFound(f"{self.runtime}: no {missing}")
        if status != 200:
            # e.g. 400 for a malformed id: not "missing", not usable either.
            raise RuntimeUnavailable(f"{self.runtime} at {self.socket_path}: GET {path}: "
                                     f"HTTP {status}")
        try:
            return json.loads(body)
        except ValueError as e:
            raise RuntimeUnavailable(f"{self.runtime}: GET {path}: bad JSON: {e}") from e

    def ping(self) -> bool:
        try:
            status, _ = self._get(self._ping_path)
        except RuntimeUnavailable:
            return False
        return status == 200

    _ping_path = "/"


def _pod_fields(labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "pod_name": labels.get(LABEL_POD_NAME, ""),
        "pod_namespace": labels.get(LABEL_POD_NAMESPACE, ""),
        "pod_uid": labels.get(LABEL_POD_UID, ""),
        # dockershim marks the pause container one way, containerd's CRI another.
        "pod_sandbox": labels.get("io.kubernetes.docker.type") == "podsandbox"
        or labels.get("io.cri-containerd.kind") == "sandbox",
    }


def _created_ns(value: object) -> int:
    # A bad timestamp must not lose the name and image: 0 means "unknown".
    if isinstance(value, str):
        try:
            return rfc3339_ns(value)
        except ValueError:
            return 0
    return value if isinstance(value, int) else 0


def _path_segment(ident: str) -> str:
    """A container or image id as one URL path segment (an id never holds "/")."""
    if not ident:
        raise ContainerNotFound("empty id")
    return quote(ident, safe=":")  # "sha256:…" image ids stay readable


class DockerClient(_UnixHTTPClient):
    """Docker Engine API; Podman too (same API on its own socket, runtime="podman")."""

    def __init__(self, socket_path: str = DOCKER_SOCKET, timeout: float = 2.0, *,
                 runtime: str = "docker", api_version: str | None = DOCKER_API_VERSION) -> None:
        super().__init__(socket_path, timeout)
        self.runtime = runtime
        self._prefix = f"/v{api_version}" if api_version else ""

    _ping_path = "/_ping"

    def inspect(self, container_id: str) -> ContainerInfo:
        path = f"{self._prefix}/containers/{_path_segment(container_id)}/json"
        c = self._get_json(path, f"container {container_id}")
        try:
            config = c.get("Config") or {}
            labels = dict(config.get("Labels") or {})
            image_id = c.get("Image") or ""
            return ContainerInfo(
                id=c["Id"], runtime=self.runtime,
                name=(c.get("Name") or "").lstrip("/"),
                image=config.get("Image") or "",
                image_digest=self._image_digest(image_id),
                created_ns=_created_ns(c.get("Created")),
                labels=labels, **_pod_fields(labels))
        except (AttributeError, KeyError, TypeError) as e:
            raise RuntimeUnavailable(f"{self.runtime}: GET {path}: unexpected reply: {e!r}") from e

    def _image_digest(self, image_id: str) -> str:
        """First RepoDigest (a pulled image), else the local image id."""
        if not image_id:
            return ""
        try:
            image = self._get_json(f"{self._prefix}/images/{_path_segment(image_id)}/json",
                                   f"image {image_id}")
        except ContainerNotFound:  # image removed since the container was created
            return image_id
        digests = image.get("RepoDigests") if isinstance(image, dict) else None
        return digests[0] if digests else image_id

    def list_running(self) -> list[str]:
        """Ids of the running containers."""
        reply = self._get_json(f"{self._prefix}/containers/json")
        try:
            return [c["Id"] for c in reply]
        except (KeyError, TypeError) as e:
            raise RuntimeUnavailable(f"{self.runtime}: container list: unexpected reply: {e!r}") from e


class CrioClient(_UnixHTTPClient):
    """CRI-O's HTTP inspect endpoint (served on crio.sock next to the CRI gRPC API).

    `GET /containers/<id>` answers {name, pid, image, image_ref, created_time (ns),
    labels, annotations, sandbox, …}; 404 for an unknown id. Older CRI-O lacks
    `name`/`image_ref`; those fields then stay empty."""

    runtime = "crio"
    _ping_path = "/info"

    def __init__(self, socket_path: str = CRIO_SOCKET, timeout: float = 2.0) -> None:
        super().__init__(socket_path, timeout)

    def inspect(self, container_id: str) -> ContainerInfo:
        path = f"/containers/{_path_segment(container_id)}"
        c = self._get_json(path, f"container {container_id}")
        try:
            labels = dict(c.get("labels") or {})
            ref = c.get("image_ref") or ""
            fields = _pod_fields(labels)
            # The pod's infra container has the sandbox's id.
            fields["pod_sandbox"] = fields["pod_sandbox"] or c.get("sandbox") == container_id
            return ContainerInfo(
                id=container_id, runtime=self.runtime,
                # CRI-O's own name is "k8s_<ctr>_<pod>_<ns>_<uid>_<n>"; prefer the pod spec's.
                name=labels.get(LABEL_CONTAINER_NAME) or c.get("name") or "",
                image=c.get("image") or "",
                image_digest=f"sha256:{ref}" if re.fullmatch(r"[0-9a-f]{64}", ref) else ref,
                created_ns=_created_ns(c.get("created_time")),
                labels=labels, **fields)
        except (AttributeError, TypeError) as e:
            raise RuntimeUnavailable(f"crio: GET {path}: unexpected reply: {e!r}") from e


def default_clients(sockets: Mapping[str, str] = DEFAULT_SOCKETS, timeout: float = 2.0, *,
                    present_only: bool = True) -> dict[str, RuntimeClient]:
    """A client per runtime, keyed by runtime name: for sockets that exist, or for all
    of them (`present_only=False`: a runtime that starts later is found at its first
    lookup). Whether a runtime answers is learnt at the first lookup.
    ValueError for a runtime with no client (containerd speaks gRPC only)."""
    clients: dict[str, RuntimeClient] = {}
    for runtime, path in sockets.items():
        if present_only and not Path(path).is_socket():
            continue
        if runtime == "crio":
            clients[runtime] = CrioClient(path, timeout)
        elif runtime in ("docker", "podman"):
            clients[runtime] = DockerClient(path, timeout, runtime=runtime)
        else:
            raise ValueError(f"no client for runtime {runtime!r}")
    return clients
