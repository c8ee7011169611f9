"""Tests that `rules check` reports each kind of problem with the right file, line and field."""

from __future__ import annotations

import pytest

from tests.core.rules.conftest import RulesDir
from tests.core.rules.test_loader import AREA, area

TESTSHIRE = "areas/testshire.yaml"


def only(rules_copy: RulesDir) -> str:
    """Return the one problem found (failing if there are none or several)."""
    problems = rules_copy.problems()
    assert len(problems) == 1, problems
    return problems[0]


def test_yaml_syntax_error_names_the_line(rules_copy: RulesDir) -> None:
    """A YAML syntax error is reported with its line, and other files are still checked."""
    rules_copy.write(TESTSHIRE, area(**{"[AB1, AB2, AB3]": "[AB1, AB2, AB3"}))
    rules_copy.edit("forms.yaml", "  person_dob:", "  person_dobb:")
    problems = rules_copy.problems()
    assert len(problems) == 2, problems
    # The line where the unclosed bracket opens, not the next one where the parser gave up.
    assert problems[0].startswith("areas/testshire.yaml:5: YAML syntax error:")
    assert problems[1].startswith("forms.yaml:")


def test_duplicate_key_is_a_syntax_error(rules_copy: RulesDir) -> None:
    """A key given twice (the second would silently win) is reported at the second."""
    rules_copy.write(TESTSHIRE, AREA + "to: other@testshire.police.uk\n")
    problem = only(rules_copy)
    assert problem.startswith("areas/testshire.yaml:14: YAML syntax error:")
    assert "duplicate key" in problem


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "inboxes:",
            "inboxs:",
            "areas/testshire.yaml:7: inboxs: unknown key 'inboxs' (did you mean 'inboxes'?)",
        ),
        (
            "  areas: [ZE]",
            "  area: [ZE]",
            "areas/testshire.yaml:6: postcodes.area: unknown key 'area' (did you mean 'areas'?)",
        ),
    ],
)
def test_unknown_key_is_named(rules_copy: RulesDir, old: str, new: str, expected: str) -> None:
    """A typo'd key is an error naming the key and the likely intended one."""
    rules_copy.write(TESTSHIRE, area(**{old: new}))
    assert only(rules_copy) == expected


def test_malformed_address(rules_copy: RulesDir) -> None:
    """A malformed address is reported at its list item."""
    rules_copy.write(TESTSHIRE, area(**{"- prevent@testshire.gov.uk\nteam": "- prevent@\nteam"}))
    problem = only(rules_copy)
    assert problem == "areas/testshire.yaml:12: cc[1]: 'prevent@' is not an email address"


def test_missing_required_key(rules_copy: RulesDir) -> None:
    """A missing `to` is named (there is no line to point at)."""
    rules_copy.write(TESTSHIRE, area(**{"to: prevent@testshire.police.uk\n": ""}))
    assert only(rules_copy) == "areas/testshire.yaml: to: required key 'to' is missing"


def test_wrong_type_says_what_was_given(rules_copy: RulesDir) -> None:
    """A value of the wrong type is reported with the value found."""
    rules_copy.write(TESTSHIRE, area(**{"  - Testshire": "  - 42"}))
    problem = only(rules_copy)
    assert problem.startswith("areas/testshire.yaml:3: names[0]: should be text, not 42")
    assert "42" in problem


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("SE1Z", "'SE1Z' is not a postcode district"),
        ("CN1", "'CN1' is not a postcode district"),
        ("KT", "'KT' is a postcode area: list it under postcodes.areas"),
        ("SE13 6LH", "'SE13 6LH' is a full postcode: list its district 'SE13'"),
        ("AB1", "'AB1' is listed twice"),
    ],
)
def test_bad_district(rules_copy: RulesDir, entry: str, message: str) -> None:
    """A district that is not a real outward code, or is repeated, is reported at its item."""
    rules_copy.write(TESTSHIRE, area(**{"AB2": entry}))
    assert only(rules_copy).startswith(f"areas/testshire.yaml:5: postcodes.districts[1]: {message}")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("XQ", "'XQ' is not a UK postcode area"),
        ("ZE1", "'ZE1' is a district: list it under postcodes.districts"),
        ("Z", "'Z' is not a UK postcode area"),
    ],
)
def test_bad_postcode_area(rules_copy: RulesDir, entry: str, message: str) -> None:
    """A postcode area must be the letters of a real UK postcode area."""
    rules_copy.write(TESTSHIRE, area(**{"[ZE]": f"[{entry}]"}))
    assert only(rules_copy).startswith(f"areas/testshire.yaml:6: postcodes.areas[0]: {message}")


def test_valid_district_shapes_pass(rules_copy: RulesDir) -> None:
    """Real districts of every shape load: W1A, EC1V, SW1A, E1W, B1, M60, BS0."""
    rules_copy.write(TESTSHIRE, area(**{"AB1, AB2, AB3": "W1A, EC1V, SW1A, E1W, B1, M60, BS0"}))
    assert rules_copy.problems() == []


def test_two_areas_claim_one_district(rules_copy: RulesDir) -> None:
    """A district claimed by two areas is reported at the later file, naming the earlier."""
    rules_copy.write(TESTSHIRE, area(**{"AB3": "SE13"}))
    assert only(rules_copy) == (
        "areas/testshire.yaml:5: postcodes.districts[2]: district 'SE13' is also claimed by "
        "area 'lewisham' (areas/lewisham.yaml:10)"
    )


def test_district_inside_another_areas_postcode_area(rules_copy: RulesDir) -> None:
    """A district inside a postcode area that another area claims whole is an error."""
    rules_copy.write(TESTSHIRE, area(**{"AB3": "CT9"}))
    problem = only(rules_copy)
    assert problem.startswith("areas/testshire.yaml:5: postcodes.districts[2]: 'CT9' lies in")
    assert "'kent-and-medway'" in problem


def test_district_inside_its_own_postcode_area_is_allowed(rules_copy: RulesDir) -> None:
    """An area may list a district inside a postcode area it claims itself."""
    rules_copy.write(TESTSHIRE, area(**{"AB3": "ZE2"}))
    assert rules_copy.problems() == []


def test_two_areas_claim_one_postcode_area(rules_copy: RulesDir) -> None:
    """A whole postcode area claimed twice is an error."""
    rules_copy.write(TESTSHIRE, area(**{"[ZE]": "[ME]"}))
    assert only(rules_copy).startswith(
        "areas/testshire.yaml:6: postcodes.areas[0]: postcode area 'ME' is also claimed by "
        "area 'kent-and-medway'"
    )


def test_duplicate_inbox_across_areas(rules_copy: RulesDir) -> None:
    """An inbox belongs to one area only, compared case-insensitively."""
    text = area(**{"- prevent@testshire.gov.uk\nto": "- Prevent@Kent.gov.uk\nto"})
    rules_copy.write(TESTSHIRE, text)
    assert only(rules_copy).startswith(
        "areas/testshire.yaml:8: inboxes[0]: inbox 'Prevent@Kent.gov.uk' is also claimed by "
        "area 'kent-and-medway'"
    )


def test_duplicate_authority_name_after_normalisation(rules_copy: RulesDir) -> None:
    """Two areas may not share a local authority name, ignoring case and affixes."""
    rules_copy.write(TESTSHIRE, area(**{"- Testshire": "- LEWISHAM COUNCIL"}))
    problem = only(rules_copy)
    assert problem.startswith("areas/testshire.yaml:3: names[0]: 'LEWISHAM COUNCIL' names the same")
    assert "'lewisham'" in problem


def test_id_must_equal_file_name(rules_copy: RulesDir) -> None:
    """A given id must equal the file stem."""
    rules_copy.write(TESTSHIRE, "id: testtown\n" + AREA)
    assert only(rules_copy) == (
        "areas/testshire.yaml:1: id: id 'testtown' must equal the file name 'testshire' "
        "(or be left out)"
    )


def test_file_name_must_be_a_valid_id(rules_copy: RulesDir) -> None:
    """A file name that is not a valid id is reported (the id comes from it)."""
    rules_copy.write("areas/Test_Shire.yaml", AREA)
    problem = only(rules_copy)
    assert problem.startswith("areas/Test_Shire.yaml: id: area id 'Test_Shire' must be")


def test_unknown_canonical_fields_in_forms(rules_copy: RulesDir) -> None:
    """forms.yaml may only name canonical fields, in labels, composite and required."""
    rules_copy.edit("forms.yaml", "  person_gender:", "  person_sex:")
    rules_copy.edit("forms.yaml", "  - referrer_contact", "  - referrer_contacts")
    problems = rules_copy.problems()
    assert len(problems) == 2, problems
    assert problems[0].startswith("forms.yaml:")
    assert "labels.person_sex: unknown canonical field 'person_sex'" in problems[0]
    assert "required[6]: unknown canonical field 'referrer_contacts'" in problems[1]
    assert "(did you mean 'referrer_contact'?)" in problems[1]


def test_label_listed_under_two_fields(rules_copy: RulesDir) -> None:
    """A label that would mean two canonical fields is reported."""
    rules_copy.edit("forms.yaml", "    - Sex\n", "    - Sex\n    - D.O.B\n")
    assert "label 'D.O.B' is also listed under 'person_dob'" in only(rules_copy)


def test_unknown_placeholder_in_acknowledgment(rules_copy: RulesDir) -> None:
    """Acknowledgment texts may use only the known placeholders (none is personal data)."""
    rules_copy.edit("acknowledgments.yaml", "received: {reference}", "received: {person_name}")
    problems = rules_copy.problems()
    assert any(
        p.startswith("acknowledgments.yaml:8: default.subject: unknown placeholder {person_name}")
        for p in problems
    ), problems


def test_attribute_access_placeholder_is_refused(rules_copy: RulesDir) -> None:
    """A placeholder reaching into an attribute is unknown, not evaluated."""
    rules_copy.edit("acknowledgments.yaml", '{reference}"', '{reference.__class__}"')
    assert any("unknown placeholder {reference.__class__}" in p for p in rules_copy.problems())


def test_malformed_braces_in_acknowledgment(rules_copy: RulesDir) -> None:
    """An unbalanced brace is reported, not left to fail when a reply is sent."""
    rules_copy.edit("acknowledgments.yaml", "areas: {}", "areas:\n  lewisham:\n    footer: '999 }'")
    assert any(
        p.startswith("acknowledgments.yaml:") and "areas.lewisham.footer: malformed text" in p
        for p in rules_copy.problems()
    )


def test_acknowledgment_area_that_does_not_exist(rules_copy: RulesDir) -> None:
    """acknowledgments.yaml `areas:` keys must be area ids."""
    override = "areas:\n  lewsham:\n    subject: Hi {reference}"
    rules_copy.edit("acknowledgments.yaml", "areas: {}", override)
    problem = only(rules_copy)
    assert problem.startswith("acknowledgments.yaml:")
    assert "areas.lewsham: 'lewsham' is not an area id (did you mean 'lewisham'?)" in problem


def test_acknowledgment_footer_must_give_999(rules_copy: RulesDir) -> None:
    """An area's footer override must keep the 999 advice."""
    rules_copy.edit("acknowledgments.yaml", "areas: {}", "areas:\n  coventry:\n    footer: Bye.")
    assert only(rules_copy).endswith("areas.coventry.footer: the footer must give the 999 advice")


@pytest.mark.parametrize("name", ["forms.yaml", "acknowledgments.yaml"])
def test_missing_required_file(rules_copy: RulesDir, name: str) -> None:
    """forms.yaml and acknowledgments.yaml must exist."""
    rules_copy.remove(name)
    assert only(rules_copy) == f"{name}: required file is missing"


def test_missing_areas_folder(rules_copy: RulesDir) -> None:
    """The areas/ folder must exist (acknowledgments then name unknown areas too)."""
    rules_copy.remove("areas")
    assert "areas/: required folder is missing" in rules_copy.problems()


def test_empty_areas_folder(rules_copy: RulesDir) -> None:
    """An areas/ folder without area files is an error."""
    for path in (rules_copy.path / "areas").iterdir():
        path.unlink()
    assert only(rules_copy) == "areas/: no area files (areas/<id>.yaml)"


def test_yml_area_file_is_reported(rules_copy: RulesDir) -> None:
    """An area file ending in .yml is reported rather than silently not loaded."""
    rules_copy.write("areas/testshire.yml", AREA)
    assert only(rules_copy).startswith("areas/testshire.yml: area files must end in .yaml")


def test_misspelt_rules_file_is_reported(rules_copy: RulesDir) -> None:
    """An unknown YAML file at the top (a misspelling) is reported with a suggestion."""
    rules_copy.write("acknowledgements.yaml", "default: {}\n")
    assert only(rules_copy).endswith("(did you mean 'acknowledgments.yaml'?)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "areas/testshire.yaml: file is empty"),
        ("- a\n- b\n", "areas/testshire.yaml:1: file must be a mapping of keys to values"),
    ],
)
def test_file_that_is_not_a_mapping(rules_copy: RulesDir, text: str, message: str) -> None:
    """An empty file, or one that is a list, is reported."""
    rules_copy.write(TESTSHIRE, text)
    assert only(rules_copy) == message


def test_not_utf8(rules_copy: RulesDir) -> None:
    """A file that is not UTF-8 is reported with the line of the first bad byte."""
    (rules_copy.path / TESTSHIRE).write_bytes(AREA.encode().replace(b"Testshire", b"Test\xffshire"))
    assert only(rules_copy) == "areas/testshire.yaml:3: file is not UTF-8 text"


def test_every_problem_in_one_pass(rules_copy: RulesDir) -> None:
    """Problems in several files and of several kinds are all reported together, sorted."""
    rules_copy.write(TESTSHIRE, area(**{"AB2": "A2", "inboxes:": "inboxs:", "[ZE]": "[CT]"}))
    rules_copy.edit("forms.yaml", "  person_dob:", "  dob:")
    rules_copy.edit("acknowledgments.yaml", '{reference}"', '{ref}"')
    rules_copy.write("areas/other.yml", AREA)
    problems = rules_copy.problems()
    files = [p.split(":")[0] for p in problems]
    assert files == sorted(files)
    assert len(problems) >= 6, problems
    joined = "\n".join(problems)
    for fragment in ("'A2' is not a postcode district", "unknown key 'inboxs'", "'CT'", "'dob'"):
        assert fragment in joined
    assert "{ref}" in joined
    assert "areas/other.yml" in joined


def test_nested_aliases_do_not_blow_up(rules_copy: RulesDir) -> None:
    """A file of nested YAML aliases ("billion laughs") is checked quickly, values quoted
    in short."""
    lines = ["l0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 7):
        lines.append(f"l{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    lines += ["names: *a6", "to: prevent@testshire.police.uk"]
    rules_copy.write(TESTSHIRE, "\n".join(lines) + "\n")
    problems = rules_copy.problems()
    assert len(problems) == 17, problems  # 7 unknown keys, 10 names that are not text
    assert all(len(problem) < 200 for problem in problems)


def test_an_area_sending_to_a_router_inbox_is_warned_about(rules_copy: RulesDir) -> None:
    """`rules check` warns, naming file, line and field, when an area's team address is one
    of the router's own inbox addresses, and still succeeds."""
    import subprocess
    import sys

    rules_copy.edit("areas/kingston.yaml", "team: null", "team: Prevent@Lewisham.gov.uk")
    done = subprocess.run(
        [sys.executable, "-m", "router", "rules", "check", str(rules_copy.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    kingston = [line for line in done.stderr.splitlines() if "kingston.yaml" in line]
    assert kingston == [
        f"warning: {rules_copy.path}/areas/kingston.yaml:15: team: 'Prevent@Lewisham.gov.uk' is"
        " one of the router's own inbox addresses (in lewisham's inboxes): mail sent there"
        " comes back to the router and is ignored"
    ]
