"""Types of the optional C extension built from ``_native.c`` (see that file)."""

def ngram_ids(text: str, hashes: list[int], n_words: int, /) -> bytes:
    """Distinct hashed bucket ids of a normalised text, as little-endian int64, increasing."""
