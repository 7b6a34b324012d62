"""Known vulnerabilities of the installed distributions that are at their latest release, from
PyPI's project JSON (whose ``vulnerabilities`` are those of the latest release).

pip-audit asks PyPI for each installed *version* (``/pypi/<name>/<version>/json``); a registry
mirror that serves only project pages answers 404 there, and pip-audit then audits nothing.
This covers what it can from the project pages, names what it could not audit, and exits 1 on
any finding. It is a fallback beside pip-audit, not a replacement: on a network with PyPI's
full API, pip-audit audits every version.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

INDEX = "https://pypi.org/pypi/{}/json"


def latest(name: str) -> tuple[str, list[dict]]:
    with urllib.request.urlopen(INDEX.format(name), timeout=30) as response:  # noqa: S310
        data = json.load(response)
    return data["info"]["version"], data.get("vulnerabilities") or []


def main() -> int:
    installed = json.loads(
        subprocess.check_output(
            [sys.executable, "-m", "pip", "list", "--format", "json", "--exclude-editable"]
        )
    )
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda d: latest(d["name"]), installed))
    audited, unaudited, findings = 0, [], []
    for dist, (newest, vulnerabilities) in zip(installed, answers, strict=True):
        if dist["version"] != newest:
            unaudited.append(f"{dist['name']} {dist['version']} (latest {newest})")
            continue
        audited += 1
        for v in vulnerabilities:
            findings.append(f"{dist['name']} {dist['version']}: {v.get('id')} {v.get('aliases')}")
    print(
        f"latest-release audit: {audited} of {len(installed)} distributions audited, "
        f"{len(findings)} known vulnerabilities"
    )
    for line in findings:
        print("  VULNERABLE", line)
    if unaudited:
        print("  not audited (not the latest release):", "; ".join(unaudited))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
