"""Dense + lexical retrieval, fused, with a 0..1 relevance threshold and a preference for the
documents a question names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ingest.tables import same_header
from ingest.textfacts import TABLE_RULE, language, terms
from kbqa.codes import CODE, codes, holds_code
from kbqa.config import RetrievalConfig
from kbqa.embeddings import Embedder
from kbqa.models import calibration, pair_key
from kbqa.store import Catalog, VectorIndex
from kbqa.types import Hit


def relevance(cosine: float, calibration: tuple[float, float]) -> float:
    """Map a cosine similarity onto 0..1 with the model's (unrelated, identical) calibration."""
    lo, hi = calibration
    return float(min(1.0, max(0.0, (cosine - lo) / (hi - lo))))


def fuse(
    dense: list[tuple[int, float]], lexical: list[tuple[int, float]], cosines: dict[int, float], config: RetrievalConfig,
    bounds: dict[int, float] | None = None,
) -> dict[int, float]:
    """Combine the dense and lexical rankings into one score per candidate chunk.

    linear (default): dense_weight * min-max-normalised cosine + (1 - dense_weight) * BM25 / best BM25,
    over the union of both candidate lists (the min and max of `bounds`, the cosines as the embedder gave
    them, when `cosines` holds some moved to another scale: on_pair_scales); rrf: reciprocal rank fusion
    with constant rrf_k."""
    if config.fusion == "rrf" or not lexical:
        scores: dict[int, float] = {}
        weights = (config.dense_weight, 1.0 - config.dense_weight) if lexical else (1.0, 0.0)
        for weight, ranking in zip(weights, (dense, lexical)):
            for rank, (chunk_id, _) in enumerate(ranking):
                scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (config.rrf_k + rank + 1)
        return scores
    ids = set(cosines) | {i for i, _ in lexical}
    values = [(bounds or cosines)[i] for i in ids if i in (bounds or cosines)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    spread = max(hi - lo, 1e-9)
    bm25 = dict(lexical)
    best = max(bm25.values()) if bm25 else 1.0
    a = config.dense_weight
    return {i: a * (cosines.get(i, lo) - lo) / spread + (1 - a) * bm25.get(i, 0.0) / best for i in ids}


def on_pair_scales(
    cosines: dict[int, float], rows: dict[int, Any], asked: str, ranges: dict[str, tuple[float, float]], embedder: Any,
) -> dict[int, float]:
    """The candidates' cosines as fusion compares them: a passage in the other language than the
    question's has its cosine moved from its language pair's relevance scale (kbqa.models.pair_key) to
    the question language's, so it is not ranked below every passage in the question's own language by
    the embedder's lower cosines across languages (a review's "How long is the probation period?" over
    a Chinese handbook and English policies: the handbook's 试用期 passage was outside the top 10).
    Passages in the question's language keep theirs; candidates all of one language keep theirs too
    (their order is the embedder's either way, and fusion weighs them as before)."""
    # (a passage without letters, a table's rows of figures, is of no language: ingest.textfacts.language
    # calls it Chinese, and moved financebench's figure pieces ahead of their filings' text)
    spoken = {i: language(rows[i].text) for i in cosines if i in rows and any(ch.isalpha() for ch in rows[i].text)}
    if len(set(spoken.values())) < 2:
        return cosines

    def scale(key: str) -> tuple[float, float]:
        if key not in ranges:
            ranges[key] = calibration(embedder, key).relevance
        return ranges[key]

    own_lo, own_hi = scale(pair_key(asked, asked))
    moved = dict(cosines)
    for i, lang in spoken.items():
        if lang != asked:
            lo, hi = scale(pair_key(asked, lang))
            moved[i] = own_lo + (cosines[i] - lo) / max(hi - lo, 1e-9) * (own_hi - own_lo)
    return moved


MAX_NAMED = 8  # documents a question can name at once
LESSER_NAMED = 0.75  # share of named_boost for a named document whose name words another named one holds, with more
# ("3M's FY2022 capex": the 3M 2022 10-K holds "3M" and "2022", the 2018 one "3M" alone; "Acme handbook 2024 edition")
PAGE_BONUS = 0.1  # within a document, a page where two candidates or more are found gains this over one found once
QUANTITY_TABLE = 0.05  # a table passage gains this for a question that asks for a quantity (see QUANTITY)
# ("the FY2018 capital expenditure amount", "how many days of leave", "年假有多少天": its figures answer it)
QUANTITY = re.compile(
    r"(?i)\b(how (much|many)|amount|total|average|ratio|rate|percent\w*|calculat\w*|comput\w*|in (millions|billions))\b|%"
    r"|多少|几[天个次年月周日小时岁倍名项种]|比例|比率|占比|合计|总计|总额|金额|平均|计算"
)
PASSAGE_GAP = "\n…\n"  # between two passages of one page in one source
MAX_NAMED_CHUNKS = 50_000  # beyond this the named documents are not searched on their own (the boost still applies)
TABLE_REACH = 60  # chunks on each side looked at for the pieces of a hit's table


def table_header(piece: str) -> str:
    """The header of a Markdown table piece: its lines up to and including the rule under the header
    row (the splitter repeats them in every piece); "" when it has none."""
    lines = piece.split("\n")
    for i, line in enumerate(lines[:6]):
        if TABLE_RULE.match(line):
            return "\n".join(lines[: i + 1]) + "\n"
    return ""


def strip_header(piece: str, header: str) -> str:
    """The piece without `header` (a piece that is its header alone: "")."""
    return piece[len(header) :] if header and (piece.startswith(header) or piece == header.rstrip("\n")) else piece


def overlap(before: str, after: str, n: int) -> int | None:
    """n when the text `after` starts with the n characters `before` ends with (their offsets say they
    overlap by n), else None: offsets of two documents (the next one starting after leading blanks)
    can look like an overlap that the texts do not have."""
    return n if 0 < n <= min(len(before), len(after)) and before.endswith(after[:n]) else None


@dataclass
class Stretch:
    """Consecutive chunks of one file shown together in a source (a chunk, a chunk widened by its
    neighbours or its table): the text, and where its first and last chunks stand in the file
    (chunk_no) and in their document (offsets; None where nothing can be joined on at that end)."""

    text: str
    first_no: int
    first_start: int | None
    last_no: int
    last_start: int | None
    last_end: int | None

    @classmethod
    def of(cls, row: Any, text: str | None = None) -> Stretch:
        """A chunk (ChunkRow) as a stretch, its text widened (`text`: with a table under it, which
        nothing can continue) or not; a table piece joins nothing."""
        text = row.text if text is None else text
        start = None if row.kind == "table" else row.start
        plain = text == row.text and row.kind != "table"
        return cls(text, row.chunk_no, start, row.chunk_no, row.start if plain else None, row.end if plain else None)

    def repeats(self, after: Stretch) -> int | None:
        """How many characters at the start of `after` repeat this stretch's end (the chunk overlap):
        after's first chunk is the next chunk of this one's last document, starting inside it. None:
        it does not go on from here."""
        if (after.first_no == self.last_no + 1 and self.last_start is not None and self.last_end is not None
                and after.first_start is not None and self.last_start < after.first_start < self.last_end):
            return overlap(self.text, after.text, self.last_end - after.first_start)
        return None

    def then(self, after: Stretch, repeated: int) -> Stretch:
        return Stretch(self.text + after.text[repeated:], self.first_no, self.first_start, after.last_no, after.last_start, after.last_end)


def with_passages(own: Stretch, passages: list[tuple[int, Stretch]], held: set[int]) -> str:
    """A source's text (`own`: its chunk, widened by its table or neighbours) and the page's passages
    joined to it (id, stretch) that it does not already hold, "…" between them; a passage that goes on
    from another part of the source (the chunk after it or before it) is joined to that part without
    the text they share."""
    parts = [own]
    for j, passage in passages:
        if j in held:
            continue
        parts.append(passage)
        at = len(parts) - 1
        joined = True
        while joined:  # a passage can close the gap between two parts
            joined = False
            for k in range(len(parts)):
                if k == at:
                    continue
                first, second = (k, at) if (n := parts[k].repeats(parts[at])) is not None else (at, k)
                if n is None and (n := parts[at].repeats(parts[k])) is None:
                    continue
                lo = min(k, at)
                parts[lo] = parts[first].then(parts[second], n)
                del parts[max(k, at)]
                at, joined = lo, True
                break
    return PASSAGE_GAP.join(p.text for p in parts)


def by_page(ranked: list[tuple[int, float]], rows: dict[int, Any]) -> list[tuple[int, float]]:
    """The candidates (chunk id, score; best first) with each document's pages reordered among the
    places that document's pages hold: by their best candidate's score, PAGE_BONUS more for a page
    that holds two candidates or more (a statement whose rows the question names, a section that
    answers it in several passages, before a page that one passage matches). The documents keep
    their places; chunks without a page keep theirs."""
    def place(chunk_id: int) -> tuple[Any, int]:
        row = rows.get(chunk_id)
        return (row.file_id, row.page) if row is not None and row.page is not None else (None, chunk_id)

    best: dict[tuple[Any, int], float] = {}
    found: dict[tuple[Any, int], int] = {}
    for chunk_id, score in ranked:
        key = place(chunk_id)
        best.setdefault(key, score)
        found[key] = found.get(key, 0) + 1
    scored = {k: s + (PAGE_BONUS if k[0] is not None and found[k] > 1 else 0.0) for k, s in best.items()}
    pages: dict[Any, list[tuple[Any, int]]] = {}  # a document's pages, best first
    for key in sorted((k for k in best if k[0] is not None), key=lambda k: -scored[k]):
        pages.setdefault(key[0], []).append(key)
    order = {(pages[k[0]].pop(0) if k[0] is not None else k): n for n, k in enumerate(best)}
    return sorted(ranked, key=lambda kv: (order[place(kv[0])], -kv[1]))


def named_documents(catalog: Any, question: str, words: dict[int, dict[int, float]] | None = None) -> dict[int, frozenset[int]]:
    """Files the question names (see Catalog.named_files), each with the question's name words it
    holds (their places, Catalog.named_words, or `words` read from it already): those named at least
    half as strongly as the best, at most MAX_NAMED."""
    words = catalog.named_words(question) if words is None else words
    if not words:
        return {}
    scores = {f: sum(w.values()) for f, w in words.items()}
    best = max(scores.values())
    kept = sorted((f for f, s in scores.items() if s >= 0.5 * best), key=lambda f: (scores[f], f), reverse=True)[:MAX_NAMED]
    return {f: frozenset(words[f]) for f in kept}


def lesser_named(named: dict[int, frozenset[int]]) -> set[int]:
    """The named files (file -> the question's name words it holds) whose words another named file
    holds, with more: "Acme handbook 2024" leaves the 2023 edition, which holds "Acme" and "handbook"
    but not "2024", a lesser preference (LESSER_NAMED)."""
    return {f for f, words in named.items() if any(words < others for others in named.values())}


def same_table(before: Any, after: Any) -> bool:
    """Whether two neighbouring table pieces (Catalog.neighbours) are of one table: their headers can be
    one table's (same_header), and the second's text goes on where the first's ends when the chunks
    have offsets (a piece of the next table starts again after its own header)."""
    if not same_header(table_header(before.text), table_header(after.text)):
        return False
    return before.end is None or after.start is None or bool(before.end == after.start)


@dataclass
class Retriever:
    catalog: Catalog
    index: VectorIndex
    embedder: Embedder
    config: RetrievalConfig
    reranker: Any = None

    def search(self, question: str, top_k: int | None = None, threshold: float | None = None) -> list[Hit]:
        top_k = top_k or self.config.top_k
        asked = language(question)
        ranges: dict[str, tuple[float, float]] = {}  # by pair_key: an English passage of a Chinese question is read as such
        threshold = self.config.threshold if threshold is None else threshold
        query = self.embedder.embed_query(question)
        fetch = max(self.config.fetch_k, top_k)
        dense = self.index.search(query, fetch)
        lexical = self.catalog.lexical_search(question, fetch) if self.config.hybrid else []
        named_words = self._named(question) if self.config.named_boost > 0 else {}
        named = set(named_words)
        if named:  # the named documents are searched on their own too: their best chunks are candidates
            dense, lexical = self._search_named(question, query, list(named), fetch, dense, lexical)
        rows = self.catalog.chunks(list({i for i, _ in dense} | {i for i, _ in lexical}))
        if not rows:
            return []
        cosines = dict(dense)
        missing = [i for i in rows if i not in cosines]
        if missing:  # lexical-only candidates: their cosine from their stored vectors
            found, vectors = self.catalog.chunk_vectors(missing)
            if len(found):
                cosines.update(zip((int(i) for i in found), (vectors @ np.asarray(query, dtype=np.float32)).tolist()))
        fused = fuse(dense, lexical, on_pair_scales(cosines, rows, asked, ranges, self.embedder), self.config, bounds=cosines)
        if named:
            # a chunk of another file that names the asked model and says something else asked about is
            # preferred too: a price list's "| AX-300 | … |" row under "Distributor price", for "…distributor price of the AX-300?"
            models = {c for c in codes(question) if len(c[0]) >= 2 and c[1] >= 10}  # "AX-300", not "Q2" or "E3"
            model_words = terms(CODE.sub(" ", question)) if models else set()
            lesser = lesser_named(named_words)
            for chunk_id in fused:
                row = rows.get(chunk_id)
                if row is not None and (row.file_id in named or models and any(holds_code(row.text, c) for c in models)
                                        and model_words & terms(row.text)):
                    fused[chunk_id] += self.config.named_boost * (LESSER_NAMED if row.file_id in lesser else 1.0)
        if QUANTITY.search(question):  # a question that asks for a quantity: tables that hold one of its other words first
            wanted = terms(QUANTITY.sub(" ", question))
            for chunk_id in fused:
                row = rows.get(chunk_id)
                if row is not None and row.kind == "table" and wanted & terms(row.text):
                    fused[chunk_id] += QUANTITY_TABLE
        hits = []
        seen: set[str] = set()  # the same text (one file in two folders, a repeated page) is shown once
        per_page: dict[tuple[int, int], int] = {}
        joined: dict[int, list[int]] = {}  # a source's chunk id -> the ids of the passages joined to it
        # every candidate is looked at: each hit gathers its page's next passages from all of them, and a
        # hit whose table an earlier source shows gives its place to the next
        pool = max(top_k, self.config.rerank_top) if self.reranker else top_k  # the hits the reranker reads
        for chunk_id, score in by_page(sorted(fused.items(), key=lambda kv: -kv[1]), rows):
            row = rows.get(chunk_id)
            if row is None or row.text in seen:
                continue
            key = pair_key(asked, language(row.text))
            if key not in ranges:
                ranges[key] = calibration(self.embedder, key).relevance
            rel = relevance(cosines.get(chunk_id, -1.0), ranges[key])
            if rel < threshold:
                continue
            if row.page is not None and self.config.page_passages:
                key = (row.file_id, row.page)
                if key in per_page:  # another passage of a page already shown: part of that source
                    first = hits[per_page[key]]
                    if len(joined.get(first.chunk_id, [])) + 1 < self.config.page_passages:
                        joined.setdefault(first.chunk_id, []).append(chunk_id)
                    seen.add(row.text)
                    continue
                per_page[key] = len(hits)
            seen.add(row.text)
            hits.append(Hit(chunk_id, row.name, row.page, row.text, round(rel, 4), score, row.title_path, row.path, row.description))
        for h in hits:
            if h.chunk_id in joined:
                h.text = with_passages(Stretch.of(rows[h.chunk_id]), [(j, Stretch.of(rows[j])) for j in joined[h.chunk_id]], set())
        if self.reranker is not None:  # the candidates after the pool follow in fused order, not reranked (rank_score 0):
            rest = hits[pool:]          # places for hits left out below
            for h in rest:
                h.rank_score = 0.0
            hits = self.reranker.rerank(question, hits[:pool]) + rest
        tabled: set[int] = set()  # hits that show a table: widened by table_chars, not by expand
        if self.config.table_chars:
            hits, tabled = self._with_tables(hits, rows, joined, top_k)
        else:
            hits = hits[:top_k]
        if self.config.expand:
            widened: dict[str, Hit] = {}
            for h in hits:  # neighbours of two hits can widen into the same text
                if rows[h.chunk_id].kind != "table" and h.chunk_id not in tabled:
                    h = self._expand(h, [(j, Stretch.of(rows[j])) for j in joined.get(h.chunk_id, [])])
                widened.setdefault(h.text, h)
            hits = list(widened.values())
        return hits

    def _named(self, question: str) -> dict[int, frozenset[int]]:
        return named_documents(self.catalog, question)

    def _search_named(
        self, question: str, query: np.ndarray, files: list[int], fetch: int,
        dense: list[tuple[int, float]], lexical: list[tuple[int, float]],
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """Dense and lexical candidates from the named files, merged into the global ones."""
        ids = self.catalog.file_chunk_ids(files)
        if ids and len(ids) <= MAX_NAMED_CHUNKS:
            found, vectors = self.catalog.chunk_vectors(ids)
            if len(found):
                cos = vectors @ np.asarray(query, dtype=np.float32)
                top = np.argsort(-cos)[:fetch]
                have = {i for i, _ in dense}
                extra = [(int(found[j]), float(cos[j])) for j in top if int(found[j]) not in have]
                dense = sorted(dense + extra, key=lambda kv: -kv[1])
        if self.config.hybrid:
            have = {i for i, _ in lexical}
            extra_lex = [(i, s) for i, s in self.catalog.lexical_search(question, fetch, files) if i not in have]
            lexical = sorted(lexical + extra_lex, key=lambda kv: -kv[1])
        return dense, lexical

    def _with_tables(
        self, hits: list[Hit], rows: dict[int, Any], joined: dict[int, list[int]], top_k: int
    ) -> tuple[list[Hit], set[int]]:
        """The first top_k hits, each table piece showing the table around it and each lead-in — the
        hit, or a passage of its page joined to it (`joined`: a hit's id -> the passages' ids) — its
        table below, no table piece under two sources; a hit whose chunk an earlier source
        already shows (a piece of its table, the table under its lead-in) or whose text it repeats (two
        pieces of one table in a file without pages) is left out, and the next candidate takes its
        place. Returns them, and the ids of the text hits that now show a table (under them or under a
        passage of their page)."""
        out: dict[str, Hit] = {}
        shown: set[int] = set()
        tabled: set[int] = set()
        for h in hits:
            if len(out) >= top_k:
                break
            if h.chunk_id in shown:
                continue
            row = rows[h.chunk_id]
            ids = joined.get(h.chunk_id, [])
            if row.kind == "table":
                own, covered = self._whole_table(h.chunk_id, row.text, shown)
            elif (below := self._table_below(row, shown)) is not None:
                own, covered = below
                tabled.add(h.chunk_id)
            else:
                own, covered = row.text, set()
            shown |= {h.chunk_id, *ids, *covered}
            shown_tables = len(own) if row.kind == "table" else len(own) - len(row.text)  # the table text the source shows so far
            passages = self._passages_with_tables(rows, ids, shown, self.config.table_chars - shown_tables)
            if any(text != rows[j].text for j, text in passages):
                tabled.add(h.chunk_id)
            if covered or h.chunk_id in tabled:
                h.text = with_passages(Stretch.of(row, own), [(j, Stretch.of(rows[j], text)) for j, text in passages], covered)
            out.setdefault(h.text, h)
        return list(out.values()), tabled

    def _whole_table(self, chunk_id: int, piece: str, shown: set[int]) -> tuple[str, set[int]]:
        """A hit on a piece of a table shows the table around it (_table_around): its text and the ids
        of the pieces shown (none: the piece alone)."""
        around = self._table_around(chunk_id, piece, shown)
        return around if around is not None else (piece, set())

    def _table_below(self, row: Any, shown: set[int]) -> tuple[str, set[int]] | None:
        """Text that leads into a table ("The following table presents…", a heading, a caption: the
        next chunk of its file is a table on the same page, in its section) with that table under
        it, within table_chars, unless another source shows it; and the ids of the pieces shown.
        None: the text alone (or a table piece)."""
        if row.kind == "table":
            return None
        below = self.catalog.following(row.id)
        if (below is None or below.id in shown or below.kind != "table" or below.page != row.page
                or below.title_path[: len(row.title_path)] != row.title_path):
            return None
        around = self._table_around(below.id, below.text, shown)  # read downwards: the chunk above it is the text
        table, covered = around if around is not None else (below.text, {below.id})
        if len(table) > self.config.table_chars:
            return None
        return row.text + "\n\n" + table, covered

    def _passages_with_tables(self, rows: dict[int, Any], ids: list[int], shown: set[int], room: int) -> list[tuple[int, str]]:
        """The page's passages joined to a source (id, text), each that leads into a table
        (_table_below) with that table under it while all of them stay within `room`
        characters; the pieces shown this way join `shown`."""
        out = []
        for j in ids:
            text = rows[j].text
            if (below := self._table_below(rows[j], shown)) is not None:
                widened, covered = below
                if len(widened) - len(text) <= room:
                    room -= len(widened) - len(text)
                    text = widened
                    shown |= covered
            out.append((j, text))
        return out

    def _table_around(self, chunk_id: int, piece: str, shown: set[int]) -> tuple[str, set[int]] | None:
        """The table around one of its pieces: the contiguous pieces after and before it that no
        other source shows, nearest first, while the text stays within table_chars, each table's header row once
        (whole, when its first piece is shown and it fits; pieces of one table: same_table), a table
        next to it on the page with its own header; with the ids of the pieces shown. None: the
        piece alone."""
        pieces = self.catalog.neighbours(chunk_id, TABLE_REACH)
        at = next((i for i, p in enumerate(pieces) if p.id == chunk_id), None)
        if at is None:
            return None
        heads = [table_header(p.text) for p in pieces]
        bodies = [strip_header(p.text, h) for p, h in zip(pieces, heads)]  # each without its header, whole or shortened
        table_no = [0] * len(pieces)  # which table each piece is of: a new one where the text does not go on
        for j in range(1, len(pieces)):
            one = pieces[j].chunk_no - pieces[j - 1].chunk_no == 1 and same_table(pieces[j - 1], pieces[j])
            table_no[j] = table_no[j - 1] + (0 if one else 1)
        lo = hi = at
        size = len(piece)
        grew = True
        while grew:
            grew = False
            for j, nextto in ((hi + 1, hi), (lo - 1, lo)):  # after first: a table is read downwards
                if not (0 <= j < len(pieces) and abs(pieces[j].chunk_no - pieces[nextto].chunk_no) == 1) or pieces[j].id in shown:
                    continue
                cost = 1 + len(bodies[j]) + (len(heads[j]) if table_no[j] != table_no[nextto] else 0)  # another table: with its header
                if size + cost <= self.config.table_chars:
                    size += cost
                    lo, hi, grew = min(lo, j), max(hi, j), True
        table = ""
        while lo < hi:  # the text within table_chars: each table's header whole if it fits, else as its first piece has it
            if hi > at and not bodies[hi]:  # the next table's header without a row under it
                hi -= 1
                continue
            table = self._tables_text(heads, bodies, table_no, lo, hi, whole=True)
            if len(table) > self.config.table_chars:
                table = self._tables_text(heads, bodies, table_no, lo, hi, whole=False)
            if len(table) <= self.config.table_chars:
                break
            lo, hi = (lo + 1, hi) if lo < at else (lo, hi - 1)
        if lo == hi:
            return None
        return table, {pieces[i].id for i in range(lo, hi + 1)}

    @staticmethod
    def _tables_text(heads: list[str], bodies: list[str], table_no: list[int], lo: int, hi: int, whole: bool) -> str:
        """Pieces lo..hi as Markdown: each table's header where its first shown piece is (whole: the
        longest of its shown pieces' headers, which its first piece has), then the rows."""
        shown = range(lo, hi + 1)
        longest = {t: max((heads[i] for i in shown if table_no[i] == t), key=len) for t in {table_no[i] for i in shown}}
        parts = []
        for i in shown:
            first = i == lo or table_no[i] != table_no[i - 1]
            head = (longest[table_no[i]] if whole else heads[i]) if first else ""
            if part := (head + bodies[i]).rstrip("\n"):
                parts.append(part)
        return "\n".join(parts)

    def _expand(self, hit: Hit, passages: list[tuple[int, Stretch]]) -> Hit:
        """The hit's own chunk widened with up to `expand` neighbouring chunks on each side (same file,
        same page), joined at their recorded offsets so overlapping text is not repeated; then the
        page's passages joined to it (id, text) that the widening does not hold. Offsets count within
        one document of the file: a chunk that does not follow the one before it (a table between
        them) or does not start after it (the next document, whose offsets start at 0 again: the text
        after a table, a second section under the same heading) is joined whole."""
        near = self.catalog.neighbours(hit.chunk_id, self.config.expand)
        if len(near) < 2:
            return hit
        text = near[0].text
        for before, n in zip(near, near[1:]):
            shared = None
            if (n.chunk_no == before.chunk_no + 1 and n.start is not None and before.start is not None
                    and before.end is not None and before.start < n.start < before.end):
                shared = overlap(before.text, n.text, before.end - n.start)
            # the same document's next chunk, overlapping it; else (another document) joined whole
            text += n.text[shared:] if shared is not None else "\n" + n.text
        first, last = near[0], near[-1]
        hit.text = with_passages(Stretch(text, first.chunk_no, first.start, last.chunk_no, last.start, last.end), passages, {n.id for n in near})
        return hit
