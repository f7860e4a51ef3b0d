"""The notifications domain's services, one module per use case.

- `outbox`: effects recorded in the transaction that causes them, and their dispatch.
- `sending`: claiming a due notification, rendering it, sending it, recording the outcome.
- `reminders`: departure and payment reminders, and the feedback request.
- `advisories`: an operator's advisory to every live booking of a departure.
- `operator`: an operator's list of notifications, and resending one.
- `common`: creating a notification once per key, and the retry policy.
"""
