"""notifier: confirms bookings, issues QR passes and mails customers, from events."""
