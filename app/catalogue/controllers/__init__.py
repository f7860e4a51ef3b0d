"""Catalogue HTTP API: the operator's publishing endpoints and the public read endpoints."""
