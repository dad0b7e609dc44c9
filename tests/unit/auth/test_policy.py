"""The policy table (issue 10 item 6): one place says which roles may do what, and where.

The last test reads the source tree: a role name as a string literal anywhere in `idservice/`
outside the policy table (and the role vocabulary in `auth/principal.py`) is a check made in a
second place, the kind that drifted before (`issue_batch` allowed `admin`, `issue_pin` did not).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from idservice.auth.policy import (
    POLICY,
    Action,
    authorize,
    covers,
    event_pin_prefix,
    require_jurisdiction,
)
from idservice.auth.principal import ROLES, Principal
from idservice.errors import Forbidden

ROOT = Path(__file__).resolve().parents[3]


def _principal(*roles: str, jur: str = "052") -> Principal:
    return Principal(kind="operator", id="p", roles=frozenset(roles), jurisdiction=jur,
                     token_id="t", expires_at=0)


@pytest.mark.parametrize(("action", "allowed"), [
    (Action.PIN_ISSUE, {"registrar"}),
    (Action.PIN_ISSUE_BATCH, {"registrar", "admin"}),  # contract 4: batch (registrar, admin)
    (Action.PIN_VERIFY, {"registrar", "officer"}),
    (Action.PERSON_READ, {"officer"}),
    (Action.PERSON_SEARCH, {"officer"}),
    (Action.PERSON_CORRECT, {"officer"}),
    (Action.PERSON_DEATH, {"registrar"}),  # contract 9
    (Action.AUDIT_EVENTS, {"auditor"}),
    (Action.AUDIT_TREE, {"auditor"}),
    (Action.PIN_RESERVE, {"registrar"}),  # contract 8
    (Action.RESERVATION_ADMIN, {"admin"}),  # contract 8: another client's reservation
    (Action.WEB_SESSION, {"officer", "auditor", "admin"}),  # issue 15: the web pages
])
def test_each_action_allows_the_contracts_roles_only(action: Action, allowed: set[str]) -> None:
    assert set(POLICY[action].roles) == allowed
    for role in ROLES:
        if role in allowed:
            authorize(_principal(role), action)
        else:
            with pytest.raises(Forbidden) as refused:
                authorize(_principal(role), action)
            assert refused.value.code == "forbidden" and refused.value.status == 403


def test_every_action_has_a_rule() -> None:
    assert set(POLICY) == set(Action)


def test_other_province_forbidden_with_field() -> None:
    officer = _principal("officer", jur="052")
    require_jurisdiction(officer, Action.PERSON_READ, pin="052324000001")
    with pytest.raises(Forbidden) as refused:
        require_jurisdiction(officer, Action.PERSON_READ, pin="079324000001", field="pin")
    assert refused.value.code == "forbidden" and refused.value.field == "pin"
    assert covers(_principal("officer", jur="*"), Action.PERSON_READ, "079")
    assert covers(officer, Action.PIN_VERIFY, "079")  # verification is not province-bound


def test_auditor_prefix_is_its_province_or_none() -> None:
    assert event_pin_prefix(_principal("auditor", jur="052")) == "052"
    assert event_pin_prefix(_principal("auditor", jur="*")) is None


def _role_literals(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        is_actor = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == "Actor"  # actor type `admin` (contract 7), not the role
        if isinstance(node, ast.Call) and not is_actor:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Constant) and arg.value in ROLES:
                    found.append((node.lineno, str(arg.value)))
    return found


def test_role_names_are_checked_only_in_the_policy_table() -> None:
    allowed = {ROOT / "idservice" / "auth" / "policy.py"}
    offenders = [f"{path.relative_to(ROOT)}:{line}: {role!r}"
                 for path in sorted((ROOT / "idservice").rglob("*.py")) if path not in allowed
                 for line, role in _role_literals(path)]
    assert offenders == []
