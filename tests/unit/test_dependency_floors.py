"""No dependency range admits a release with a known advisory (docs/security.md lists
them), and the lock holds no such release either."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
# package -> the last release with a known advisory (the fix is in the next one)
LAST_VULNERABLE = {
    "aiosmtpd": "1.4.5",  # SMTP smuggling, STARTTLS response injection
    "requests": "2.32.3",  # .netrc credentials leaked to a third-party host
    "pyjwt": "2.10.0",  # `iss` checked as a partial match
    "pillow": "10.2.0",  # buffer overflow in ImageCms
    "aiohttp": "3.13.2",  # request smuggling, decompression bombs
    "setuptools": "78.1.0",  # path traversal in PackageIndex
}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = [r for group in project["project"]["optional-dependencies"].values() for r in group]
    listed = (project["project"]["dependencies"] + extras
              + project["build-system"]["requires"])
    return {r.name.lower(): r for r in map(Requirement, listed)}


@pytest.mark.parametrize("package", sorted(LAST_VULNERABLE))
def test_no_range_admits_a_release_with_a_known_advisory(package):
    requirement = requirements()[package]
    assert not requirement.specifier.contains(LAST_VULNERABLE[package], prereleases=True)


def test_the_lock_holds_no_release_with_a_known_advisory():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"] if "version" in p}
    for package, last_bad in LAST_VULNERABLE.items():
        if package in locked:
            assert Version(locked[package]) > Version(last_bad), package
