"""The evidence PDF, drawn with fpdf2 (pure Python, already standing on Pillow, keeps up
with the PDF spec); Razorpay accepts pdf, png or jpg documents for dispute evidence."""

from __future__ import annotations

from order_service.evidence import CANCELLATION_POLICY, EvidenceRecords, inr, summary, when


def _latin1(text: str) -> str:
    # The core PDF fonts are Latin-1: anything else becomes "?" rather than failing.
    return text.encode("latin-1", "replace").decode("latin-1")


class _Document:
    def __init__(self, title: str):
        # Loaded on the first contest: fpdf2 (and the Pillow it stands on) is memory an
        # order_service that never contests a dispute does not need.
        from fpdf import FPDF

        self.pdf = FPDF(format="A4")
        self.pdf.set_title(_latin1(title))
        self.pdf.set_creator("A6 Pay")
        self.pdf.add_page()
        self.pdf.set_font("Helvetica", "B", 15)
        self.pdf.multi_cell(0, 8, _latin1(title), new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        self.pdf.ln(3)
        self.pdf.set_font("Helvetica", "B", 12)
        self.pdf.multi_cell(0, 7, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def line(self, label: str, value: object = "") -> None:
        self.pdf.set_font("Helvetica", "", 10)
        text = f"{label}: {value}" if value != "" else label
        self.pdf.multi_cell(0, 5.5, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def bytes(self) -> bytes:
        return bytes(self.pdf.output())


def evidence_pdf(records: EvidenceRecords, dispute_id: str) -> bytes:
    b, p = records.booking, records.payment
    doc = _Document(f"A6 Cars - evidence for dispute {dispute_id}, booking #{b['id']}")
    doc.line(summary(records))

    doc.heading("Booking")
    doc.line("Booking", f"#{b['id']} ({b['status']}), made {when(b['created_at'])}")
    doc.line("Car", " ".join(x for x in (b["car_name"], b["car_registration"]) if x))
    doc.line("Rental dates", f"{b['start_date']} to {b['end_date']}")
    doc.line("Customer", f"{b['customer_name']} <{b['customer_email']}>"
             + (f", {b['customer_phone']}" if b["customer_phone"] else ""))
    doc.line("Amount", inr(b["amount_paise"]))
    doc.line("Confirmed", when(b["confirmed_at"]))
    if b["cancelled_at"]:
        doc.line("Cancelled", f"{when(b['cancelled_at'])} {b['cancellation_reason'] or ''}")

    doc.heading("Payment")
    doc.line("Amount", inr(p["amount_paise"]))
    doc.line("Method", records.payment_method or "-")
    doc.line("Captured", when(p["captured_at"]))
    doc.line("Order receipt", p["receipt"])

    doc.heading("Passes (signed QR codes, checked at the counter)")
    for row in records.passes:
        state = f"revoked {when(row['revoked_at'])}" if row["revoked_at"] else "valid"
        if row["scanned_at"]:
            state += f", used at the counter {when(row['scanned_at'])}"
        doc.line(f"{row['kind'].capitalize()} pass", f"issued {when(row['created_at'])}, {state}")
    if not records.passes:
        doc.line("No passes were issued")

    doc.heading("Confirmation mail")
    mail = records.confirmation
    if mail is not None:
        doc.line("Sent", when(mail["sent_at"]))
        doc.line("Message-ID", mail["message_id"] or "-")
        doc.line("To", mail["recipient"])
    else:
        doc.line("No confirmation mail on record")

    doc.heading("Refunds")
    for row in records.refunds:
        doc.line(f"{inr(row['amount_paise'])} ({row['cause']})",
                 f"{row['status']}, asked {when(row['created_at'])},"
                 f" processed {when(row['processed_at'])}")
    if not records.refunds:
        doc.line("None")

    doc.heading("Cancellation policy")
    doc.line(CANCELLATION_POLICY)
    return doc.bytes()
