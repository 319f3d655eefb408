"""Verifier checks. Each returns CheckResults named ``<scope>/<check>``."""
