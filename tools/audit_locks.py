"""`make audit`: pip-audit over the pinned dependencies of Faro and of the assistant.

    python tools/audit_locks.py [--strict] requirements.lock bot/requirements.lock

Each lock is audited as it is pinned (``--no-deps --disable-pip``: nothing is installed or
resolved) against PyPI's vulnerability data (``pip-audit -s pypi``, the JSON API on pypi.org).
Vulnerabilities accepted on purpose are listed, each with its reason, in the table of
docs/security.md; their ids are passed to ``--ignore-vuln`` and nowhere else.

Exit status: 1 when a vulnerability that is not accepted is found.  A package that could not be
checked (the vulnerability service unreachable) is never taken for a clean one: the report says
NOT AUDITED in capitals and how many packages it concerns.  That alone fails only with
``--strict`` (or ``FARO_AUDIT_STRICT=1``), because a machine that reaches PyPI's package index but
not its JSON API must still be able to run the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECURITY_DOC = ROOT / "docs" / "security.md"
# A row of the accepted-vulnerabilities table: | `PYSEC-2023-123` | package | ... |
ACCEPTED_ROW = re.compile(r"^\|\s*`(?P<id>[A-Z]+-[\w-]+)`\s*\|")


@dataclass
class Report:
    lock: str
    audited: int = 0
    skipped: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    failure: str | None = None  # pip-audit itself failed


def accepted_ids(doc: Path = SECURITY_DOC) -> list[str]:
    if not doc.exists():
        return []
    return [
        m["id"]
        for line in doc.read_text(encoding="utf-8").splitlines()
        if (m := ACCEPTED_ROW.match(line))
    ]


def audit(lock: str, *, pip_audit: str, ignored: list[str]) -> Report:
    report = Report(lock=lock)
    command = [
        pip_audit,
        *("-r", lock, "--no-deps", "--disable-pip", "-s", "pypi"),
        *("-f", "json", "--progress-spinner", "off"),
        *(arg for vuln in ignored for arg in ("--ignore-vuln", vuln)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        report.failure = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return report
    for dep in result.get("dependencies", []):
        name = str(dep.get("name")) + (f"=={dep['version']}" if dep.get("version") else "")
        if dep.get("skip_reason"):
            report.skipped.append(name)
            continue
        report.audited += 1
        for vuln in dep.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
            report.found.append(f"{name}: {vuln.get('id')} (fixed in: {fixes})")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+")
    parser.add_argument("--strict", action="store_true", help="fail when a package is unchecked")
    parser.add_argument("--pip-audit", default=str(Path(sys.executable).with_name("pip-audit")))
    args = parser.parse_args(argv)
    strict = args.strict or os.environ.get("FARO_AUDIT_STRICT") == "1"
    ignored = accepted_ids()
    status = 0
    for lock in args.locks:
        report = audit(lock, pip_audit=args.pip_audit, ignored=ignored)
        if report.failure is not None:
            print(f"audit {lock}: NOT AUDITED: pip-audit failed: {report.failure}")
            status = max(status, 2 if strict else 0)
            continue
        total = report.audited + len(report.skipped)
        print(
            f"audit {lock}: {report.audited} of {total} packages checked, "
            f"{len(report.found)} known vulnerabilities"
            + (f" ({len(ignored)} accepted in docs/security.md)" if ignored else "")
        )
        for line in report.found:
            print(f"  VULNERABLE {line}")
        if report.found:
            status = 1
        if report.skipped:
            unreachable = "the vulnerability service (pypi.org/pypi/<name>/<version>/json)"
            print(
                f"audit {lock}: NOT AUDITED: {len(report.skipped)} of {total} packages could not "
                f"be checked; {unreachable} did not answer for them, so they are NOT known to be "
                "free of vulnerabilities: "
                + ", ".join(report.skipped[:5])
                + (" ..." if len(report.skipped) > 5 else "")
            )
            if strict and status == 0:
                status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
