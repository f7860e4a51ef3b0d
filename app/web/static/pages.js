// Small progressive help on the pages; everything works without it.
(function () {
  "use strict";

  // A form sent back with problems: the list of them gets the focus, so it is read first.
  var problems = document.getElementById("problems");
  if (problems) { problems.focus(); }

  // The hold countdown: minutes and seconds left, then the page reloads to show the expiry.
  document.querySelectorAll("[data-expires-at]").forEach(function (box) {
    var end = Date.parse(box.getAttribute("data-expires-at"));
    var out = box.querySelector(".remaining");
    var timer = null;
    function tick() {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      var seconds = left % 60;
      out.textContent = Math.floor(left / 60) + ":" + (seconds < 10 ? "0" : "") + seconds;
      if (left === 0) {
        clearInterval(timer);
        box.classList.add("ran-out");
        var message = document.querySelector(".ran-out-message");
        if (message) { message.hidden = false; }
        setTimeout(function () { window.location.reload(); }, 1500);
      }
    }
    tick();
    timer = setInterval(tick, 1000);
  });

  // A form is sent once: a second tap while the first is on its way does nothing.
  document.querySelectorAll("form[data-one-submit]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.setAttribute("aria-disabled", "true"); });
    });
  });

  // Seat picking: while passengers are counted per class, stop picking more seats than that.
  var counts = document.querySelectorAll("input[type=number][data-seat-class]");
  var seats = document.querySelectorAll("input[type=checkbox][name=seat]");
  function limitSeats() {
    var wanted = {};
    counts.forEach(function (input) {
      var key = input.getAttribute("data-seat-class");
      wanted[key] = (wanted[key] || 0) + (parseInt(input.value, 10) || 0);
    });
    var picked = {};
    seats.forEach(function (seat) {
      if (seat.checked) { var key = seat.getAttribute("data-seat-class"); picked[key] = (picked[key] || 0) + 1; }
    });
    seats.forEach(function (seat) {
      if (seat.hasAttribute("data-taken")) { return; }
      var key = seat.getAttribute("data-seat-class");
      seat.disabled = !seat.checked && (picked[key] || 0) >= (wanted[key] || 0);
    });
  }
  if (seats.length) {
    seats.forEach(function (seat) { if (seat.disabled) { seat.setAttribute("data-taken", ""); } });
    counts.forEach(function (input) { input.addEventListener("input", limitSeats); });
    seats.forEach(function (seat) { seat.addEventListener("change", limitSeats); });
    limitSeats();
  }

  // The coach plan: a party's row may be dragged onto another coach (or onto "without a
  // coach"); the drop sends the row's own move form. The select and button do the same
  // without this, by keyboard too.
  var moving = null;
  document.querySelectorAll("form.move").forEach(function (form) {
    var row = form.closest("tr");
    if (!row) { return; }
    row.setAttribute("draggable", "true");
    row.addEventListener("dragstart", function (event) {
      moving = form;
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", form.querySelector("[name=reference]").value);
    });
    row.addEventListener("dragend", function () { moving = null; });
  });
  document.querySelectorAll("[data-drop-coach]").forEach(function (area) {
    var coach = area.getAttribute("data-drop-coach");
    function accepts() {
      if (!moving) { return false; }
      var select = moving.querySelector("select[name=coach_id]");
      return Array.prototype.some.call(select.options, function (o) { return o.value === coach; });
    }
    area.addEventListener("dragover", function (event) {
      if (accepts()) { event.preventDefault(); area.classList.add("drop-target"); }
    });
    area.addEventListener("dragleave", function () { area.classList.remove("drop-target"); });
    area.addEventListener("drop", function (event) {
      area.classList.remove("drop-target");
      if (!accepts()) { return; }
      event.preventDefault();
      moving.querySelector("select[name=coach_id]").value = coach;
      moving.requestSubmit();
    });
  });
})();
