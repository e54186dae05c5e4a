"""The sandbox's disputes, documents and money moved without us: pure, no I/O."""

from __future__ import annotations

import pytest

from razorpay_sandbox.disputes import DisputeBook
from razorpay_sandbox.errors import ApiError
from razorpay_sandbox.store import NewOrder, Outcome, Store

PDF, PNG, JPG = b"%PDF-1.4 x", b"\x89PNG\r\n\x1a\n x", b"\xff\xd8\xff\xe0 x"


@pytest.fixture
def store():
    return Store(clock=lambda: 1_000_000)


@pytest.fixture
def book(store):
    return DisputeBook(store)


@pytest.fixture
def paid(store) -> tuple[str, str]:
    order, _ = store.create_order(NewOrder(amount=50_000))
    payment, _ = store.pay(order.id, Outcome.CAPTURED)
    return order.id, payment.id


def test_a_second_capture_on_a_paid_order(book, paid):
    order_id, first = paid
    second, events = book.second_capture(order_id)
    assert second.id != first and second.status == "captured" and second.amount == 50_000
    assert [e.name for e in events] == ["payment.authorized", "payment.captured"]


def test_a_dashboard_refund_has_no_notes_of_ours(book, paid):
    _, payment_id = paid
    refund, events = book.dashboard_refund(payment_id, None)
    assert (refund.amount, refund.notes) == (50_000, {})
    assert [e.name for e in events] == ["refund.created"]


@pytest.mark.parametrize(("content", "mime"), [(PDF, "application/pdf"), (PNG, "image/png"),
                                               (JPG, "image/jpeg")])
def test_documents_pdf_png_jpg_only(book, content, mime):
    assert book.add_document("e", content, "dispute_evidence").mime_type == mime
    with pytest.raises(ApiError, match="pdf, png, jpg"):
        book.add_document("e.txt", b"hello", "dispute_evidence")
    with pytest.raises(ApiError, match="purpose"):
        book.add_document("e", content, "kyc")


def test_contest_needs_a_known_document_to_submit_and_moves_to_under_review(book, paid):
    _, payment_id = paid
    dispute, events = book.raise_dispute(payment_id, amount=None, phase="chargeback",
                                         reason_code="fraud", respond_in=None)
    assert (dispute.status, dispute.respond_by, events[0].dispute["id"]) == (
        "open", 1_000_000 + 3 * 86400, dispute.id)
    with pytest.raises(ApiError, match="At least one document"):
        book.contest(dispute.id, {"action": "submit", "summary": "s"})
    with pytest.raises(ApiError, match="not a valid document"):
        book.contest(dispute.id, {"action": "submit", "proof_of_service": ["doc_nope"]})
    with pytest.raises(ApiError, match="1000"):
        book.contest(dispute.id, {"summary": "x" * 1001})
    doc = book.add_document("e.pdf", PDF, "dispute_evidence")
    events = book.contest(dispute.id, {"action": "submit", "proof_of_service": [doc.id]})
    assert [e.name for e in events] == ["payment.dispute.under_review"]
    with pytest.raises(ApiError, match="Only an open dispute"):
        book.accept(dispute.id)
    assert [e.name for e in book.decide(dispute.id, "won")] == ["payment.dispute.won"]
    assert book.dispute(dispute.id).amount_deducted == 0
    with pytest.raises(ApiError, match="already won"):
        book.decide(dispute.id, "lost")


def test_accept_loses_it(book, paid):
    _, payment_id = paid
    dispute, _ = book.raise_dispute(payment_id, amount=10_000, phase="arbitration",
                                    reason_code="r", respond_in=60)
    assert [e.name for e in book.accept(dispute.id)] == ["payment.dispute.lost"]
    assert (book.dispute(dispute.id).status, book.dispute(dispute.id).amount_deducted) == (
        "lost", 10_000)
