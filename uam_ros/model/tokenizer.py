"""A deterministic word-level tokenizer for instructions, VQA questions and captions.

Why word-level and home-made: the package trains its own small VLM on text it generates, so the
vocabulary is small and closed; a word tokenizer needs no download, is trivially reproducible (the
vocabulary is sorted, so it does not depend on the order texts were seen) and is stored inside the
checkpoint's config.json. Unknown words map to <unk>, so instruction variation degrades, never crashes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:])")


class WordTokenizer:
    """Lowercase, split words and punctuation, map to ids; special tokens have fixed ids 0..3."""

    def __init__(self, words: Sequence[str]) -> None:
        for word in words:
            if word in SPECIAL_TOKENS:
                raise ValueError(f"WordTokenizer: vocabulary word {word!r} collides with a special token")
        if len(set(words)) != len(words):
            raise ValueError("WordTokenizer: vocabulary has duplicate words")
        self.itos: list[str] = [*SPECIAL_TOKENS, *words]
        self.stoi: dict[str, int] = {word: i for i, word in enumerate(self.itos)}

    # --- construction -------------------------------------------------------------------------
    @staticmethod
    def split(text: str) -> list[str]:
        """The canonical word sequence of a text: lowercase, punctuation as separate words."""
        return _WORD.findall(text.lower())

    @classmethod
    def build(cls, texts: Iterable[str]) -> WordTokenizer:
        """Vocabulary = every word of every text, sorted (so the same set of texts gives the same ids)."""
        return cls(sorted({word for text in texts for word in cls.split(text)}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form stored in a checkpoint's config.json."""
        return {"type": "word", "vocab": list(self.itos)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WordTokenizer:
        vocab = list(data.get("vocab", []))
        if data.get("type") != "word" or tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(
                f"WordTokenizer.from_dict: expected type 'word' with vocab starting {list(SPECIAL_TOKENS)}, "
                f"got type {data.get('type')!r}, vocab starting {vocab[:4]}"
            )
        return cls(vocab[len(SPECIAL_TOKENS):])

    def __len__(self) -> int:
        return len(self.itos)

    # --- use ------------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """What decode(encode(text)) gives back when every word is in the vocabulary."""
        return _NO_SPACE_BEFORE.sub(r"\1", " ".join(self.split(text)))

    def encode(
        self, text: str, max_len: int, *, add_bos: bool = True, add_eos: bool = True, pad: bool = True
    ) -> list[int]:
        """Ids of text: [bos] words [eos] then <pad> up to max_len.

        Too-long texts are truncated word-wise so that bos/eos still fit (the model always sees the
        end marker). pad=False returns the unpadded ids (prompts for generation).
        """
        room = max_len - int(add_bos) - int(add_eos)
        if room < 0:
            raise ValueError(f"WordTokenizer.encode: max_len={max_len} leaves no room for bos/eos")
        ids = [self.stoi.get(word, UNK_ID) for word in self.split(text)][:room]
        ids = ([BOS_ID] if add_bos else []) + ids + ([EOS_ID] if add_eos else [])
        if pad:
            ids += [PAD_ID] * (max_len - len(ids))
        return ids

    def decode(self, ids: Iterable[int], *, skip_special: bool = True) -> str:
        """Text of ids; stops at the first <eos> when skip_special (generation output)."""
        words = []
        for raw in ids:
            i = int(raw)
            if skip_special and i == EOS_ID:
                break
            if skip_special and i in (PAD_ID, BOS_ID):
                continue
            words.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return _NO_SPACE_BEFORE.sub(r"\1", " ".join(words))
