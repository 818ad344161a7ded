"""Check the pinned runtime dependencies (requirements.txt) against the vulnerability advisories.

Runs pip-audit against PyPI's advisory API, then OSV for whatever PyPI could not answer. Exit 1
when a pinned package has a known vulnerability. When neither database can be reached or answers
(some networks reach the package index but not the advisory APIs), it prints a banner saying the
dependencies were NOT audited and exits 0: an unreachable database is not a finding, but it is
never skipped silently. AUDIT_REQUIRE_DATABASE=1 turns that case into a failure too.

    .venv/bin/python scripts/audit_dependencies.py [requirements.txt]
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404  # runs pip-audit with a fixed argv
import sys
from pathlib import Path

SERVICES = ("pypi", "osv")
NETWORK_ERRORS = (
    "ConnectionError",
    "NameResolutionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "timed out",
    "ProxyError",
    "SSLError",
)


def pip_audit(requirements: str, service: str) -> tuple[dict | None, str]:
    command = [
        str(Path(sys.executable).with_name("pip-audit")),
        *("--requirement", requirements, "--vulnerability-service", service),
        # Every package is pinned: check exactly these, without resolving (which needs pip and the index).
        *("--no-deps", "--disable-pip", "--progress-spinner", "off", "--format", "json"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)  # noqa: S603  # nosec B603
    try:
        return json.loads(done.stdout), done.stderr
    except json.JSONDecodeError:
        return None, done.stderr


def main() -> int:
    requirements = sys.argv[1] if len(sys.argv) > 1 else "requirements.txt"
    unchecked: set[str] | None = None
    notes = []
    for service in SERVICES:
        report, errors = pip_audit(requirements, service)
        if report is None:
            if not any(marker in errors for marker in NETWORK_ERRORS):  # a crash of its own: fail
                print(errors, file=sys.stderr)
                print(f"FAIL: pip-audit ({service}) failed for a reason other than the network.", file=sys.stderr)
                return 2
            reason = next(marker for marker in NETWORK_ERRORS if marker in errors)
            notes.append(f"{service}: unreachable ({reason})")
            continue
        dependencies = report.get("dependencies", [])
        vulnerable = [d for d in dependencies if d.get("vulns")]
        if vulnerable:
            print(f"FAIL: known vulnerabilities in pinned dependencies (pip-audit, {service}):")
            for dependency in vulnerable:
                for vuln in dependency["vulns"]:
                    fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
                    print(f"  {dependency['name']} {dependency.get('version', '?')}: {vuln['id']} (fixed in {fixed})")
            return 1
        skipped = {d["name"] for d in dependencies if d.get("skip_reason")}
        checked = {d["name"] for d in dependencies} - skipped
        unchecked = skipped if unchecked is None else unchecked & skipped
        notes.append(f"{service}: checked {len(checked)} of {len(dependencies)} packages")
        if not unchecked:
            print(f"pip-audit: every pinned dependency checked, no known vulnerabilities ({'; '.join(notes)}).")
            return 0
    rule = "=" * 78
    print(rule)
    print("WARNING: the vulnerability advisory database could not be reached or did not answer.")
    print(f"  The pinned dependencies were NOT fully audited in this run ({'; '.join(notes)}).")
    if unchecked:
        print(f"  Not checked: {', '.join(sorted(unchecked))}")
    print("  Run `make audit` where PyPI's JSON API or api.osv.dev is reachable.")
    print(rule)
    return 1 if os.environ.get("AUDIT_REQUIRE_DATABASE") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
