"""Flask-Migrate, loaded only by what migrates: ``flask db …``, and the tests.

Importing Flask-Migrate brings alembic, mako and pygments, about 12 MiB in
every web worker and queue worker that never migrates (BENCHMARKS.md,
issue 10). So ``create_app`` registers two stand-ins, and the first use of
either sets up the real extension in their place:

* the ``db`` command group, which becomes Flask-Migrate's own when the
  ``flask`` command runs it or looks into it;
* ``app.extensions["migrate"]``, which Flask-Migrate's functions (and
  ``migrations/env.py``) read.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy


def init_app(app: Flask, db: SQLAlchemy, **options: Any) -> None:
    stand_in = _Extension(app, db, options)
    app.extensions["migrate"] = stand_in
    app.cli.add_command(_Commands(stand_in, name="db", help="Database migrations (Flask-Migrate)."))


class _Extension:
    def __init__(self, app: Flask, db: SQLAlchemy, options: dict[str, Any]) -> None:
        self._app, self._db, self._options = app, db, options

    def load(self) -> Any:
        """The real extension (now in ``app.extensions["migrate"]``), set up on the first call."""
        if self._app.extensions.get("migrate") is self:
            flask_migrate = importlib.import_module("flask_migrate")  # the deferred import
            flask_migrate.Migrate(self._app, self._db, **self._options)  # replaces this and the db group
        return self._app.extensions["migrate"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)


class _Commands(click.Group):
    def __init__(self, extension: _Extension, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._extension = extension

    def _real(self) -> click.Group:
        self._extension.load()
        group: click.Group = importlib.import_module("flask_migrate.cli").db
        return group

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Invoked (or asked for --help): from here on, be Flask-Migrate's group, with
        # its options (--directory, -x) and the callback that hands them to its commands.
        real = self._real()
        self.params, self.callback, self.help = real.params, real.callback, real.help
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._real().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._real().get_command(ctx, cmd_name)
