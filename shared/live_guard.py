"""What live Razorpay keys refuse to start with: secrets anyone could know or guess.

Pure: the settings validator hands in the values by their variable names and gets back one
reason per bad variable (empty: fine). See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Mapping

MIN_SECRET_CHARS = 32  # an HS256 key at least as long as its hash (RFC 7518), 256 bits

# Values published in this repository, its examples or its docs, and the usual stand-ins.
PLACEHOLDERS = frozenset({
    "a6_sandbox_key_secret", "a6_sandbox_webhook_secret", "a6_local_pass_signing_secret",
    "a6-e2e-admin-token-for-the-test-stack-only",
    "changeme", "secret", "password", "test", "todo", "xxx",
})


# The secrets each service holds (deploy/ gives each Deployment only these): a service is
# refused only for its own. Unnamed (tests, the ops CLI): every secret is checked.
SECRETS_USED = {
    "gateway": frozenset({"AUTH_JWT_SECRET"}),
    # order_service also checks passes at the counter (the staff API)
    "order_service": frozenset({"RAZORPAY_KEY_SECRET", "ADMIN_API_TOKEN", "STAFF_API_TOKEN",
                                "PASS_SIGNING_SECRET"}),
    "verification_service": frozenset({"RAZORPAY_KEY_SECRET", "PASS_SIGNING_SECRET"}),
    "webhook_service": frozenset({"RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET"}),
    "notifier": frozenset({"PASS_SIGNING_SECRET"}),
}


def used_by(service: str) -> frozenset[str] | None:
    """The secret variables `service` uses; None: all of them."""
    return SECRETS_USED.get(service)


def is_placeholder(value: str) -> bool:
    folded = value.strip().lower()
    return (folded in PLACEHOLDERS or "change-me" in folded or "change_me" in folded
            or "changeme" in folded or "replace-me" in folded or folded.startswith("<"))


def weak_secrets(secrets: Mapping[str, list[str]], *, key_secret: str) -> list[str]:
    """`secrets`: variable name -> its values (several for a rotation list; empty when
    unset). Each set value must be no placeholder, at least MIN_SECRET_CHARS long and
    used by no other variable (nor be the Razorpay key secret): one leaked secret must
    not open another door."""
    reasons = []
    owners: dict[str, set[str]] = {}
    for name, values in secrets.items():
        for value in values:
            owners.setdefault(value, set()).add(name)
    for name, values in secrets.items():
        for value in values:
            if is_placeholder(value):
                reasons.append(f"{name} is a documented placeholder")
            elif len(value) < MIN_SECRET_CHARS:
                reasons.append(f"{name} is shorter than {MIN_SECRET_CHARS} characters")
            elif len(owners[value]) > 1 or value == key_secret:
                others = sorted(owners[value] - {name}) or ["RAZORPAY_KEY_SECRET"]
                reasons.append(f"{name} equals {', '.join(others)}")
            else:
                continue
            break  # one reason per variable is enough to act on
    return reasons
