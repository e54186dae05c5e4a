"""verify-payment (the frontend's JSON call) and the Razorpay Checkout callback (a form post)."""
