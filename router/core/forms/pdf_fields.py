"""Walk a PDF's AcroForm field tree safely and turn field values into text.

The tree is walked by hand rather than through `PdfReader.get_fields`, with a visited set
and a cap (`limits.MAX_PDF_FIELDS`), so a /Kids loop cannot recurse forever; each terminal
field comes with its inherited type and the names of its parents ("Referrer.Name").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

from router.core.forms import limits

_RADIO = 1 << 15
_PUSHBUTTON = 1 << 16
_TICKED = ("On", "1", "True", "X", "Checked", "Yes")


@dataclass(frozen=True)
class PdfField:
    """One terminal AcroForm field."""

    node: DictionaryObject
    field_type: object  # "/Tx", "/Btn", "/Ch", "/Sig" or None
    parents: list[str]

    @property
    def labels(self) -> list[str]:
        """Its tooltip (/TU) and partial name (/T), in that order, where present."""
        return [str(resolve(self.node[key])) for key in ("/TU", "/T") if key in self.node]

    @property
    def is_checkbox(self) -> bool:
        """True for a check box (a button that is neither a radio nor a push button)."""
        return self.field_type == "/Btn" and not self.flags & (_RADIO | _PUSHBUTTON)

    @property
    def flags(self) -> int:
        """The field flags (/Ff)."""
        raw = resolve(self.node.get("/Ff", 0))
        return int(raw) if isinstance(raw, int | float) else 0

    def value(self) -> str | None:
        """The answer as text; None for fields that hold no answer (push buttons, signatures).

        Check boxes read "Yes" or "No"; radio groups their chosen option ("" when none).
        """
        raw = resolve(self.node.get("/V"))
        if self.field_type == "/Btn":
            if self.flags & _PUSHBUTTON:
                return None
            state = str(raw).lstrip("/") if isinstance(raw, NameObject | str) else ""
            if state in ("", "Off"):
                return "" if self.flags & _RADIO else "No"
            return "Yes" if state in _TICKED else state
        if self.field_type == "/Sig":
            return None
        if isinstance(raw, ArrayObject):
            return ", ".join(str(resolve(item)) for item in raw)
        if isinstance(raw, str):  # TextStringObject, also decoded byte strings
            return str(raw)
        return ""


def resolve(obj: object) -> object:
    """The direct object behind an indirect reference."""
    return obj.get_object() if isinstance(obj, IndirectObject) else obj


def as_dict(obj: object) -> DictionaryObject:
    """A resolved dictionary, or an empty one."""
    resolved = resolve(obj)
    return resolved if isinstance(resolved, DictionaryObject) else DictionaryObject()


def walk_fields(reader: PdfReader) -> Iterator[PdfField]:
    """The terminal AcroForm fields of a document, in form order."""
    acroform = as_dict(as_dict(reader.trailer.get("/Root")).get("/AcroForm"))
    roots = resolve(acroform.get("/Fields"))
    if not isinstance(roots, ArrayObject):
        return
    stack: list[tuple[object, object, list[str]]] = [(r, None, []) for r in reversed(roots)]
    seen: set[int] = set()
    while stack and len(seen) < limits.MAX_PDF_FIELDS:
        ref, inherited_type, parents = stack.pop()
        node = resolve(ref)
        if not isinstance(node, DictionaryObject) or id(node) in seen:
            continue
        seen.add(id(node))
        field_type = node.get("/FT", inherited_type)
        kids = resolve(node.get("/Kids"))
        named = [k for k in kids if "/T" in as_dict(k)] if isinstance(kids, ArrayObject) else []
        if named:
            names = [*parents, str(node.get("/T", ""))]
            stack.extend((kid, field_type, names) for kid in reversed(named))
        elif "/T" in node:
            yield PdfField(node, field_type, parents)
