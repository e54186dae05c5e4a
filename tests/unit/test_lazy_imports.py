"""Heavy libraries load in the processes that use them, when they use them: memory (every
service stays under 80 MB) is what a process that never calls Razorpay or draws a QR code
would otherwise hold for nothing."""

import subprocess
import sys

import pytest

HEAVY = ("razorpay", "requests", "qrcode", "PIL")


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=60)
    return answer.stdout.split()


@pytest.mark.parametrize("service", ["notifier", "gateway"])
def test_services_that_never_call_razorpay_or_draw_load_neither(service):
    assert loaded_after(f"import shared.service, {service}.app") == []


def test_the_pass_tokens_need_no_qr_library_and_a_render_loads_it():
    assert loaded_after("from shared.passes import pass_token; pass_token(1, 'return', 's')") == []
    assert "qrcode" in loaded_after("from shared.passes import qr_data_url; qr_data_url('t')")
