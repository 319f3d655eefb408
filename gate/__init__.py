"""``gate-contract``: the CI gate on a model pull request, as one tested command."""
