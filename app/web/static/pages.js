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
})();
