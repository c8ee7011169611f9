"""The rules directory: loading and checking it, and matching referrals to areas."""

from router.core.rules.loader import RuleProblem, RulesError, check_rules, load_rules, rules_schema
from router.core.rules.matcher import (
    AreaMatcher,
    extract_postcode,
    normalise_authority,
    outward_code,
)

__all__ = [
    "AreaMatcher",
    "RuleProblem",
    "RulesError",
    "check_rules",
    "extract_postcode",
    "load_rules",
    "normalise_authority",
    "outward_code",
    "rules_schema",
]
