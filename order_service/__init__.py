"""create-order and payment-status, plus the background reconciler."""
