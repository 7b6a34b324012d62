"""Entry point for gunicorn (``wsgi:app``) and Celery (``celery -A wsgi:celery worker``)."""

from portal.app import create_app

app = create_app()
celery = app.extensions["celery"]
