"""`referral-router route --json`: the section 7 contract, every outcome, area signal and trap."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router.cli import main
from tests.formfactory import (
    complete_referral,
    docx_paragraphs,
    docx_table,
    encrypted_pdf,
    fillable_pdf,
    image_only_pdf,
    labelled,
    table_pdf,
    text_pdf,
)
from tests.mailfactory import build_email, dsn

MET = "preventreferrals@met.pnn.police.uk"
KENT = "preventreferrals@kent.police.uk"
REVIEW = "review@router.example"
CONTRACT = {"file", "outcome", "area", "to", "cc", "ack_to", "missing", "reason", "fields"}


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch, rules_dir: Path) -> None:
    monkeypatch.setenv("ROUTER_RULES_DIR", str(rules_dir))
    monkeypatch.setenv("ROUTER_REVIEW_ADDRESS", REVIEW)
    monkeypatch.setenv("ROUTER_FROM_ADDRESS", "referrals@router.example")


@pytest.fixture
def route(tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Write emails to files, run `route --json` on them, return the decoded lines."""

    def run(*emails: bytes, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        paths = []
        for number, raw in enumerate(emails):
            path = tmp_path / f"mail{number}.eml"
            path.write_bytes(raw)
            paths.append(str(path))
        assert main(["route", *paths, "--json", *extra]) == 0
        lines = capsys.readouterr().out.splitlines()
        return [json.loads(line) for line in lines]

    return run


def pdf_mail(fields: dict[str, str], **kw: Any) -> bytes:
    return build_email(
        attachments=[("referral.pdf", fillable_pdf(labelled(fields)), "application/pdf")], **kw
    )


def test_complete_form_is_forwarded_with_mandatory_ccs(route) -> None:  # type: ignore[no-untyped-def]
    """A complete Lewisham form: To the Met, CC Lewisham's MASH and Prevent team."""
    [decision] = route(pdf_mail(complete_referral()))
    assert decision.keys() >= CONTRACT
    assert decision["outcome"] == "forward"
    assert decision["area"] == "lewisham"
    assert decision["to"] == [MET]
    assert set(decision["cc"]) == {"mashagency@lewisham.gov.uk", "prevent@lewisham.gov.uk"}
    assert decision["ack_to"] == "teacher@school.example"
    assert decision["missing"] == []
    assert decision["fields"]["person_postcode"] == "SE13 6LH"


def test_addresses_are_bare_and_lower_case(route) -> None:  # type: ignore[no-untyped-def]
    """Display names and case are stripped from every address in the output."""
    raw = pdf_mail(complete_referral(), sender="Sam Teacher <Sam.Teacher@School.Example>")
    [decision] = route(raw)
    assert decision["ack_to"] == "sam.teacher@school.example"


@pytest.mark.parametrize("missing", ["person_dob", "concern", "referrer_organisation"])
def test_missing_field_is_incomplete_and_goes_to_the_team(route, missing: str) -> None:  # type: ignore[no-untyped-def]
    """A required field missing sends the form to the council Prevent team, never the police."""
    [decision] = route(pdf_mail(complete_referral(**{missing: None})))
    assert decision["outcome"] == "incomplete"
    assert decision["missing"] == [missing]
    assert decision["to"] == ["prevent@lewisham.gov.uk"]
    assert MET not in decision["to"] + decision["cc"]


def test_placeholders_count_as_missing(route) -> None:  # type: ignore[no-untyped-def]
    """N/A, TBC and friends are not values."""
    fields = complete_referral(
        person_dob="N/A", concern="TBC", referrer_email=None, referrer_phone="-"
    )
    [decision] = route(pdf_mail(fields))
    assert decision["missing"] == ["person_dob", "concern", "referrer_contact"]


def test_email_from_does_not_count_as_referrer_contact(route) -> None:  # type: ignore[no-untyped-def]
    """With no referrer email or phone on the form, the sender's address does not fill it in."""
    [decision] = route(pdf_mail(complete_referral(referrer_email=None, referrer_phone=None)))
    assert decision["missing"] == ["referrer_contact"]


@pytest.mark.parametrize(
    ("postcode", "area", "to"),
    [
        ("SE13 6LH", "lewisham", MET),
        ("se136lh", "lewisham", MET),
        ("KT1 1AA", "kingston", MET),
        ("CT1 2AB", "kent-and-medway", KENT),
        ("ME4 4AA", "kent-and-medway", KENT),
        ("TN10 3AA", "kent-and-medway", KENT),
        ("CV3 1AA", "coventry", "prevent@coventry.gov.uk"),
    ],
)
def test_postcode_finds_the_area(route, postcode: str, area: str, to: str) -> None:  # type: ignore[no-untyped-def]
    """The referred person's postcode decides the area, case and space insensitive."""
    [decision] = route(pdf_mail(complete_referral(person_postcode=postcode, local_authority=None)))
    assert (decision["outcome"], decision["area"], decision["to"]) == ("forward", area, [to])


@pytest.mark.parametrize("postcode", ["KT12 1AA", "CV31 1AA", "TN5 6AA", "LS1 4AP"])
def test_postcode_traps_do_not_match(route, postcode: str) -> None:  # type: ignore[no-untyped-def]
    """KT12 is not KT1, CV31 is not CV3: a postcode outside every area goes to review at the
    inbox's team, and is never forwarded on the strength of the inbox."""
    [decision] = route(pdf_mail(complete_referral(person_postcode=postcode)))
    assert decision["outcome"] == "needs_review"
    assert decision["area"] == "lewisham"  # the inbox's area
    assert decision["to"] == ["prevent@lewisham.gov.uk"]


def test_unknown_postcode_and_unknown_inbox_goes_to_review_address(route) -> None:  # type: ignore[no-untyped-def]
    """No area and no known inbox: the operator's review address, area null."""
    raw = pdf_mail(complete_referral(person_postcode="LS1 4AP"), to=("someone@else.example",))
    [decision] = route(raw)
    assert (decision["outcome"], decision["area"], decision["to"]) == (
        "needs_review",
        None,
        [REVIEW],
    )


def test_postcode_at_end_of_address(route) -> None:  # type: ignore[no-untyped-def]
    """With no postcode field, the postcode at the end of the address is used."""
    fields = complete_referral(
        person_postcode=None, person_address="2 Test Lane, Canterbury ct1 1aa"
    )
    [decision] = route(pdf_mail(fields))
    assert decision["area"] == "kent-and-medway"


@pytest.mark.parametrize(
    "authority", ["London Borough of Lewisham", "Lewisham Council", "LEWISHAM"]
)
def test_local_authority_is_the_second_signal(route, authority: str) -> None:  # type: ignore[no-untyped-def]
    """Without a postcode the named local authority decides, ignoring affixes and case."""
    fields = complete_referral(
        person_postcode=None, person_address="1 Example Road", local_authority=authority
    )
    [decision] = route(pdf_mail(fields, to=("prevent@kent.gov.uk",)))
    assert decision["area"] == "lewisham"
    # arrived at Kent's inbox: Kent's Prevent team keeps sight of it
    assert "prevent@kent.gov.uk" in decision["cc"]


def test_inbox_is_the_last_signal(route) -> None:  # type: ignore[no-untyped-def]
    """Without postcode or authority, the inbox the mail was sent to decides."""
    fields = complete_referral(
        person_postcode=None, person_address="1 Example Road", local_authority=None
    )
    [decision] = route(pdf_mail(fields, to=("Prevent@Kent.gov.uk",)))
    assert (decision["outcome"], decision["area"], decision["to"]) == (
        "forward",
        "kent-and-medway",
        [KENT],
    )


def test_cross_area_copies_the_inbox_team(route) -> None:  # type: ignore[no-untyped-def]
    """A Kent postcode sent to Lewisham's inbox goes to Kent Police, Lewisham's team copied."""
    [decision] = route(pdf_mail(complete_referral(person_postcode="CT1 1AA", local_authority=None)))
    assert decision["to"] == [KENT]
    assert set(decision["cc"]) == {"prevent@kent.gov.uk", "prevent@lewisham.gov.uk"}


def test_incomplete_in_area_without_team_goes_to_review(route) -> None:  # type: ignore[no-untyped-def]
    """Kingston has no Prevent team mailbox: its incomplete referrals go to the review address."""
    fields = complete_referral(person_postcode="KT2 5AA", local_authority=None, concern=None)
    [decision] = route(pdf_mail(fields, to=("someone@else.example",)))
    assert (decision["outcome"], decision["area"], decision["to"]) == (
        "incomplete",
        "kingston",
        [REVIEW],
    )


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("form.pdf", "text_pdf", "application/pdf"),
        ("form.pdf", "table_pdf", "application/pdf"),
        (
            "form.docx",
            "docx_table",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        ("form.docx", "docx_paragraphs", "application/octet-stream"),
    ],
)
def test_every_form_kind_is_read(route, name: str, data: str, mime: str) -> None:  # type: ignore[no-untyped-def]
    """Text-layer PDFs, table PDFs and Word forms all give a complete forward."""
    rows = list(labelled(complete_referral()).items())
    builders = {
        "text_pdf": lambda: text_pdf([f"{k}: {v}" for k, v in rows], pages=2),
        "table_pdf": lambda: table_pdf(rows),
        "docx_table": lambda: docx_table(rows),
        "docx_paragraphs": lambda: docx_paragraphs([f"{k}: {v}" for k, v in rows], split_runs=True),
    }
    [decision] = route(build_email(attachments=[(name, builders[data](), mime)]))
    assert decision["outcome"] == "forward", decision["reason"]
    assert decision["area"] == "lewisham"


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("form.pdf", lambda: encrypted_pdf(labelled(complete_referral())), "application/pdf"),
        ("scan.pdf", image_only_pdf, "application/pdf"),
        ("form.pdf", lambda: b"%PDF-1.7\n garbage garbage", "application/pdf"),
        ("form.doc", lambda: bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 600, "application/msword"),
        ("form.docx", lambda: b"PK\x03\x04 broken zip", "application/octet-stream"),
        ("photo.jpg", lambda: b"\xff\xd8\xff\xe0" + b"\0" * 100, "image/jpeg"),
    ],
)
def test_unreadable_forms_need_review(route, name, data, mime) -> None:  # type: ignore[no-untyped-def]
    """Encrypted, image-only, corrupt, legacy and image files: review at the inbox's team."""
    [decision] = route(build_email(attachments=[(name, data(), mime)]))
    assert decision["outcome"] == "needs_review"
    assert decision["to"] == ["prevent@lewisham.gov.uk"]
    assert decision["reason"]
    assert decision["ack_to"] == "teacher@school.example"


def test_no_attachment_needs_review(route) -> None:  # type: ignore[no-untyped-def]
    """An email with no form gets exactly one needs_review decision."""
    [decision] = route(build_email())
    assert decision["outcome"] == "needs_review"
    assert decision["fields"] == {}


def test_two_forms_make_two_decisions_and_supporting_documents_none(route) -> None:  # type: ignore[no-untyped-def]
    """One decision per form; a chronology with no fields makes no decision."""
    raw = build_email(
        attachments=[
            ("a.pdf", fillable_pdf(labelled(complete_referral())), "application/pdf"),
            (
                "chronology.pdf",
                text_pdf(["Chronology of events", "Meeting held at school."]),
                "application/pdf",
            ),
            (
                "b.pdf",
                fillable_pdf(labelled(complete_referral(person_postcode="CT1 1AA"))),
                "application/pdf",
            ),
        ]
    )
    decisions = route(raw)
    assert [d["area"] for d in decisions] == ["lewisham", "kent-and-medway"]
    assert all(d["ack_to"] == "teacher@school.example" for d in decisions)


def test_ack_goes_to_from_never_reply_to(route) -> None:  # type: ignore[no-untyped-def]
    """Reply-To and the form's referrer email are never acknowledged."""
    [decision] = route(pdf_mail(complete_referral(), reply_to="attacker@evil.example"))
    assert decision["ack_to"] == "teacher@school.example"


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"Precedence": "bulk"},
        {"Precedence": "list"},
    ],
)
def test_automatic_replies_and_bulk_are_ignored(route, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """Auto-replies and bulk mail get one ignored decision, nothing sent, no ack."""
    [decision] = route(pdf_mail(complete_referral(), headers=headers))
    assert (decision["outcome"], decision["to"], decision["cc"], decision["ack_to"]) == (
        "ignored",
        [],
        [],
        None,
    )


def test_delivery_report_is_ignored(route) -> None:  # type: ignore[no-untyped-def]
    """A DSN is ignored, never acknowledged."""
    [decision] = route(dsn("<x@router.example>"))
    assert decision["outcome"] == "ignored"
    assert decision["ack_to"] is None


def test_own_mail_coming_back_is_ignored(route) -> None:  # type: ignore[no-untyped-def]
    """Mail from the router's address with Auto-Submitted is its own and is ignored."""
    raw = pdf_mail(
        complete_referral(),
        sender="referrals@router.example",
        headers={"Auto-Submitted": "auto-generated"},
    )
    [decision] = route(raw)
    assert decision["outcome"] == "ignored"


@pytest.mark.parametrize(
    ("sender", "headers"),
    [
        ("system@school.example", {"Auto-Submitted": "auto-generated"}),
        ("noreply@school.example", {}),
        ("teacher@school.example", {"X-Auto-Response-Suppress": "All"}),
    ],
)
def test_automatic_but_not_replies_are_routed_without_ack(route, sender, headers) -> None:  # type: ignore[no-untyped-def]
    """Generated mail is routed normally but never acknowledged."""
    [decision] = route(pdf_mail(complete_referral(), sender=sender, headers=headers))
    assert decision["outcome"] == "forward"
    assert decision["ack_to"] is None


def test_age_condition_adds_a_cc_for_children(route, rules_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A rule's child condition adds its CC only when the person is under 18."""
    custom = tmp_path / "rules"
    shutil.copytree(rules_dir, custom)
    area_file = custom / "areas" / "lewisham.yaml"
    area_file.write_text(
        area_file.read_text() + "conditions:\n  - age: child\n    cc: [children@lewisham.gov.uk]\n"
    )
    [child] = route(
        pdf_mail(complete_referral(person_dob="01/02/2015")), extra=("--rules", str(custom))
    )
    [adult] = route(
        pdf_mail(complete_referral(person_dob="01/02/1990")), extra=("--rules", str(custom))
    )
    assert "children@lewisham.gov.uk" in child["cc"]
    assert "children@lewisham.gov.uk" not in adult["cc"]


@pytest.mark.slow
def test_file_is_reported_as_given_and_unreadable_file_exits_1(tmp_path: Path) -> None:
    """Exit 1 when a file cannot be read, 2 for a usage error; `file` is the path as given."""
    good = tmp_path / "good.eml"
    good.write_bytes(build_email())
    command = [sys.executable, "-m", "router", "route", "--json"]
    result = subprocess.run(
        [*command, str(good), str(tmp_path / "missing.eml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout.splitlines()[0])["file"] == str(good)
    assert "missing.eml" in result.stderr and "Traceback" not in result.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "router", "route", "--nope"], capture_output=True, check=False
    )
    assert usage.returncode == 2


def test_readable_explanation_without_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --json, route explains what it found and which rule decided."""
    path = tmp_path / "m.eml"
    path.write_bytes(pdf_mail(complete_referral()))
    assert main(["route", str(path)]) == 0
    out = capsys.readouterr().out
    assert "decision 1: forward" in out and "lewisham" in out and "postcode" in out
    assert "Jane" not in out  # values are not printed
