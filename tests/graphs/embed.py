"""A deterministic, key-free embedding for semantic store search tests: a hashed bag of words.

Each lower-cased word adds 1 to two of DIMS buckets (chosen by its SHA-1, so the same in every process); the
vector is scaled to unit length. Texts sharing words are close; texts sharing none score about 0 (two words
rarely share a bucket, and never both).
Referenced from test configs as `<path>/embed.py:embed` (sync), `:aembed` (async) or `:embeddings`.
"""

from __future__ import annotations

import hashlib
import math
import re

from langchain_core.embeddings import Embeddings

DIMS = 256
_WORD = re.compile(r"[a-z0-9]+")
# Words that would make unrelated texts look alike (and the JSON keys of the test items' values).
_IGNORED = {"a", "an", "and", "the", "is", "of", "to", "in", "text", "title", "kind"}


def embed_one(text: str, dims: int = DIMS) -> list[float]:
    vector = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        if word in _IGNORED:
            continue
        digest = hashlib.sha1(word.encode()).digest()
        for part in (digest[:4], digest[4:8]):
            vector[int.from_bytes(part, "big") % dims] += 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def embed(texts: list[str]) -> list[list[float]]:
    return [embed_one(t) for t in texts]


async def aembed(texts: list[str]) -> list[list[float]]:
    return embed(texts)


class HashEmbeddings(Embeddings):
    def __init__(self, dims: int = DIMS) -> None:
        self.dims = dims

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [embed_one(t, self.dims) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return embed_one(text, self.dims)


embeddings = HashEmbeddings()
