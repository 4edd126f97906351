"""`Vocab`: token <-> index, ordered by frequency, `<unk>` = 0, as in the d2l book."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

UNKNOWN = "<unk>"


class Vocab:
    """Maps tokens to indices and back; saved in checkpoints as plain data (`to_dict`)."""

    def __init__(self, tokens: Sequence[str], joiner: str = "") -> None:
        if not tokens or tokens[0] != UNKNOWN:
            raise ValueError(f"a vocabulary starts with {UNKNOWN!r}")
        self.tokens = list(tokens)
        self.joiner = joiner
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(
        cls, corpus: Iterable[str], joiner: str = "", min_freq: int = 1, max_size: int | None = None
    ) -> Vocab:
        """Most frequent first; ties keep the order of first appearance (the book's sort is stable).

        Tokens seen fewer than `min_freq` times, and those beyond the `max_size` most frequent
        (`<unk>` included), are left out: they will read as `<unk>`.
        """
        counts = Counter(corpus)
        ordered = sorted(counts, key=counts.__getitem__, reverse=True)
        kept = [token for token in ordered if token != UNKNOWN and counts[token] >= min_freq]
        return cls([UNKNOWN, *kept[: None if max_size is None else max_size - 1]], joiner)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and (self.tokens, self.joiner) == (other.tokens, other.joiner)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Indices of tokens; a token never seen maps to `<unk>` (0)."""
        return [self.index.get(token, 0) for token in tokens]

    def decode(self, indices: Iterable[int]) -> str:
        return self.joiner.join(self.tokens[i] for i in indices)

    def split(self, text: str) -> list[str]:
        """Tokens of a user's text (a generation prefix), in this vocabulary's token kind."""
        return text.split() if self.joiner else list(text)

    def to_dict(self) -> dict:
        return {"tokens": list(self.tokens), "joiner": self.joiner}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        if data.get("kind") == "byte":
            return ByteVocab()
        return cls(data["tokens"], data["joiner"])


class ByteVocab(Vocab):
    """The 256 byte values, index = byte (no `<unk>`: every byte is known), as enwik8 is modelled.

    Token i is `chr(i)`, so a prefix's tokens are its UTF-8 bytes; decoding joins the bytes and reads
    them as UTF-8, a character cut in two by the sample's end shown as U+FFFD.
    """

    def __init__(self) -> None:
        self.tokens = [chr(i) for i in range(256)]
        self.joiner = ""
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [ord(token) for token in tokens]

    def decode(self, indices: Iterable[int]) -> str:
        return bytes(indices).decode("utf-8", errors="replace")

    def split(self, text: str) -> list[str]:
        return [chr(b) for b in text.encode()]

    def to_dict(self) -> dict:
        return {"kind": "byte"}
