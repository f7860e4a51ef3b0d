"""OCTO bookings, one module per use case: reserve (hold, idempotent by the partner's
uuid), confirm (on account, or pay by card), change (extend, cancel within the contract's
cut-off) and view (the OCTO Booking object, read and search). They call the booking and
payments services; they never write those domains' tables."""
