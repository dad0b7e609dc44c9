"""The auditors' verifier needs no HSM (issue 10 item 4): the signed-note format and `audit
verify`'s computation (`signed_note.py`, `verify.py`, `sources.py`) import neither `hsm` nor
python-pkcs11; only the signer (`checkpoints.py`) does. Checked in a fresh interpreter, where
`sys.modules` shows everything an import pulled in."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import {module}
print(sorted(m for m in sys.modules if m.split('.')[0] in ('hsm', 'pkcs11')))
"""


@pytest.mark.parametrize("module", ["idservice.audit.signed_note", "idservice.audit.verify",
                                    "idservice.audit.sources"])
def test_verifier_modules_do_not_import_the_hsm(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE.format(module=module)],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_signer_does_import_the_hsm() -> None:
    """The probe can see an HSM import when there is one."""
    result = subprocess.run([sys.executable, "-c", PROBE.format(
        module="idservice.audit.checkpoints")], capture_output=True, text=True, timeout=60,
        check=True)
    assert "hsm" in result.stdout
