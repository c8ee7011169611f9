"""Loading and checking a rules directory, reporting every problem with file, line and field.

A rules directory holds `areas/<id>.yaml` (one `Area` each; `id` defaults to the file name
and must equal it when given), `forms.yaml` (`FormRules`) and `acknowledgments.yaml`
(`AckTexts`). Besides the shape of each file, the loader checks that postcodes are real
districts and postcode areas, that no two areas claim the same district, postcode area,
local authority name or inbox (nor a district inside a postcode area another area claims
whole: a district may only sit inside its own area's postcode area), that forms.yaml names
only canonical fields and that acknowledgment texts use only the known placeholders.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from router.core.rules.checks import (
    AreaFile,
    check_acknowledgments,
    check_area_file,
    check_forms,
    check_overlaps,
    check_own_addresses,
    check_sectors,
)
from router.core.rules.document import Document, RuleProblem, parse_document, suggest
from router.core.rules.model import AckTexts, Area, FormRules, Rules, SectorRules
from router.core.rules.postcode import compact
from router.core.rules.schema import rules_schema

__all__ = [
    "RuleProblem",
    "RulesError",
    "check_rules",
    "load_rules",
    "rule_warnings",
    "rules_schema",
]

AREAS_DIR = "areas"
FORMS_FILE = "forms.yaml"
ACKS_FILE = "acknowledgments.yaml"
SECTORS_FILE = "sectors.yaml"  # optional: without it every referrer is `other`
_YAML_SUFFIXES = (".yaml", ".yml")
NOT_FOUND_HINT = " (ROUTER_RULES_DIR, or --rules for route, chooses another)"

M = TypeVar("M", bound=BaseModel)


class RulesError(Exception):
    """A rules directory that cannot be used; `problems` says everything wrong with it."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n".join(str(problem) for problem in problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the rules:\n{lines}")


def load_rules(directory: Path) -> Rules:
    """Load and validate a rules directory.

    Args:
        directory: the rules directory (holding `areas/`, `forms.yaml`,
            `acknowledgments.yaml`).

    Returns:
        The rules, areas in file name order, postcodes upper-case without spaces, and
        `version` the SHA-256 of the files loaded.

    Raises:
        RulesError: anything is wrong; it lists every problem found, not just the first.
    """
    rules, problems = _load(Path(directory))
    if problems or rules is None:
        raise RulesError(problems)
    return rules


def check_rules(directory: Path) -> list[RuleProblem]:
    """Return every problem in a rules directory (empty when it loads), sorted by file and
    line."""
    return _load(Path(directory))[1]


def rule_warnings(directory: Path) -> list[RuleProblem]:
    """What is allowed but probably wrong in a rules directory (`rules check` prints it and
    still succeeds): an area that sends mail to one of the router's own inbox addresses."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    ignored: list[RuleProblem] = []  # check_rules reports those
    area_files = _parse_areas(_read_files(directory, ignored), ignored)
    return sorted(check_own_addresses(area_files), key=lambda p: (p.file, p.line or 0))


def _load(directory: Path) -> tuple[Rules | None, list[RuleProblem]]:
    """Load what can be loaded and collect every problem on the way."""
    if not directory.is_dir():
        # The file "." is the directory itself (problems name paths relative to it).
        return None, [RuleProblem(file=".", message=f"rules directory not found{NOT_FOUND_HINT}")]
    problems: list[RuleProblem] = []
    files = _read_files(directory, problems)
    area_files = _parse_areas(files, problems)
    areas = [_validate(item.doc, item.data, Area, problems) for item in area_files]
    problems += check_overlaps(area_files)

    forms = acks = None
    doc = _parse(files, FORMS_FILE, problems)
    if doc is not None:
        data = doc.data()
        problems += check_forms(doc, data)
        forms = _validate(doc, data, FormRules, problems)
    doc = _parse(files, ACKS_FILE, problems)
    if doc is not None:
        data = doc.data()
        problems += check_acknowledgments(doc, data, [item.id for item in area_files])
        acks = _validate(doc, data, AckTexts, problems)

    sectors: SectorRules | None = SectorRules()
    if SECTORS_FILE in files:
        doc = _parse(files, SECTORS_FILE, problems)
        sectors = None if doc is None else _validate(doc, doc.data(), SectorRules, problems)
        problems += [] if doc is None else check_sectors(doc, doc.data())

    problems.sort(key=lambda p: (p.file, p.line or 0))
    if problems or forms is None or acks is None or sectors is None or None in areas:
        return None, problems
    rules = Rules(
        areas=[area for area in areas if area is not None],
        forms=forms,
        acknowledgments=acks,
        sectors=sectors,
        version=_version(files),
    )
    return rules, problems


def _read_files(directory: Path, problems: list[RuleProblem]) -> dict[str, bytes]:
    """Read the rules files: relative path -> bytes. Reports missing files, files with the
    wrong suffix and YAML files the loader would not read (a misspelt name must not be
    silently ignored)."""
    wanted: list[str] = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix in _YAML_SUFFIXES and not path.name.startswith("."):
            if path.name in (FORMS_FILE, ACKS_FILE, SECTORS_FILE):
                wanted.append(path.name)
            else:
                hint = suggest(path.name, [FORMS_FILE, ACKS_FILE, SECTORS_FILE])
                message = (
                    "unknown rules file: expected forms.yaml, acknowledgments.yaml, sectors.yaml"
                )
                problems.append(RuleProblem(file=path.name, message=message + hint))
    for name in (FORMS_FILE, ACKS_FILE):
        if name not in wanted:
            problems.append(RuleProblem(file=name, message="required file is missing"))
    areas_dir = directory / AREAS_DIR
    if not areas_dir.is_dir():
        problems.append(RuleProblem(file=f"{AREAS_DIR}/", message="required folder is missing"))
    else:
        wanted += _area_paths(areas_dir, problems)
    files = {}
    for relative in wanted:
        try:
            files[relative] = (directory / relative).read_bytes()
        except OSError as error:
            problems.append(RuleProblem(file=relative, message=f"cannot read: {error.strerror}"))
    return files


def _area_paths(areas_dir: Path, problems: list[RuleProblem]) -> list[str]:
    """List the area files (relative paths), reporting `.yml` files and an empty folder."""
    found = []
    for path in sorted(areas_dir.iterdir()):
        relative = f"{AREAS_DIR}/{path.name}"
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".yaml":
            found.append(relative)
        elif path.suffix == ".yml":
            message = "area files must end in .yaml (this one is not loaded)"
            problems.append(RuleProblem(file=relative, message=message))
    if not found:
        problems.append(
            RuleProblem(file=f"{AREAS_DIR}/", message="no area files (areas/<id>.yaml)")
        )
    return found


def _parse(files: dict[str, bytes], name: str, problems: list[RuleProblem]) -> Document | None:
    """Parse one file that was read, or record why it cannot be parsed."""
    if name not in files:
        return None
    parsed = parse_document(files[name], name)
    if isinstance(parsed, RuleProblem):
        problems.append(parsed)
        return None
    return parsed


def _parse_areas(files: dict[str, bytes], problems: list[RuleProblem]) -> list[AreaFile]:
    """Parse and check each area file; `id` defaults to the file stem."""
    area_files = []
    for name in sorted(files):
        if not name.startswith(f"{AREAS_DIR}/"):
            continue
        doc = _parse(files, name, problems)
        if doc is None:
            continue
        data = doc.data()
        area = AreaFile(id=Path(name).stem, doc=doc, data=data)
        problems += check_area_file(area)
        area_files.append(area)
    return area_files


def _validate(
    doc: Document, data: dict[str, Any], model: type[M], problems: list[RuleProblem]
) -> M | None:
    """Validate plain data as `model`, recording problems; areas get their defaults and
    normalised postcodes first."""
    if model is Area:
        data = _normalised_area(data, Path(doc.file).stem)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems += doc.validation_problems(error, model)
        return None


def _normalised_area(data: dict[str, Any], stem: str) -> dict[str, Any]:
    """Give an area its id from the file name and write its postcodes upper-case without
    spaces."""
    data = {"id": stem, **data}
    postcodes = data.get("postcodes")
    if isinstance(postcodes, dict):
        postcodes = dict(postcodes)
        for key in ("districts", "areas"):
            if isinstance(postcodes.get(key), list):
                postcodes[key] = [
                    compact(item) if isinstance(item, str) else item for item in postcodes[key]
                ]
        data["postcodes"] = postcodes
    return data


def _version(files: dict[str, bytes]) -> str:
    """SHA-256 over the sorted (relative path, content) of the files loaded."""
    digest = hashlib.sha256()
    for name in sorted(files):
        content = files[name]
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()
