"""Partner HTTP API: operators manage agencies and keys; agencies call the OCTO API."""
