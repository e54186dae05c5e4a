"""`python -m razorpay_sandbox`: serve the sandbox on settings.bind_host:settings.sandbox_port."""

from razorpay_sandbox.app import create_app
from shared.service import serve

if __name__ == "__main__":
    # Razorpay finishes what it was asked even when the caller stopped waiting.
    serve("razorpay_sandbox", create_app, lambda s: s.sandbox_port, cancel_abandoned=False)
