"""Razorpay's webhooks: raw bytes → signature → parse → map → apply once."""
