"""Reading a task family out of an LLM's reply, tolerantly.

Models wrap code in fences (or forget to close them), put prose around it,
and write JSON with single quotes, trailing commas, Python literals or no
quotes at all. :func:`parse_task` finds the ``TaskFamily`` source and the
metadata (name, description, capability, difficulty) anyway, and raises
:class:`ParseError` with a one-line reason when there is nothing to find.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(?:import |from \S+ import |class |def |@|#|[A-Za-z_][A-Za-z0-9_]* *=)")
_FIELD = re.compile(r"""^\W*["']?(name|description|capability|difficulty)["']?\**\s*[:=]\s*(.+?)\s*,?\s*$""",
                    re.IGNORECASE | re.MULTILINE)
_DONE = re.compile(r"^\W*DONE\W*$", re.MULTILINE)
FIELDS = ("name", "description", "capability", "difficulty")


class ParseError(ValueError):
    """The reply holds no usable task; the message says what is missing."""


@dataclass(frozen=True)
class Draft:
    """A task family as parsed from a reply."""

    name: str
    description: str
    capability: str
    difficulty: int
    source: str


def parse_task(text: str) -> Draft:
    """The task family in ``text``; raises :class:`ParseError` if there is none."""
    source, rest = _find_source(text)
    meta = _find_metadata(rest)
    description = str(meta.get("description") or _docstring(source) or "").strip()
    if not description:
        raise ParseError("no task description in the reply")
    name = _slug(str(meta.get("name") or description))
    return Draft(name=name, description=description, capability=str(meta.get("capability") or "general").strip(),
                 difficulty=_difficulty(meta.get("difficulty")), source=source)


def declares_done(text: str) -> bool:
    """Whether a reflection reply says the task is finished (a line ``DONE``, no new code)."""
    return bool(_DONE.search(text)) and "class TaskFamily" not in text


def _find_source(text: str) -> tuple[str, str]:
    """(the code holding ``class TaskFamily``, the reply without it)."""
    for match in _FENCE.finditer(text):
        if "class TaskFamily" in match.group(2):
            return match.group(2).strip() + "\n", text[: match.start()] + text[match.end():]
    pos = text.find("class TaskFamily")
    if pos < 0:
        raise ParseError("no `class TaskFamily` in the reply")
    lines = text[:pos].splitlines(keepends=True)
    start = len(lines)
    while start > 0 and (_CODE_START.match(lines[start - 1]) or lines[start - 1].startswith((" ", "\t"))
                         or not lines[start - 1].strip()):
        start -= 1
    head = "".join(lines[:start])
    code = "".join(lines[start:]) + text[pos:]
    return code.strip() + "\n", head


def _find_metadata(text: str) -> dict:
    """The metadata object: JSON (or near-JSON) in braces, else ``key: value`` lines."""
    for blob in _brace_blocks(text):
        data = _loads_lenient(blob)
        if isinstance(data, dict) and any(k in data for k in FIELDS):
            return {k.lower(): v for k, v in data.items()}
    return {m.group(1).lower(): m.group(2).strip().strip("\"'*") for m in _FIELD.finditer(text)}


def _brace_blocks(text: str) -> list[str]:
    """Balanced ``{...}`` spans, outermost first (braces inside strings are respected)."""
    blocks, depth, start, quote, escaped = [], 0, 0, None, False
    for i, ch in enumerate(text):
        if quote:
            escaped = ch == "\\" and not escaped
            if ch == quote and not escaped:
                quote = None
            continue
        if ch in "\"'" and depth:
            quote = ch
        elif ch == "{":
            start = i if depth == 0 else start
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                blocks.append(text[start: i + 1])
    return blocks


def _loads_lenient(blob: str):
    """JSON, then Python literals, then JSON with trailing commas and bare keys fixed."""
    try:
        return json.loads(blob)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(blob)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    fixed = re.sub(r",\s*([}\]])", r"\1", blob)
    fixed = re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', fixed)
    fixed = re.sub(r"\b(True|False|None)\b", lambda m: {"True": "true", "False": "false", "None": "null"}[m[1]], fixed)
    try:
        return json.loads(fixed)
    except json.JSONDecodeError:
        return None


def _docstring(source: str) -> str | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in [tree, *(n for n in tree.body if isinstance(n, ast.ClassDef))]:
        doc = ast.get_docstring(node)
        if doc:
            return doc.splitlines()[0]
    return None


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:48].rstrip("-") or "task"


def _difficulty(value) -> int:
    match = re.search(r"\d+", str(value)) if value is not None else None
    return min(5, max(1, int(match.group()))) if match else 3
