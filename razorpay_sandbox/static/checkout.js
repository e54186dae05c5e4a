// A drop-in for Razorpay's Checkout script (https://checkout.razorpay.com/v1/checkout.js),
// served by the A6 Pay sandbox: a page's own `new Razorpay(options).open()` code runs
// unchanged with only this script's URL changed. The modal is a page of the sandbox in
// an iframe; it reports back by postMessage, which is believed only from that frame.
(function () {
  "use strict";

  var SANDBOX = new URL(document.currentScript.src).origin;
  var MODAL_PATH = "/checkout/modal";

  function postForm(url, fields) {
    var form = document.createElement("form");
    form.method = "POST";
    form.action = url;
    form.style.display = "none";
    fields.forEach(function (pair) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  }

  function modalUrl(options) {
    var prefill = options.prefill || {};
    var query = new URLSearchParams({
      key: options.key || "",
      order_id: options.order_id || "",
      name: options.name || "",
      description: options.description || "",
      image: options.image || "",
      theme_color: (options.theme && options.theme.color) || "",
      prefill_name: prefill.name || "",
      prefill_email: prefill.email || "",
      prefill_contact: prefill.contact || "",
      notes: JSON.stringify(options.notes || {}),
      origin: window.location.origin,
    });
    return SANDBOX + MODAL_PATH + "?" + query.toString();
  }

  function Razorpay(options) {
    if (!(this instanceof Razorpay)) {
      return new Razorpay(options);
    }
    if (!options || !options.key) {
      throw new Error("No key passed");
    }
    this.options = options;
    this.failedHandlers = [];
    this.overlay = null;
    this.frame = null;
    this.listener = null;
  }

  Razorpay.prototype.on = function (event, handler) {
    if (event === "payment.failed" && typeof handler === "function") {
      this.failedHandlers.push(handler);
    }
    return this;
  };

  Razorpay.prototype.open = function () {
    if (this.overlay) {
      return this;
    }
    var self = this;
    var overlay = document.createElement("div");
    overlay.className = "razorpay-container";
    overlay.style.cssText = "position:fixed;inset:0;z-index:2147483647;display:flex;" +
      "align-items:center;justify-content:center;background:rgba(0,0,0,0.6)";
    var frame = document.createElement("iframe");
    frame.className = "razorpay-checkout-frame";
    frame.title = "Razorpay Checkout";
    frame.src = modalUrl(this.options);
    frame.style.cssText = "width:380px;max-width:100%;height:560px;max-height:100%;" +
      "border:0;border-radius:8px;background:#fff";
    overlay.appendChild(frame);
    document.body.appendChild(overlay);
    this.overlay = overlay;
    this.frame = frame;
    this.listener = function (event) {
      if (event.origin !== SANDBOX || event.source !== frame.contentWindow) {
        return;
      }
      var message = event.data || {};
      if (message.type === "a6sandbox:dismiss") {
        self.close();
        var modal = self.options.modal || {};
        if (typeof modal.ondismiss === "function") {
          modal.ondismiss();
        }
      } else if (message.type === "a6sandbox:result") {
        self.finish(message.result);
      }
    };
    window.addEventListener("message", this.listener);
    return this;
  };

  Razorpay.prototype.finish = function (result) {
    var options = this.options;
    if (result.error) {
      if (options.callback_url && options.redirect) {
        postForm(options.callback_url, result.callback_fields);
        return;
      }
      // The modal stays open for a retry, as Razorpay's does.
      var response = { error: result.error };
      this.failedHandlers.forEach(function (handler) { handler(response); });
      return;
    }
    this.close();
    var fields = {
      razorpay_payment_id: result.razorpay_payment_id,
      razorpay_order_id: result.razorpay_order_id,
      razorpay_signature: result.razorpay_signature,
    };
    if (options.callback_url) {
      postForm(options.callback_url, result.callback_fields);
    } else if (typeof options.handler === "function") {
      options.handler(fields);
    }
  };

  Razorpay.prototype.close = function () {
    if (this.overlay) {
      window.removeEventListener("message", this.listener);
      this.overlay.remove();
      this.overlay = null;
      this.frame = null;
    }
    return this;
  };

  window.Razorpay = Razorpay;
})();
