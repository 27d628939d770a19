// The draw-a-digit page: pointer events draw on the canvas (mouse, pen and
// touch alike); shortly after each change the canvas goes to /predict as a PNG
// and the answer fills the digit and the chart. No libraries: it works offline.
"use strict";

(function () {
  const DEBOUNCE_MS = 150;
  const pad = document.getElementById("pad");
  const context = pad.getContext("2d");
  const digitText = document.getElementById("digit");
  const statusText = document.getElementById("status");
  const chart = document.getElementById("chart");
  let drawing = null;  // the pointer id of the stroke in progress
  let last = null;
  let inked = false;
  let timer = null;
  let sent = 0;  // numbers requests, so that a late answer never overwrites a newer one
  let shown = 0;
  const panel = document.querySelector(".answer");

  // "idle" (nothing drawn), "waiting" (an answer for the latest drawing is due)
  // or "ready" (the answer shown is for the drawing as it is): for tests and
  // styling.
  function state(name) {
    panel.dataset.state = name;
  }

  const rows = [];
  for (let digit = 0; digit < 10; digit++) {
    const row = document.createElement("li");
    row.dataset.digit = String(digit);
    row.innerHTML =
      '<span class="name"></span><span class="track"><span class="bar"></span></span>' +
      '<span class="percent"></span>';
    row.querySelector(".name").textContent = String(digit);
    chart.appendChild(row);
    rows.push(row);
  }

  function blank() {
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, pad.width, pad.height);
    inked = false;
    state("idle");
    digitText.textContent = "\u2013";
    statusText.textContent = "Draw a digit to see what the model reads.";
    for (const row of rows) {
      row.classList.remove("best");
      row.querySelector(".bar").style.width = "0%";
      row.querySelector(".percent").textContent = "";
    }
  }

  function point(event) {
    // From CSS pixels of the (responsive) element to the canvas's own pixels.
    const box = pad.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * pad.width) / box.width,
      y: ((event.clientY - box.top) * pad.height) / box.height,
    };
  }

  function stroke(from, to) {
    context.strokeStyle = "#000000";
    context.lineWidth = pad.width / 14;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
    inked = true;
  }

  function dot(at) {
    // A tap or click leaves a mark: a zero-length line draws nothing.
    context.fillStyle = "#000000";
    context.beginPath();
    context.arc(at.x, at.y, pad.width / 28, 0, 2 * Math.PI);
    context.fill();
    inked = true;
  }

  pad.addEventListener("pointerdown", (event) => {
    if (drawing !== null) return;
    event.preventDefault();
    drawing = event.pointerId;
    pad.setPointerCapture(event.pointerId);
    last = point(event);
    dot(last);
    schedule();
  });
  pad.addEventListener("pointermove", (event) => {
    if (event.pointerId !== drawing) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const each of events.length ? events : [event]) {
      const next = point(each);
      stroke(last, next);
      last = next;
    }
    schedule();
  });
  function end(event) {
    if (event.pointerId !== drawing) return;
    drawing = null;
    last = null;
    predictSoon(0);
  }
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);

  function schedule() {
    predictSoon(DEBOUNCE_MS);
  }

  function predictSoon(delay) {
    state("waiting");
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      predict();
    }, delay);
  }

  function predict() {
    if (!inked) return;
    const number = ++sent;
    pad.toBlob((png) => {
      fetch("predict", { method: "POST", headers: { "Content-Type": "image/png" }, body: png })
        .then((response) => response.json().then((body) => ({ response, body })))
        .then(({ response, body }) => {
          if (number < shown || !inked) return;
          shown = number;
          if (response.ok) show(body);
          else fail(body.detail || response.statusText);
          settle(number);
        })
        .catch((error) => {
          if (number < shown) return;
          fail("no answer from the server (" + error.message + ")");
          settle(number);
        });
    }, "image/png");
  }

  function settle(number) {
    // The answer to the latest drawing, with no stroke going on and no newer
    // request scheduled.
    if (number === sent && drawing === null && timer === null) state("ready");
  }

  function show(answer) {
    digitText.textContent = String(answer.label);
    statusText.textContent = "";
    for (const row of rows) {
      const p = answer.probabilities[row.dataset.digit] || 0;
      row.querySelector(".bar").style.width = (100 * p).toFixed(1) + "%";
      row.querySelector(".percent").textContent = (100 * p).toFixed(1) + "%";
      row.classList.toggle("best", row.dataset.digit === String(answer.label));
    }
  }

  function fail(message) {
    digitText.textContent = "?";
    statusText.textContent = message;
  }

  document.getElementById("clear").addEventListener("click", () => {
    clearTimeout(timer);
    timer = null;
    shown = ++sent;  // drops answers still on their way
    blank();
  });

  blank();
})();
