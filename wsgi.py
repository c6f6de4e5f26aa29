"""Entry point for gunicorn (``gunicorn wsgi:app``) and the ``flask`` command."""

import os

from dotenv import load_dotenv

load_dotenv()

from app import create_app  # noqa: E402  (settings must be in the environment first)

# The instance folder holds the SQLite database, the queue and a generated
# secret key; by default it is ./instance.
app = create_app(instance_path=os.environ.get("CALLSCRIBE_INSTANCE_PATH") or None)
