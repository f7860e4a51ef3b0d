"""Pricing: what a party pays for its seats on a channel (retail, or an agency's net).

Pure rules, no I/O: callers read the fares (catalogue) and the channel's terms (partners
load an agency's) and pass them in; every price of a party is computed here."""
