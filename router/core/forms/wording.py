"""How a form words each canonical field, for acknowledgments and team notices, which never
show canonical names (SPEC section 3). Re-exported by `router.core.forms.fields`."""

from __future__ import annotations

# How a form words each canonical field, for acknowledgments and team notices, which never
# show canonical names (SPEC section 3). `referrer_contact` is the requirement "an email or
# a phone number"; `person_address` is satisfied by an address or a postcode.
FIELD_WORDING: dict[str, str] = {
    "person_name": "name of the person referred",
    "person_dob": "date of birth of the person referred",
    "person_gender": "gender of the person referred",
    "person_address": "home address or postcode of the person referred",
    "person_postcode": "postcode of the person referred",
    "local_authority": "local authority (council) of the person referred",
    "concern": "your concerns (the reason for the referral)",
    "referrer_name": "your name",
    "referrer_organisation": "your organisation",
    "referrer_email": "your email address",
    "referrer_phone": "your telephone number",
    "referrer_contact": "your email address or telephone number",
    "consent": "whether the person is aware of the referral",
}


def field_wording(name: str) -> str:
    """The form's words for a canonical field name ("person_dob" -> "date of birth of ...")."""
    return FIELD_WORDING.get(name, name.replace("_", " "))
