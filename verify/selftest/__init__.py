"""The self-test: known-bad bundles (mutants) that the verifier must each catch."""
