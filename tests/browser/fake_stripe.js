// A stand-in for Stripe.js v3 in the browser tests (the real one is on js.stripe.com, out of
// reach here). It offers the part of the Payment Element API the payment page uses:
// Stripe(key).elements({clientSecret}).create("payment").mount(...), on("ready") and
// stripe.confirmPayment({elements, confirmParams, redirect: "if_required"}).
// Like Stripe.js, it confirms the PaymentIntent at https://api.stripe.com, which the test
// routes to localstripe; localstripe then sends the signed webhook to the server.
(function () {
  "use strict";
  var API = "https://api.stripe.com/v1/payment_intents/";
  // Test cards as Stripe documents them, mapped to Stripe's test payment methods.
  var CARDS = { "4242424242424242": "pm_card_visa", "4000000000000341": "pm_card_chargeCustomerFail" };

  function post(url, fields) {
    return fetch(url, { method: "POST", body: new URLSearchParams(fields) }).then(function (r) {
      return r.json().then(function (body) { return { status: r.status, body: body }; });
    });
  }

  window.Stripe = function (publishableKey) {
    if (!/^pk_/.test(publishableKey || "")) { throw new Error("Stripe(): a publishable key is required"); }
    return {
      elements: function (options) {
        var handlers = {};
        var input = null;
        return {
          clientSecret: options.clientSecret,
          create: function (type) {
            if (type !== "payment") { throw new Error("only the Payment Element is faked"); }
            return {
              on: function (event, handler) { handlers[event] = handler; },
              mount: function (selector) {
                var box = document.querySelector(selector);
                var label = document.createElement("label");
                label.textContent = "Card number";
                label.setAttribute("for", "fake-card-number");
                input = document.createElement("input");
                input.id = "fake-card-number";
                input.setAttribute("inputmode", "numeric");
                box.appendChild(label);
                box.appendChild(input);
                if (handlers.ready) { setTimeout(handlers.ready, 0); }
              }
            };
          },
          _card: function () { return input ? input.value.replace(/\s+/g, "") : ""; }
        };
      },
      confirmPayment: function (params) {
        var secret = params.elements.clientSecret;
        var intent = secret.split("_secret_")[0];
        var method = CARDS[params.elements._card()];
        if (!method) {
          return Promise.resolve({ error: { type: "validation_error", message: "Your card number is invalid." } });
        }
        return post(API + intent, { payment_method: method })
          .then(function () { return post(API + intent + "/confirm", {}); })
          .then(function (answer) {
            if (answer.status !== 200 || answer.body.error) {
              return { error: answer.body.error || { message: "Your card was declined." } };
            }
            if (answer.body.status !== "succeeded") {
              return { error: { type: "card_error", message: "Your card was declined." } };
            }
            return { paymentIntent: answer.body };
          });
      }
    };
  };
})();
