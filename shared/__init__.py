"""Code every A6 Pay service shares: settings, database, money, the payment state machine,
events, messaging, the outbox, the Razorpay adapter and logging."""
