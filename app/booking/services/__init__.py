"""Booking rules: inventory, the booking state machine, guest access, waiting list, manifests."""
