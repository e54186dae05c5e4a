"""notifier: confirms bookings, issues QR passes and records notifications from events."""
