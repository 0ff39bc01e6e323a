"""`make audit` (tools/audit_locks.py): a known vulnerability fails the run, an unchecked package
is never reported as clean, and only the exceptions written in docs/security.md are accepted.

pip-audit is replaced by a stand-in executable that prints the JSON pip-audit prints, so these
tests need no network; the real run is `make audit`, part of `make test`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.deploy.files import ROOT

SCRIPT = ROOT / "tools" / "audit_locks.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_locks", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, answer: Any, *flags: str) -> tuple[int, str, list[str]]:
    calls = tmp_path / "calls.json"
    fake = tmp_path / "pip-audit"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"print({json.dumps(json.dumps(answer))})\n"
        "sys.exit(1 if any(d.get('vulns') for d in json.loads("
        f"{json.dumps(json.dumps(answer))})['dependencies']) else 0)\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--pip-audit", str(fake), *flags, "requirements.lock"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stdout, calls.read_text(encoding="utf-8").splitlines()


def test_a_known_vulnerability_fails(tmp_path: Path) -> None:
    answer = {
        "dependencies": [
            {"name": "jinja2", "version": "2.10", "vulns": [{"id": "PYSEC-2019-217"}]},
            {"name": "httpx", "version": "0.28.1", "vulns": []},
        ]
    }
    status, out, calls = _run(tmp_path, answer)
    assert status == 1
    assert "VULNERABLE jinja2==2.10: PYSEC-2019-217 (fixed in: no fixed version)" in out
    argv = json.loads(calls[0])
    assert argv[:2] == ["-r", "requirements.lock"]
    assert {"--no-deps", "--disable-pip", "-f", "json"} <= set(argv)
    assert argv[argv.index("-s") + 1] == "pypi"


def test_unchecked_packages_are_reported_not_audited(tmp_path: Path) -> None:
    answer = {
        "dependencies": [
            {"name": "twilio", "skip_reason": "Dependency not found on PyPI"},
            {"name": "httpx", "version": "0.28.1", "vulns": []},
        ]
    }
    status, out, _ = _run(tmp_path, answer)
    assert status == 0, "unreachable service: reported, not a test failure"
    assert "1 of 2 packages checked, 0 known vulnerabilities" in out
    assert "NOT AUDITED: 1 of 2 packages could not be checked" in out and "twilio" in out
    strict, _, _ = _run(tmp_path, answer, "--strict")
    assert strict == 2


def test_a_failing_pip_audit_is_not_a_clean_audit(tmp_path: Path) -> None:
    fake = tmp_path / "pip-audit"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nprint('boom', file=sys.stderr)\nsys.exit(1)\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--pip-audit", str(fake), "requirements.lock"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "NOT AUDITED: pip-audit failed: boom" in done.stdout


def test_only_exceptions_written_down_are_accepted(tmp_path: Path) -> None:
    doc = tmp_path / "security.md"
    doc.write_text(
        "| id | package | why |\n|---|---|---|\n"
        "| `GHSA-aaaa-bbbb-cccc` | tensorflow 2.12.0 | Rasa 3.6 pins it |\n"
        "Mentioned in prose, not accepted: `PYSEC-2000-1`.\n",
        encoding="utf-8",
    )
    assert _module().accepted_ids(doc) == ["GHSA-aaaa-bbbb-cccc"]
    # Every id accepted in the real document has a reason in its row.
    for line in (ROOT / "docs" / "security.md").read_text(encoding="utf-8").splitlines():
        if re.match(r"^\|\s*`[A-Z]+-", line):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert len(cells) >= 3 and all(cells), f"an exception without its reason: {line}"


def test_make_test_audits_both_locks_before_pytest() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    test_target = re.search(r"^test:(.*)$", makefile, re.M)
    assert test_target and "audit" in test_target[1].split()
    audit_recipe = re.search(r"^audit:.*\n\t(.*)$", makefile, re.M)
    assert audit_recipe, "no audit target"
    assert "requirements.lock" in audit_recipe[1].split()
    assert "bot/requirements.lock" in audit_recipe[1].split()
    dev_lock = (ROOT / "requirements-dev.lock").read_text(encoding="utf-8").splitlines()
    assert any(line.lower().replace("_", "-").startswith("pip-audit==") for line in dev_lock)
