"""A local stand-in for the part of Razorpay's REST API, Checkout and webhooks we use."""
