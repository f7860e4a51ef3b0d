// The card payment with Stripe's Payment Element. Stripe.js draws the form in its own frame:
// card numbers never touch this site. The booking is confirmed by Stripe's webhook, not here.
(function () {
  "use strict";
  var form = document.getElementById("payment-form");
  if (!form) { return; }
  var button = document.getElementById("pay-button");
  var message = document.getElementById("payment-message");
  if (typeof window.Stripe !== "function") {
    document.getElementById("payment-unavailable").hidden = false;
    return;
  }
  var stripe = window.Stripe(form.dataset.publishableKey, { locale: form.dataset.locale });
  var elements = stripe.elements({ clientSecret: form.dataset.clientSecret, locale: form.dataset.locale });
  var paymentElement = elements.create("payment", { layout: "tabs" });
  paymentElement.on("ready", function () { button.disabled = false; });
  paymentElement.mount("#payment-element");

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (button.disabled) { return; }
    button.disabled = true;
    message.hidden = true;
    stripe.confirmPayment({
      elements: elements,
      confirmParams: { return_url: form.dataset.returnUrl },
      redirect: "if_required"
    }).then(function (result) {
      if (result.error) {
        message.textContent = result.error.message || "";
        message.hidden = false;
        button.disabled = false;
        return;
      }
      window.location.assign(form.dataset.returnUrl);
    });
  });
})();
