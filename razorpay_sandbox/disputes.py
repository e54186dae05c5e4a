"""Money after capture as Razorpay makes it happen: a second payment captured on a paid order,
a refund made from the dashboard, chargebacks (disputes) with their evidence documents.

Pure logic, no I/O, over the sandbox's Store: each operation returns the events it caused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from razorpay_sandbox.entities import OrderStatus, Payment, PaymentStatus, new_id
from razorpay_sandbox.errors import ApiError, not_found
from razorpay_sandbox.store import Event, NewRefund, Refund, Store

# The evidence lists Razorpay's contest call takes, each a list of document ids.
EVIDENCE_LISTS = (
    "shipping_proof", "billing_proof", "cancellation_proof", "customer_communication",
    "proof_of_service", "explanation_letter", "refund_confirmation", "access_activity_log",
    "refund_cancellation_policy", "term_and_conditions",
)
DOCUMENT_TYPES = {"application/pdf": b"%PDF-", "image/png": b"\x89PNG\r\n\x1a\n",
                  "image/jpeg": b"\xff\xd8\xff"}
RESPOND_WINDOW = {"chargeback": 3 * 86400, "pre_arbitration": 2 * 86400, "arbitration": 86400}


class DisputeStatus(StrEnum):
    OPEN = "open"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    CLOSED = "closed"


# What each decision does to the dispute, and the webhook it sends.
DECISIONS = {
    "under_review": (DisputeStatus.UNDER_REVIEW, "payment.dispute.under_review"),
    "action_required": (DisputeStatus.OPEN, "payment.dispute.action_required"),
    "won": (DisputeStatus.WON, "payment.dispute.won"),
    "lost": (DisputeStatus.LOST, "payment.dispute.lost"),
    "closed": (DisputeStatus.CLOSED, "payment.dispute.closed"),
}
FINAL = frozenset({DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.CLOSED})


@dataclass
class Dispute:
    id: str
    payment_id: str
    amount: int
    currency: str
    phase: str
    reason_code: str
    respond_by: int
    created_at: int
    amount_deducted: int = 0
    status: DisputeStatus = DisputeStatus.OPEN
    evidence: dict[str, Any] = field(default_factory=dict)

    def entity(self) -> dict[str, Any]:
        evidence = {"amount": self.amount, "summary": None,
                    **dict.fromkeys(EVIDENCE_LISTS), "others": None, "submitted_at": None}
        evidence.update(self.evidence)
        return {
            "id": self.id, "entity": "dispute", "payment_id": self.payment_id,
            "amount": self.amount, "currency": self.currency,
            "amount_deducted": self.amount_deducted, "reason_code": self.reason_code,
            "reason_description": "The customer does not recognise the payment",
            "respond_by": self.respond_by, "status": str(self.status), "phase": self.phase,
            "created_at": self.created_at, "evidence": evidence,
        }


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    mime_type: str
    size: int
    purpose: str
    created_at: int

    def entity(self) -> dict[str, Any]:
        return {"id": self.id, "entity": "document", "purpose": self.purpose, "name": self.name,
                "mime_type": self.mime_type, "size": self.size, "created_at": self.created_at}


class DisputeBook:
    """Disputes and documents beside the Store's orders, payments and refunds."""

    def __init__(self, store: Store):
        self._store = store
        self.reset()

    def reset(self) -> None:
        self.disputes: dict[str, Dispute] = {}
        self.documents: dict[str, Document] = {}

    # Things Razorpay does without us (the sandbox's control calls)

    def second_capture(self, order_id: str) -> tuple[Payment, list[Event]]:
        """The customer pays an already paid order again (two tabs, a retried UPI collect):
        a second payment, captured."""
        store = self._store
        order = store.order(order_id, missing_status=404)
        if order.status is not OrderStatus.PAID:
            raise ApiError("The order is not paid yet", field="order_id")
        payment = Payment(id=new_id("pay_"), order_id=order.id, amount=order.amount,
                          currency=order.currency, created_at=store.now())
        store.payments[payment.id] = payment
        order.payment_ids.append(payment.id)
        order.attempts += 1
        events = [store.move_payment(payment, PaymentStatus.AUTHORIZED, "payment.authorized"),
                  store.move_payment(payment, PaymentStatus.CAPTURED, "payment.captured")]
        return payment, events

    def dashboard_refund(self, payment_id: str, amount: int | None) -> tuple[Refund, list[Event]]:
        """A refund an operator makes in Razorpay's dashboard: no notes of ours on it."""
        return self._store.refund(payment_id, NewRefund(amount=amount))

    def raise_dispute(self, payment_id: str, *, amount: int | None, phase: str,
                      reason_code: str, respond_in: int | None) -> tuple[Dispute, list[Event]]:
        payment = self._store.payment(payment_id)
        if payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
            raise ApiError("Only a captured payment can be disputed", field="payment_id")
        if phase not in RESPOND_WINDOW:
            raise ApiError("phase must be one of " + ", ".join(RESPOND_WINDOW), field="phase")
        amount = payment.amount if amount is None else amount
        if not 0 < amount <= payment.amount:
            raise ApiError("amount must be from 1 to the payment's amount", field="amount")
        now = self._store.now()
        dispute = Dispute(
            id=new_id("disp_"), payment_id=payment.id, amount=amount, currency=payment.currency,
            phase=phase, reason_code=reason_code, created_at=now,
            respond_by=now + (RESPOND_WINDOW[phase] if respond_in is None else respond_in),
            amount_deducted=amount,  # Razorpay holds the disputed amount while it is open
        )
        self.disputes[dispute.id] = dispute
        return dispute, [self._event("payment.dispute.created", dispute)]

    def decide(self, dispute_id: str, decision: str) -> list[Event]:
        dispute = self.dispute(dispute_id)
        if decision not in DECISIONS:
            raise ApiError("decision must be one of " + ", ".join(DECISIONS), field="decision")
        if dispute.status in FINAL:
            raise ApiError(f"The dispute is already {dispute.status}", field="id")
        status, event = DECISIONS[decision]
        dispute.status = status
        if status is DisputeStatus.WON:
            dispute.amount_deducted = 0  # the held amount comes back
        elif status is DisputeStatus.LOST:
            dispute.amount_deducted = dispute.amount
        return [self._event(event, dispute)]

    # The API (/v1/disputes, /v1/documents)

    def dispute(self, dispute_id: str) -> Dispute:
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise not_found()
        return dispute

    def list(self, *, count: int, skip: int) -> list[Dispute]:
        return list(reversed(self.disputes.values()))[skip: skip + count]

    def accept(self, dispute_id: str) -> list[Event]:
        dispute = self.dispute(dispute_id)
        if dispute.status is not DisputeStatus.OPEN:
            raise ApiError("Only an open dispute can be accepted", field="id")
        return self.decide(dispute_id, "lost")

    def contest(self, dispute_id: str, body: dict[str, Any]) -> list[Event]:
        dispute = self.dispute(dispute_id)
        if dispute.status is not DisputeStatus.OPEN:
            raise ApiError("Only an open dispute can be contested", field="id")
        action = body.get("action", "draft")
        if action not in ("draft", "submit"):
            raise ApiError("action must be draft or submit", field="action")
        evidence: dict[str, Any] = {}
        ids: list[str] = []
        for name in EVIDENCE_LISTS:
            if name in body:
                evidence[name] = self._document_ids(body[name], name)
                ids += evidence[name]
        for other in body.get("others") or []:
            if not isinstance(other, dict) or not isinstance(other.get("type"), str):
                raise ApiError("others must be a list of {type, document_ids}", field="others")
            ids += self._document_ids(other.get("document_ids"), "others")
        if body.get("others"):
            evidence["others"] = body["others"]
        summary = body.get("summary")
        if summary is not None and (not isinstance(summary, str) or len(summary) > 1000):
            raise ApiError("The summary may not be greater than 1000 characters.",
                           field="summary")
        evidence["summary"] = summary
        amount = body.get("amount", dispute.amount)
        if isinstance(amount, bool) or not isinstance(amount, int) or not (
                0 < amount <= dispute.amount):
            raise ApiError("The contest amount must be from 1 to the disputed amount",
                           field="amount")
        evidence["amount"] = amount
        if action == "submit" and not ids:
            raise ApiError("At least one document is required to submit the evidence",
                           field="action")
        dispute.evidence.update(evidence)
        if action == "draft":
            return []
        dispute.evidence["submitted_at"] = self._store.now()
        return self.decide(dispute_id, "under_review")

    def add_document(self, name: str, content: bytes, purpose: str) -> Document:
        if purpose != "dispute_evidence":
            raise ApiError("The purpose is invalid.", field="purpose")
        mime = next((m for m, magic in DOCUMENT_TYPES.items() if content.startswith(magic)), None)
        if mime is None:
            raise ApiError("The file must be a file of type: pdf, png, jpg, jpeg.", field="file")
        document = Document(id=new_id("doc_"), name=name, mime_type=mime, size=len(content),
                            purpose=purpose, created_at=self._store.now())
        self.documents[document.id] = document
        return document

    def _document_ids(self, raw: Any, name: str) -> list[str]:
        if not isinstance(raw, list) or not all(isinstance(i, str) for i in raw):
            raise ApiError(f"{name} must be a list of document ids", field=name)
        unknown = [i for i in raw if i not in self.documents]
        if unknown:
            raise ApiError(f"{unknown[0]} is not a valid document id", field=name)
        return list(raw)

    def _event(self, name: str, dispute: Dispute) -> Event:
        payment = self._store.payment(dispute.payment_id)
        return Event(name=name, payment=payment.entity(), order=None,
                     created_at=self._store.now(), dispute=dispute.entity())
