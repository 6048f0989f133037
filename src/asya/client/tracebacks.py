"""Finding the handler's own line in a traceback text (the one a failed job's ``error_details``
carries), so ``asya call`` can show where the user's code went wrong without the whole trace.

The text is Python's ``traceback.format_exception`` output, possibly chained ("The above
exception was the direct cause…") or an exception group (lines prefixed with ``|``). The frame
shown is the innermost one of the exception that was raised last that is the user's: not Asya's
own code (its runtime, sidecar, crew) and, when there is one, not the standard library or an
installed package either (a ``KeyError`` raised inside ``json`` is shown at the handler's call).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FRAME = re.compile(
    r'^(?P<indent>[\s|]*)File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<function>.+))?$'
)
_CHAIN = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)
#: Asya's own files: the package (a clone's ``src/asya`` or an installed one) and the runtime
#: file the operator mounts into pods.
_ASYA = re.compile(
    r"(?:^|[/\\])(?:src|site-packages|dist-packages)[/\\]asya[/\\]|asya_runtime\.py$"
)
_LIBRARY = re.compile(
    r"^<frozen |[/\\]lib[/\\]python\d+(?:\.\d+)?[/\\]|[/\\](?:site|dist)-packages[/\\]"
)
_MARKERS = re.compile(r"^[\s~^]+$")


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str
    source: str

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


def is_asya_file(path: str) -> bool:
    return bool(_ASYA.search(path))


def is_library_file(path: str) -> bool:
    return bool(_LIBRARY.search(path))


def frames_by_exception(text: str) -> list[list[Frame]]:
    """The frames of each exception in the text, in the order printed (the last one raised last)."""
    sections: list[list[Frame]] = [[]]
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.strip(" |") in _CHAIN:
            sections.append([])
            continue
        match = _FRAME.match(line)
        if match is None:
            continue
        source = ""
        following = lines[number + 1] if number + 1 < len(lines) else ""
        indent = len(match["indent"])
        body = following.lstrip(" |")
        if (
            len(following) - len(body) > indent
            and body
            and not _FRAME.match(following)
            and not _MARKERS.match(body)
        ):
            source = body.strip()
        sections[-1].append(
            Frame(match["file"], int(match["line"]), (match["function"] or "").strip(), source)
        )
    return [section for section in sections if section]


def handler_frame(text: str | None) -> Frame | None:
    """The user's innermost frame of the last exception with one (None when there is none)."""
    if not text:
        return None
    for frames in reversed(frames_by_exception(text)):
        not_asya = [frame for frame in frames if not is_asya_file(frame.file)]
        users = [frame for frame in not_asya if not is_library_file(frame.file)]
        if users:
            return users[-1]
        if not_asya:
            return not_asya[-1]
    return None
