"""`template` format: each event through a Jinja2 template (in place of Tracee's Go templates).

    -o template:/etc/pytracee/line.j2:/var/log/pytracee/events.log
    -o gotemplate=/etc/pytracee/line.j2          (Tracee's spelling; Jinja2 syntax inside)
    -o destinations.siem.format=template=/etc/pytracee/siem.j2

The template is rendered once per event; the outputs are concatenated (so a
template that wants one line per event ends with a newline). Its context is the
event's JSON document (what `-o json` prints): every top-level key
(`eventName`, `processName`, `args`, `returnValue`, `matchedPolicies`, ...) and
the whole document as `event`:

    {{ timestamp }} {{ processName }}[{{ hostProcessId }}] {{ eventName }} = {{ returnValue }}
    {% for a in args %} {{ a.name }}={{ a.value }}{% endfor %}

A missing key renders as nothing (as a missing map key does in Go templates, minus
the "<no value>"). `{% include %}` finds files next to the template. Autoescaping
is off: the output is not HTML. A syntax error is reported at start-up with its
file and line; an error while rendering one event (e.g. a filter given a wrong
type) skips that event, is counted and logged once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import jinja2
import orjson

from pytracee.errors import UsageError
from pytracee.events.event import Event
from pytracee.sinks.json_sink import JsonRenderer

log = logging.getLogger(__name__)


class TemplateFormat:
    name = "template"

    def __init__(self, path: str, renderer: JsonRenderer | None = None) -> None:
        """Load and compile the template; UsageError (with file:line) when it cannot be."""
        self.path = path
        self.renderer = renderer if renderer is not None else JsonRenderer(lambda _v: [])
        self.errors = 0
        self._warned = False
        directory, base = os.path.split(os.path.abspath(path))
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(directory), autoescape=False,
                                 keep_trailing_newline=True, undefined=jinja2.ChainableUndefined)
        try:
            self.template = env.get_template(base)
        except jinja2.TemplateSyntaxError as exc:
            where = f"{exc.filename or path}:{exc.lineno}"
            raise UsageError(f"template syntax error: {exc.message}", where=where) from None
        except jinja2.TemplateNotFound:
            raise UsageError("template file not found", where=path) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read template: {reason}", where=path) from None
        self._render: Callable[..., str] = self.template.render

    def header(self) -> bytes:
        return b""

    def render(self, events: list[Event]) -> bytes:
        render = self._render
        out = []
        for line in self.renderer.render_batch(events).split(b"\n"):
            if not line:
                continue
            doc = orjson.loads(line)
            try:
                out.append(render(doc, event=doc))
            except Exception as exc:  # the user's template failed on this event: skip it
                self.errors += 1
                if not self._warned:
                    self._warned = True
                    log.warning("template %s failed on a %s event (skipped, counted; "
                                "further failures are not logged): %s",
                                self.path, doc.get("eventName", "?"), exc)
        return "".join(out).encode("utf-8", "backslashreplace")
