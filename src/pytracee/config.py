"""`--config FILE`: every flag's value from YAML, Tracee style.

    events: [openat, execve]          # or a comma string: "openat,execve"
    scope: [comm=bash, follow]
    policy: [/etc/pytracee/policies]
    output: [json, option:parse-arguments]
    buffers: [kernel.events=8192]
    stores: [process.max-processes=20000]
    enrichment: [container.docker.socket=/run/docker.sock]
    capture: [exec, "write=/tmp/*", "dir:/var/lib/pytracee/out"]
    server: [http-address=127.0.0.1:3366, metrics]  # or {http-address: ..., metrics: true}
    log-level: info

Flags given on the command line replace the file's value for that flag.
"""

from __future__ import annotations

from typing import Any

import yaml

from pytracee.errors import UsageError

LOG_LEVELS = ("debug", "info", "warning", "error")
# config key -> (click parameter name, takes a list)
_KEYS: dict[str, tuple[str, bool]] = {
    "events": ("events", True),
    "scope": ("scope", True),
    "policy": ("policies", True),
    "output": ("output", True),
    "buffers": ("buffers", True),
    "stores": ("stores", True),
    "enrichment": ("enrichment", True),
    "signatures-dir": ("signatures_dirs", True),
    "signatures-config": ("signatures_config", False),
    "server": ("server", True),
    "capture": ("capture", True),
    "artifacts": ("artifacts", True),
    "log-level": ("log_level", False),
}


def _where(path: str, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}"


def load_config(path: str) -> dict[str, Any]:
    """The file's values keyed by click parameter name (for click's default_map)."""
    try:
        with open(path, encoding="utf-8") as fh:
            root = yaml.compose(fh)
    except OSError as exc:
        raise UsageError(f"cannot read config file: {exc.strerror}", where=path) from None
    except UnicodeDecodeError:
        raise UsageError("config file is not UTF-8 text", where=path) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"invalid YAML: {exc.problem}", where=f"{path}{line}") from None
    except yaml.YAMLError as exc:  # e.g. a control character (reader error)
        raise UsageError(f"invalid YAML: {exc}".splitlines()[0], where=path) from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise UsageError("a config file is a mapping of flag names to values", where=_where(path, root))
    out: dict[str, Any] = {}
    for key_node, value_node in root.value:
        key = key_node.value
        if key not in _KEYS:
            raise UsageError(f"unknown config key {key!r} (known: {', '.join(_KEYS)})",
                             token=key, where=_where(path, key_node))
        name, is_list = _KEYS[key]
        if key == "server" and isinstance(value_node, yaml.MappingNode):
            out[name] = _server_mapping(path, value_node)
        elif is_list:
            out[name] = _strings(path, key, value_node)
        elif isinstance(value_node, yaml.ScalarNode):
            if key == "log-level" and value_node.value not in LOG_LEVELS:
                raise UsageError(f"log-level must be one of {', '.join(LOG_LEVELS)}",
                                 token=value_node.value, where=_where(path, value_node))
            out[name] = value_node.value
        else:
            raise UsageError(f"{key!r} takes a single value", token=key, where=_where(path, value_node))
    return out


def _strings(path: str, key: str, node: yaml.Node) -> list[str]:
    if isinstance(node, yaml.ScalarNode):
        return [node.value] if node.value else []
    if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.ScalarNode) for n in node.value):
        return [n.value for n in node.value]
    raise UsageError(f"{key!r} takes a string or a list of strings", token=key, where=_where(path, node))


def _server_mapping(path: str, node: yaml.MappingNode) -> list[str]:
    """Tracee's `server:` mapping as --server values: `metrics: true` -> metrics,
    `http-address: HOST:PORT` -> http-address=HOST:PORT, `false` drops the key."""
    out = []
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode) or not isinstance(v, yaml.ScalarNode):
            raise UsageError("'server' entries take single values", token="server", where=_where(path, k))
        if v.value.lower() == "true":
            out.append(k.value)
        elif v.value.lower() != "false":
            out.append(f"{k.value}={v.value}")
    return out
