"""Verifier: reads a contract, a bundle and its goldens; never imports a converter."""
