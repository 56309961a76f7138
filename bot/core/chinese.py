"""Traditional → Simplified Chinese, for everything residents type.

Residents in Hong Kong, Macao or Taiwan, and phones set to Traditional input, write
電梯壞了 for 电梯坏了. The NLU model, the room parser and staff all work in Simplified, so
text is converted once, as early as possible. Simplified text passes through unchanged.
"""
from __future__ import annotations

from functools import lru_cache

from opencc import OpenCC


@lru_cache(maxsize=1)
def _converter() -> OpenCC:
    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    if not text or text.isascii():
        return text
    return _converter().convert(text)
