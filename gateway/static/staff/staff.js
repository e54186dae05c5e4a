// The counter page: a staff member signs in once (the token stays in this tab's
// sessionStorage, sent only in the Authorization header, never in a URL), points the phone
// at a pass, and gets a large green or red answer. QR codes are decoded here, in the
// browser: the phone's own BarcodeDetector where it has one, else the vendored jsQR.
"use strict";

(function () {
  const TOKEN_KEY = "a6pay.staffToken";
  const SCAN_URL = "/api/passes/scan";
  const FRAME_EVERY_MS = 150;
  const $ = (id) => document.getElementById(id);

  let stream = null;
  let scanning = false;
  let busy = false;
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  let detector = null;

  function staffToken() { return sessionStorage.getItem(TOKEN_KEY); }

  function show(section) {
    for (const id of ["login", "scanner", "answer"]) { $(id).hidden = id !== section; }
    $("sign-out").hidden = section === "login";
  }

  function signIn(event) {
    event.preventDefault();
    const value = $("staff-token").value.trim();
    if (!value) { return; }
    sessionStorage.setItem(TOKEN_KEY, value);
    $("staff-token").value = "";
    $("login-error").textContent = "";
    startScanning();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopCamera();
    $("login-error").textContent = message || "";
    show("login");
  }

  async function startCamera() {
    if (stream) { return true; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      $("camera-status").textContent = "No camera here (it needs HTTPS): type the pass code.";
      return false;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia(
        { video: { facingMode: "environment" }, audio: false });
    } catch (error) {
      $("camera-status").textContent = "Camera unavailable: type the pass code.";
      return false;
    }
    const video = $("camera");
    video.srcObject = stream;
    await video.play();
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          detector = new window.BarcodeDetector({ formats: ["qr_code"] });
        }
      } catch (error) { detector = null; }
    }
    return true;
  }

  function stopCamera() {
    scanning = false;
    if (stream) { stream.getTracks().forEach((track) => track.stop()); }
    stream = null;
  }

  async function startScanning() {
    show("scanner");
    $("typed-token").value = "";
    if (await startCamera()) {
      $("camera-status").textContent = "Point the camera at the pass";
      scanning = true;
      setTimeout(readFrame, FRAME_EVERY_MS);
    }
  }

  async function decode(video) {
    if (detector) {
      const codes = await detector.detect(video);
      return codes.length ? codes[0].rawValue : null;
    }
    const scale = Math.min(1, 640 / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    const code = window.jsQR(image.data, image.width, image.height,
                             { inversionAttempts: "attemptBoth" });
    return code ? code.data : null;
  }

  async function readFrame() {
    if (!scanning) { return; }
    const video = $("camera");
    let text = null;
    if (video.readyState >= 2 && video.videoWidth) {
      try { text = await decode(video); } catch (error) { text = null; }
    }
    if (text && scanning) {
      scanning = false;
      await submit(text);
    } else if (scanning) {
      setTimeout(readFrame, FRAME_EVERY_MS);
    }
  }

  async function submit(passToken) {
    if (busy) { return; }
    const token = staffToken();
    if (!token) { signOut(); return; }
    busy = true;
    scanning = false;
    let status = 0;
    let body = {};
    try {
      const response = await fetch(SCAN_URL, {
        method: "POST",
        headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
        body: JSON.stringify({ token: passToken.trim() }),
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
      status = response.status;
      body = await response.json().catch(() => ({}));
    } catch (error) {
      body = { message: "No connection to A6 Pay: check the network and scan again" };
    } finally {
      busy = false;
    }
    if (status === 401 || status === 403) {
      signOut(body.message || "Staff token refused");
      return;
    }
    answer(status, body);
  }

  function nextStep(status, body) {
    if (status === 200) {
      return body.result === "collected" ? "Check the customer's licence, then hand over the keys."
                                         : "Check the car, then close the rental.";
    }
    if (status === 410) {
      // A car already out comes back whatever happened to the booking.
      return body.kind === "return" ? "Take the car and its keys back, then call the office."
                                    : "Do not hand over the car. Send the customer to the office.";
    }
    if (status === 409) { return "Do not proceed. Call the office if the customer disagrees."; }
    if (status === 429) { return "Too many scans: wait a moment, then scan again."; }
    if (status === 400) { return "This is not an A6 Cars pass. Ask for the booking e-mail."; }
    return "Scan again; if it keeps failing, call the office.";
  }

  function answer(status, body) {
    const ok = status === 200;
    const panel = $("answer");
    panel.className = ok ? "ok" : "refused";
    $("verdict").textContent = ok ? (body.result === "collected" ? "✔ COLLECTED" : "✔ RETURNED")
                                  : "✘ STOP";
    $("answer-message").textContent = body.message || ("Error " + status);
    const known = typeof body.booking_id === "number";
    $("answer-details").hidden = !known;
    // Emptied first: an answer without a booking never shows the previous customer's.
    for (const id of ["answer-booking", "answer-kind", "answer-car", "answer-customer",
                      "answer-dates"]) { $(id).textContent = ""; }
    if (known) {
      $("answer-booking").textContent = "#" + body.booking_id;
      $("answer-kind").textContent = body.kind === "return" ? "Return" : "Collection";
      $("answer-car").textContent = body.car || "";
      $("answer-customer").textContent = body.customer_name || "";
      $("answer-dates").textContent = (body.start_date || "") + " to " + (body.end_date || "");
    }
    $("answer-next").textContent = nextStep(status, body);
    show("answer");
    $("scan-next").focus();
  }

  function typed(event) {
    event.preventDefault();
    const value = $("typed-token").value.trim();
    if (value) { scanning = false; submit(value); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("typed-form").addEventListener("submit", typed);
    $("scan-next").addEventListener("click", startScanning);
    $("sign-out").addEventListener("click", () => signOut());
    if (staffToken()) { startScanning(); } else { show("login"); }
  });
})();
