"""One parsed rules file with line numbers, and the problems found in it (`RuleProblem`)."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

Loc = Sequence[str | int]

# Bounded repr for values quoted in messages (a value may be a huge or deeply nested list).
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring = 2, 4, 4, 50


class RuleProblem(BaseModel):
    """One thing wrong with a rules directory, pointing at the file, line and field."""

    model_config = ConfigDict(frozen=True)

    file: str  # path relative to the rules directory, with forward slashes
    line: int | None = None  # 1-based
    field: str | None = None  # dotted path, e.g. `postcodes.districts[2]`
    message: str

    def __str__(self) -> str:
        """Format as `areas/lewisham.yaml:7: postcodes.districts[2]: message`."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


def field_path(loc: Loc) -> str:
    """Render a location as a dotted path: ("postcodes", "districts", 2) ->
    "postcodes.districts[2]"."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _plain(node: Any, seen: dict[int, Any] | None = None) -> Any:
    """Turn ruamel's round-trip containers and scalar subclasses into plain Python values.

    A node reached twice through YAML aliases is converted once and shared, so a file of
    nested aliases ("billion laughs") cannot blow up.
    """
    seen = {} if seen is None else seen
    if id(node) in seen:
        return seen[id(node)]
    if isinstance(node, dict):
        mapping: dict[Any, Any] = {}
        seen[id(node)] = mapping
        mapping.update((_plain(key, seen), _plain(value, seen)) for key, value in node.items())
        return mapping
    if isinstance(node, list):
        sequence: list[Any] = []
        seen[id(node)] = sequence
        sequence.extend(_plain(item, seen) for item in node)
        return sequence
    for kind in (bool, str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


@dataclass
class Document:
    """A rules file parsed with ruamel's round-trip loader, which remembers line numbers."""

    file: str
    root: Any  # the ruamel node (CommentedMap for a well-formed file)
    plain: dict[str, Any]  # the same content as plain dicts, lists and scalars

    def data(self) -> dict[str, Any]:
        """Return the file's content as plain dicts, lists and scalars (do not modify)."""
        return self.plain

    def line(self, loc: Loc) -> int | None:
        """Return the 1-based line of the key or item at `loc`, or of its nearest existing
        parent when `loc` does not exist (a missing key); None for the file as a whole."""
        node: Any = self.root
        line: int | None = None
        for depth, part in enumerate(loc):
            position: tuple[int, int] | None = None
            if isinstance(node, CommentedMap) and part in node:
                position = node.lc.key(part)
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                position = node.lc.item(part)
            if position is None:
                return line
            line = position[0] + 1
            if depth < len(loc) - 1:
                node = node[part]
        return line

    def problem(self, loc: Loc, message: str) -> RuleProblem:
        """Make a problem about the key or item at `loc`."""
        return RuleProblem(
            file=self.file, line=self.line(loc), field=field_path(loc) or None, message=message
        )

    def validation_problems(
        self, error: ValidationError, model: type[BaseModel]
    ) -> list[RuleProblem]:
        """Translate a pydantic error from validating this file as `model` into problems."""
        return [
            self.problem(item["loc"], _describe(item, model))
            for item in error.errors(include_url=False)
        ]


def _known_keys(model: Any, loc: Loc) -> list[str]:
    """Return the keys the model allows in the mapping that holds `loc`."""
    for part in loc[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return []
            model = field.annotation
        else:
            # list[X], dict[str, X] and X | None: step into X.
            args = [arg for arg in get_args(model) if arg is not type(None)]
            if not args:
                return []
            model = args[-1]
    while not (isinstance(model, type) and issubclass(model, BaseModel)):
        args = [arg for arg in get_args(model) if arg is not type(None)]
        if not args:
            return []
        model = args[-1]
    return list(model.model_fields)


# Pydantic's wording for type errors speaks Python; these speak YAML.
_PLAIN_MESSAGES = {
    "string_type": "should be text",
    "list_type": "should be a list",
    "dict_type": "should be a mapping of keys to values",
    "model_type": "should be a mapping of keys to values",
    "model_attributes_type": "should be a mapping of keys to values",
    "int_type": "should be a whole number",
    "int_parsing": "should be a whole number",
    "int_from_float": "should be a whole number",
}


def _describe(item: Any, model: type[BaseModel]) -> str:
    """Word one pydantic error for a person editing YAML."""
    kind, loc, value = item["type"], item["loc"], item.get("input")
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}" + suggest(str(loc[-1]), _known_keys(model, loc))
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing" if loc else "required key is missing"
    message = _PLAIN_MESSAGES.get(kind) or str(item["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "id":
        return (
            f"area id {value!r} must be lower-case letters, digits and hyphens "
            "(the file name is the id when none is given)"
        )
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "enum":
        message += f", not {_short(value)}"
    return message


def _short(value: Any) -> str:
    """A short repr of a value for a message."""
    text = _REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def suggest(word: str, choices: Sequence[str]) -> str:
    """Return " (did you mean 'x'?)" for the closest of `choices`, or ""."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _line(mark: Any) -> int | None:
    return int(mark.line) + 1 if mark is not None else None


def syntax_error(error: MarkedYAMLError) -> tuple[int | None, str]:
    """The line where a YAML syntax problem starts, and what it is in plain words.

    The parser gives up where it can go no further, often lines after the cause (an
    unclosed bracket or quote); those causes are recognised and pointed at instead.
    """
    context, problem = str(error.context or ""), str(error.problem or "")
    start, stop = _line(error.context_mark), _line(error.problem_mark)
    gave_up = f" (the file cannot be read past line {stop})" if stop and stop != start else ""
    if context.startswith("while parsing a flow sequence") and start:
        return start, f"a list opened with '[' on this line is not closed with ']'{gave_up}"
    if context.startswith("while parsing a flow mapping") and start:
        return start, f"a mapping opened with '{{' on this line is not closed with '}}'{gave_up}"
    if context.startswith("while scanning a quoted scalar") and start:
        return start, f"a text opened with a quote on this line has no closing quote{gave_up}"
    if "duplicate key" in problem:
        key = re.search(r'duplicate key "([^"]{1,80})"', problem)
        name = f" {key.group(1)!r}" if key else ""
        return stop, f"duplicate key{name}: each key may be given only once in a mapping"
    if problem.startswith("mapping values are not allowed"):
        return stop, "a second ': ' on one line: put text that contains ': ' in quotes"
    if "'\\t'" in problem or "'\t'" in problem:
        return stop, "a tab character: indent with spaces only"
    if problem.startswith("expected <block end>"):
        return stop, "this line is not indented like the lines above it"
    message = " ".join(part for part in (context, problem) if part)
    return stop or start, message


def parse_document(data: bytes, file: str) -> Document | RuleProblem:
    """Parse one YAML file, or describe why it cannot be parsed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad_line = data[: error.start].count(b"\n") + 1
        return RuleProblem(file=file, line=bad_line, message="file is not UTF-8 text")
    try:
        root = YAML(typ="rt").load(text)
        plain = _plain(root)
    except RecursionError:
        return RuleProblem(file=file, message="YAML is nested too deeply")
    except MarkedYAMLError as error:
        line, message = syntax_error(error)
        return RuleProblem(file=file, line=line, message=f"YAML syntax error: {message}")
    except YAMLError as error:
        position = getattr(error, "position", None)
        at = text[:position].count("\n") + 1 if isinstance(position, int) else None
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return RuleProblem(file=file, line=at, message=f"YAML error: {message}")
    if root is None:
        return RuleProblem(file=file, message="file is empty")
    if not isinstance(root, dict):
        return RuleProblem(file=file, line=1, message="file must be a mapping of keys to values")
    return Document(file=file, root=root, plain=plain)
