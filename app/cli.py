"""``flask`` commands: the queue worker, reconciliation, retries."""

from __future__ import annotations

import os

import click
from flask import Flask
from sqlalchemy import select

from . import jobs, pipeline
from .models import Recording, Stage, db


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
