class ReferenceInputError(ValueError):
    """Bad reference input: wrong weights file, bad token list, tampered MiniLM."""
