"""``flask`` commands: the queue worker, reconciliation, retries, users."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import auth, jobs, pipeline
from .models import Recording, Stage, User, db


def register(app: Flask) -> None:
    @app.cli.command("worker")
    @click.option(
        "--threads",
        type=click.IntRange(1, 64),
        default=lambda: int(os.environ.get("WORKER_THREADS", "2")),
        show_default="WORKER_THREADS or 2",
        help="Jobs run at once in this process.",
    )
    @click.option(
        "--periodic/--no-periodic",
        default=True,
        help="Run the periodic reconciliation here (keep it on in one worker process).",
    )
    def worker(threads: int, periodic: bool) -> None:
        """Run the background worker (Huey consumer) until stopped."""
        click.echo(f"worker: {threads} thread(s), reconciliation {'on' if periodic else 'off'}")
        jobs.run_worker(app, threads=threads, reconcile=periodic)

    users = click.Group("users", help="Manage dashboard users (passwords are stored only as hashes).")
    app.cli.add_command(users)

    def read_password(from_stdin: bool) -> str:
        if from_stdin:
            return sys.stdin.readline().rstrip("\n")
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))

    password_stdin = click.option(
        "--password-stdin", is_flag=True, help="Read the password from standard input (for scripts)."
    )

    @users.command("add")
    @click.argument("username")
    @password_stdin
    @with_appcontext
    def add(username: str, password_stdin: bool) -> None:
        """Add a user."""
        try:
            auth.add_user(username, read_password(password_stdin))
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        except IntegrityError:
            raise click.ClickException(f"{username} exists already; use flask users passwd.") from None
        click.echo(f"added {username}")

    @users.command("passwd")
    @click.argument("username")
    @password_stdin
    @with_appcontext
    def passwd(username: str, password_stdin: bool) -> None:
        """Set a user's password (their open sessions end)."""
        try:
            changed = auth.set_password(username, read_password(password_stdin))
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        if not changed:
            raise click.ClickException(f"no user {username}")
        click.echo(f"password of {username} changed")

    @users.command("remove")
    @click.argument("username")
    @with_appcontext
    def remove(username: str) -> None:
        """Remove a user (their open sessions end)."""
        if not auth.remove_user(username):
            raise click.ClickException(f"no user {username}")
        click.echo(f"removed {username}")

    @users.command("token")
    @click.argument("username")
    @with_appcontext
    def token(username: str) -> None:
        """Print a new API token for scripts (Authorization: Bearer ...); the old one stops working."""
        new = auth.new_api_token(username)
        if new is None:
            raise click.ClickException(f"no user {username} (add one with flask users add)")
        click.echo(new)

    @users.command("list")
    @with_appcontext
    def list_users() -> None:
        """List the users."""
        for user in db.session.scalars(select(User).order_by(User.username)):
            click.echo(user.username)

    @users.command("hash")
    @password_stdin
    def hash_(password_stdin: bool) -> None:
        """Print a hash for ADMIN_PASSWORD_HASH (keeps the password itself out of the environment)."""
        try:
            click.echo(auth.hash_password(read_password(password_stdin)))
        except ValueError as error:
            raise click.ClickException(str(error)) from None

    @app.cli.command("reconcile")
    def reconcile() -> None:
        """Queue every recording that waited past its deadline, once, now."""
        counts = pipeline.reconcile()
        click.echo(
            f"queued {counts['advance']} recordings to advance, {counts['poll']} transcripts to poll "
            f"and {counts['recover']} calls to check for recordings"
        )

    @app.cli.command("retry")
    @click.argument("recording_sids", nargs=-1)
    @click.option("--all-failed", is_flag=True, help="Retry every failed recording.")
    def retry(recording_sids: tuple[str, ...], all_failed: bool) -> None:
        """Try failed recordings again, from the step that failed."""
        statement = select(Recording)
        if all_failed:
            statement = statement.where(Recording.stage == Stage.FAILED)
        elif recording_sids:
            statement = statement.where(Recording.recording_sid.in_(recording_sids))
        else:
            raise click.UsageError("Name recording SIDs, or pass --all-failed.")
        recordings = db.session.scalars(statement).all()
        found = {r.recording_sid for r in recordings}
        for sid in recording_sids:
            if sid not in found:
                click.echo(f"{sid}: no such recording", err=True)
        for recording in recordings:
            ok = pipeline.retry_failed(recording.id)
            click.echo(f"{recording.recording_sid}: {'queued again' if ok else 'not failed, left alone'}")
