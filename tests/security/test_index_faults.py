"""A search-index commit that fails must not leave the index locked.

Found by the schemathesis run: when Whoosh's ``writer.commit()`` raised (there, two segments
named alike), ``portal.search.index.apply_updates`` left the writer's file lock held, so every
later write in the process waited ``WRITER_TIMEOUT`` (10 s) and gave up: posts were slow and
never indexed until a restart. A disk-full or permission error at commit does the same.
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from whoosh.writing.segment_writer import SegmentWriter

from portal.search import index as search_index
from tests.security.world import build


def test_a_failed_index_commit_releases_the_write_lock(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build(app, session)
    monkeypatch.setattr(search_index, "WRITER_TIMEOUT", 0.2)
    pairs = [("question", world.public_question_id)]
    real_commit_toc = SegmentWriter._commit_toc
    failures = iter([OSError("No space left on device")])

    def commit_toc(self: SegmentWriter, segments: object) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        real_commit_toc(self, segments)

    monkeypatch.setattr(SegmentWriter, "_commit_toc", commit_toc)
    with app.app_context():
        with pytest.raises(OSError):
            search_index.apply_updates(session, pairs)
        # The disk has room again: the next write must go through.
        assert search_index.apply_updates(session, pairs) == 1
