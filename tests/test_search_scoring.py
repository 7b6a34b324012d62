"""The search scorer gives exactly Whoosh's BM25F scores, across segments and after changes."""

from __future__ import annotations

import random

import pytest
from whoosh import index as whoosh_index
from whoosh.scoring import BM25F

from portal.search import query
from portal.search.schema import SCHEMA
from portal.search.scoring import BM25FromMemory

pytestmark = pytest.mark.database_free

WORDS = [
    "report",
    "template",
    "renewal",
    "dashboard",
    "invoice",
    "churn",
    "seat",
    "export",
    "客户",
    "成功",
    "报表",
    "模板",
]
QUERIES = ["report", "template dashboard", "客户", "报表 模板", "renewal OR churn", '"seat export"']


def _add(writer, rng: random.Random, number: int) -> None:
    words = rng.choices(WORDS, k=rng.randint(1, 60))  # lengths from 1 to 60 words
    writer.add_document(id=f"note:{number}", kind="note", content=" ".join(words))


def _ranked(ix, weighting) -> list[list[tuple[int, float]]]:
    with ix.searcher(weighting=weighting) as searcher:
        return [
            [(hit.docnum, hit.score) for hit in searcher.search(query.text_query(q), limit=None)]
            for q in QUERIES
        ]


def test_scores_are_whooshs_bm25f_in_every_segment(tmp_path):
    rng = random.Random(5)
    ix = whoosh_index.create_in(str(tmp_path), SCHEMA)
    for batch in range(3):  # three commits: three segments with their own lengths
        writer = ix.writer()
        for n in range(batch * 200, batch * 200 + 200):
            _add(writer, rng, n)
        writer.commit(merge=False)
    assert len(ix._segments()) == 3
    expected = _ranked(ix, BM25F())
    assert all(expected)
    assert _ranked(ix, BM25FromMemory()) == expected

    # A document changed and the segments merged: lengths are read for the new segment.
    writer = ix.writer()
    writer.update_document(id="note:7", kind="note", content="report " * 50)
    writer.commit(optimize=True)
    assert _ranked(ix, BM25FromMemory()) == _ranked(ix, BM25F())


def test_scorers_on_a_whole_multi_segment_reader_fall_back_to_whooshs_lengths(tmp_path):
    rng = random.Random(9)
    ix = whoosh_index.create_in(str(tmp_path), SCHEMA)
    for batch in range(2):
        writer = ix.writer()
        for n in range(batch * 50, batch * 50 + 50):
            _add(writer, rng, n)
        writer.commit(merge=False)
    with ix.searcher(weighting=BM25FromMemory()) as searcher:
        assert not searcher.reader().is_atomic()
        # A matcher over the whole reader (not per segment) scores, with Whoosh's lookups.
        matcher = query.text_query("report").matcher(searcher)
        assert matcher.is_active() and matcher.score() > 0
    (tmp_path / "empty").mkdir()
    with whoosh_index.create_in(str(tmp_path / "empty"), SCHEMA).searcher(
        weighting=BM25FromMemory()
    ) as searcher:
        assert searcher.search(query.text_query("report")).scored_length() == 0
