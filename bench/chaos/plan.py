"""What each booking of a chaos run will go through, drawn up front from the seed.

A plan fixes the checkout outcome(s), how the sandbox misdelivers the webhooks, whether
the browser comes back to verify, and which forged requests are tried against it. Every
scenario ends in a state known in advance: paid or not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# scenario: (weight, ends paid)
SCENARIOS = {
    # captured at checkout; webhooks duplicated / reordered / partly dropped; verify or not
    "captured": (55, True),
    # captured, every webhook dropped, browser never returns: only reconciliation sees it
    "captured_silent": (7, True),
    # payment.failed, then payment.authorized (late), payment.captured, order.paid
    "late_authorized": (10, True),
    # failed for good: the booking stays unpaid
    "failed": (12, False),
    # failed, create-order again (same open order), pay again, captured
    "failed_then_captured": (10, True),
    # authorized but never captured (auto-capture off for that attempt): stays unpaid
    "authorized": (6, False),
    # cancelled (admin API) with its order open, then paid anyway: refunded in full, once
    "cancelled_then_paid": (5, True),
}

# After a paid booking is confirmed, what the admin API does to it (None: nothing).
REFUND_ACTIONS = ("partial", "partial_twice", "full", "cancel")
# ...or what happens to its money without the admin API
AFTER_CAPTURE = ("second_capture", "dashboard_refund", "dispute_won", "dispute_lost")

FORGERIES = (
    "webhook_wrong_secret",  # payment.captured for this order, signed with a guessed secret
    "webhook_tampered",  # a correctly signed body, amount altered after signing
    "webhook_unsigned",  # no X-Razorpay-Signature at all
    "verify_bad_signature",  # real order and payment ids, signature made with a wrong key
    "verify_other_booking",  # this booking's genuine checkout fields, another booking's ids
    "verify_borrowed_signature",  # another order's genuine payment id and signature
)


@dataclass(frozen=True)
class Webhooks:
    duplicate: int = 0
    reorder: bool = False
    drop: bool | list[str] = False

    def options(self) -> dict:
        return {"enabled": True, "duplicate": self.duplicate, "reorder": self.reorder,
                "drop": self.drop}


@dataclass
class Plan:
    index: int
    scenario: str
    amount_paise: int
    webhooks: Webhooks
    retry_webhooks: Webhooks  # the second checkout of failed_then_captured
    verify: bool
    verify_twice: bool
    poll_status: bool
    forgeries: list[str] = field(default_factory=list)
    refund_action: str | None = None  # one of REFUND_ACTIONS, on a confirmed booking
    after_capture: str | None = None  # one of AFTER_CAPTURE (bench/chaos/after_capture.py)
    disputed_paise: int = 0  # what its dispute asked back
    booking_id: int | None = None  # set once the booking exists
    ordered: bool = False  # create-order answered 200
    refunds_made: int = 0  # refunds the admin API answered with (each expected processed)
    cancelled: bool = False  # the admin API cancelled it

    @property
    def ends_paid(self) -> bool:
        return SCENARIOS[self.scenario][1]


def _webhooks(rng: random.Random, scenario: str) -> Webhooks:
    if scenario == "captured_silent":
        return Webhooks(drop=True)
    duplicate = rng.choice([0, 0, 1, 1, 2, 3, 4, 5])
    reorder = rng.random() < 0.3
    drop: bool | list[str] = False
    roll = rng.random()
    if scenario in ("captured", "failed_then_captured") and roll < 0.1:
        drop = ["payment.captured"]  # order.paid alone must be enough
    elif scenario in ("captured", "failed_then_captured") and roll < 0.15:
        drop = ["order.paid", "payment.authorized"]
    elif scenario == "late_authorized" and roll < 0.2:
        drop = ["payment.failed"]
    return Webhooks(duplicate, reorder, drop)


def make_plans(count: int, seed: int) -> list[Plan]:
    rng = random.Random(seed)
    names = list(SCENARIOS)
    weights = [SCENARIOS[n][0] for n in names]
    plans = []
    for index in range(count):
        scenario = rng.choices(names, weights)[0]
        browser_back = scenario in ("captured", "failed_then_captured", "authorized")
        verify = browser_back and rng.random() < (0.5 if scenario == "captured" else 0.8)
        # unpaid bookings draw most forgeries: an accepted one would show as a payment
        forge_chance = 0.6 if not SCENARIOS[scenario][1] else 0.15
        forgeries = []
        if rng.random() < forge_chance:
            forgeries = rng.sample(FORGERIES, rng.randint(1, 3))
        refund_action = None
        if SCENARIOS[scenario][1] and scenario not in ("captured_silent", "cancelled_then_paid"):
            if rng.random() < 0.3:
                refund_action = rng.choice(REFUND_ACTIONS)
        after_capture = None
        if refund_action is None and scenario in ("captured", "late_authorized"):
            if rng.random() < 0.25:
                after_capture = rng.choice(AFTER_CAPTURE)
        plans.append(Plan(
            index=index,
            scenario=scenario,
            amount_paise=rng.randrange(50_000, 1_500_000, 50),
            webhooks=_webhooks(rng, scenario),
            retry_webhooks=_webhooks(rng, "captured"),
            verify=verify,
            verify_twice=verify and rng.random() < 0.2,
            poll_status=rng.random() < 0.3,
            forgeries=forgeries,
            refund_action=refund_action,
            after_capture=after_capture,
        ))
    return plans
