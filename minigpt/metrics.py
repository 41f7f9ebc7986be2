"""Chapters 11 and 12: measures of a language model that every later chapter shares, each in one place.

Bits per byte: a loss per token depends on the vocabulary (a tokenizer with longer tokens has fewer, harder
predictions), so models with different tokenizers cannot be compared by it. Dividing the total loss of a text by the
text's UTF-8 bytes, and converting nats to bits, gives a number that does not depend on how the text was cut.
"""
from __future__ import annotations

import math


def bits_per_byte(total_nats: float, num_bytes: int) -> float:
    """The summed cross-entropy (in nats) of the tokens that spell a text, per UTF-8 byte of that text, in bits.

    total_nats: the sum over every predicted token of -ln p(token); num_bytes: len(text.encode("utf-8")) of exactly
    the text those tokens spell (leave out the bytes of tokens that were given, not predicted, such as a first
    token with no context).
    """
    if num_bytes <= 0:
        raise ValueError(f"num_bytes must be positive, got {num_bytes}")
    return total_nats / (num_bytes * math.log(2))
