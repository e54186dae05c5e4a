// The seed's frontend code (create-order, then Razorpay Checkout, then callback_url or
// handler -> verify-payment), run from this page's own origin against the gateway.
"use strict";

const BACKEND_URL = document.body.dataset.backend;
const KEY_ID = document.body.dataset.key;
const form = document.getElementById("booking");
const statusBox = document.getElementById("status");
const failureBox = document.getElementById("failure");
const buttons = document.querySelectorAll(".flows button");

function say(text) {
  statusBox.textContent = text;
}

function busy(on) {
  buttons.forEach((button) => { button.disabled = on; });
}

function booking() {
  const data = new FormData(form);
  return {
    booking_id: Number(data.get("booking_id")),
    customer_id: Number(data.get("customer_id")),
    amount: Number(data.get("amount")),
  };
}

async function createOrder(details) {
  const orderRes = await fetch(`${BACKEND_URL}/api/razorpay/create-order`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(details),
  });
  const orderData = await orderRes.json();
  if (!orderRes.ok) {
    throw new Error(orderData.message);
  }
  return orderData;
}

function checkoutOptions(orderData, extra) {
  return {
    key: KEY_ID,
    amount: Math.round(orderData.amount * 100), // paise
    currency: orderData.currency,
    name: "A6 Cars",
    description: `Booking #${orderData.booking_id}`,
    image: `${window.location.origin}/static/logo.svg`,
    order_id: orderData.order_id,
    prefill: { name: orderData.customer_name, email: orderData.customer_email },
    notes: { booking_id: String(orderData.booking_id) },
    theme: { color: "#3399cc" },
    modal: { ondismiss: () => { busy(false); say("Checkout closed; nothing was charged."); } },
    ...extra,
  };
}

function showFailure(response) {
  failureBox.textContent = JSON.stringify(response.error, null, 2);
  failureBox.hidden = false;
  say(`Payment failed: ${response.error.description}`);
}

async function verify(details, response) {
  say("Verifying the payment\u2026");
  const verifyRes = await fetch(`${BACKEND_URL}/api/razorpay/verify-payment`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      razorpay_payment_id: response.razorpay_payment_id,
      razorpay_order_id: response.razorpay_order_id,
      razorpay_signature: response.razorpay_signature,
      booking_id: details.booking_id,
      customer_id: details.customer_id,
    }),
  });
  const result = await verifyRes.json();
  busy(false);
  if (!verifyRes.ok) {
    say(`Verification failed: ${result.message}`);
    return;
  }
  const b = result.booking_details;
  document.getElementById("collection-qr").src = result.collection_qr;
  document.getElementById("return-qr").src = result.return_qr;
  document.getElementById("booking-details").textContent =
    `Booking #${b.booking_id}: ${b.car}, ${b.start_date} to ${b.end_date}, \u20b9${b.amount} paid by ${b.customer_name}.`;
  document.getElementById("passes").hidden = false;
  say(result.message);
}

async function pay(flow) {
  const details = booking();
  failureBox.hidden = true;
  busy(true);
  say("Creating the order\u2026");
  let orderData;
  try {
    orderData = await createOrder(details);
  } catch (error) {
    busy(false);
    say(`Could not create the order: ${error.message}`);
    return;
  }
  say("Checkout open");
  const extra = flow === "callback"
    ? { callback_url: `${BACKEND_URL}/api/razorpay/callback`, redirect: true }
    : { handler: (response) => verify(details, response) };
  const rzp1 = new Razorpay(checkoutOptions(orderData, extra));
  rzp1.on("payment.failed", showFailure);
  rzp1.open();
}

const params = new URLSearchParams(window.location.search);
for (const name of ["booking_id", "customer_id", "amount"]) {
  if (params.has(name)) {
    form.elements[name].value = params.get(name);
  }
}
document.getElementById("pay-callback").addEventListener("click", () => pay("callback"));
document.getElementById("pay-handler").addEventListener("click", () => pay("handler"));
