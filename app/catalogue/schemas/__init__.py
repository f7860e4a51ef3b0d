"""Request and response structures of the catalogue, one module per use case.

Inputs forbid unknown fields: a client that sends `status`, `operator_id` or a price where
none belongs gets a 400 naming the field instead of having it silently ignored.
"""
