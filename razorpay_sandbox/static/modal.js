// The sandbox's Checkout modal, framed by checkout.js in the merchant's page: each button
// pays the order with its outcome here (same origin), then the result goes to the page
// that opened us, and to no other origin.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("checkout");
  var errorBox = document.getElementById("error");
  var statusBox = document.getElementById("status");
  var buttons = Array.prototype.slice.call(root.querySelectorAll("button[data-outcome]"));

  function tell(message) {
    window.parent.postMessage(message, root.dataset.origin);
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function pay(outcome) {
    buttons.forEach(function (b) { b.disabled = true; });
    errorBox.hidden = true;
    statusBox.textContent = "Processing\u2026";
    fetch("/checkout/modal/pay", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ key: root.dataset.key, order_id: root.dataset.orderId,
                             outcome: outcome }),
    }).then(function (answer) {
      return answer.json().then(function (body) { return { ok: answer.ok, body: body }; });
    }).then(function (reply) {
      statusBox.textContent = "";
      buttons.forEach(function (b) { b.disabled = false; });
      if (!reply.ok) {  // Razorpay's refusal: shown here, no handler is called
        var error = reply.body.error || {};
        showError((error.code || "SERVER_ERROR") + ": " + (error.description || "failed"));
        return;
      }
      if (reply.body.error) {
        showError("Payment failed: " + reply.body.error.description + ". You can retry.");
      } else {
        statusBox.textContent = "Payment successful";
      }
      tell({ type: "a6sandbox:result", result: reply.body });
    }).catch(function () {
      statusBox.textContent = "";
      buttons.forEach(function (b) { b.disabled = false; });
      showError("SERVER_ERROR: the sandbox could not be reached");
    });
  }

  buttons.forEach(function (button) {
    button.addEventListener("click", function () { pay(button.dataset.outcome); });
  });
  document.getElementById("close").addEventListener("click", function () {
    tell({ type: "a6sandbox:dismiss" });
  });
});
