"""A real Celery worker on Redis runs what the after-commit helper sends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from portal import migrate
from portal.app import create_app
from portal.core.db import db
from portal.core.mail import OutboxMessage, queue_mail
from tests.conftest import TEST_DATABASE_URL, sibling_database, test_config
from tests.services import redis_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.worker
def test_real_worker_processes_mail_sent_after_commit(tmp_root):
    broker = redis_url()
    database = sibling_database(TEST_DATABASE_URL, "worker", tmp_root)
    migrate.upgrade(database)
    env = {
        **os.environ,
        "COCREATE_DATABASE_URL": database,
        "COCREATE_BROKER_URL": broker,
        "COCREATE_SECRET_KEY": "worker-test-secret-key-0123456789abcdef",
        "COCREATE_INSTANCE_PATH": str(tmp_root / "worker-instance"),
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "wsgi:celery",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        app = create_app(test_config(database, tmp_root, BROKER_URL=broker, TESTING=False))
        with app.app_context():
            assert app.extensions["celery"].conf.task_always_eager is False
            message = queue_mail(
                db.session, "w@example.com", "Hi", "confirm_email", user=_Named(), link="x"
            )
            db.session.commit()
            message_id = message.id
            deadline = time.monotonic() + 60
            sent_at = None
            while time.monotonic() < deadline and sent_at is None:
                assert worker.poll() is None, "the worker died"
                time.sleep(0.3)
                db.session.rollback()  # end the snapshot; see the worker's commit
                sent_at = db.session.scalar(
                    select(OutboxMessage.sent_at).where(OutboxMessage.id == message_id)
                )
            assert sent_at is not None, "the worker did not process the task within 60 s"
    finally:
        worker.terminate()
        worker.wait(timeout=20)


class _Named:
    display_name = "Worker"
