"""The HTTP edge: routes browser and Razorpay calls to the services behind it."""
