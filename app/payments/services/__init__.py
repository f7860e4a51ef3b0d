"""Taking payments, confirming bookings from Stripe's word, and paying refunds back.

Order of trust: a webhook body is only a hint; the PaymentIntent is fetched again from
Stripe before anything changes. Every effect has a natural key (Stripe event id, refund
cause) so that repeats and races change nothing twice."""
