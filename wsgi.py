"""Entry point for gunicorn (``gunicorn wsgi:app``) and the ``flask`` command."""

from dotenv import load_dotenv

load_dotenv()

from app import create_app  # noqa: E402  (settings must be in the environment first)

app = create_app()
