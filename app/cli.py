"""``flask`` commands: the queue worker, reconciliation, retries, users.

Commands sit at module level in ``AppGroup``s (which run them in an app
context) and ``init_app`` registers them. :func:`reports_errors` is the one
place that turns the project's errors into a message and exit code 1.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from sqlalchemy import select

from . import audio, auth, clients, deletion, dialing, exports, media, pipeline, tokens, uploads, worker
from .access import Role
from .config import ADMIN_PASSWORD_MIN_LENGTH, NotConfigured, language_code
from .models import Call, Recording, db
from .numbers import MAX_ROW_ID
from .providers import ProviderError
from .states import Stage

F = TypeVar("F", bound=Callable[..., Any])

# Errors a person at the terminal can act on: their message, exit code 1.
EXPECTED_ERRORS = (auth.UserError, tokens.TokenError, NotConfigured, ProviderError, uploads.UploadError)
# flask transcribe shows a progress bar for files at least this big.
PROGRESS_BAR_BYTES = 4 * 1024 * 1024


def reports_errors(command: F) -> F:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EXPECTED_ERRORS as error:
            raise click.ClickException(str(error)) from None

    return run  # type: ignore[return-value]


# Top-level commands (flask worker, flask reconcile, flask retry, flask audit).
service = AppGroup("service")
users = AppGroup("users", help="Manage dashboard users (passwords are stored only as hashes).")
calls = AppGroup("calls", help="Delete calls, and read the log of deleted ones.")


@service.command("worker")
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=None,
    show_default="WORKER_THREADS, 2 unless set",
    help="Jobs run at once in this process.",
)
@click.option(
    "--periodic/--no-periodic",
    default=True,
    help="Run the periodic reconciliation here (keep it on in one worker process).",
)
def run_worker(threads: int | None, periodic: bool) -> None:
    """Run the background worker (Huey consumer) until stopped."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    threads = threads or app.extensions["settings"].worker_threads
    click.echo(f"worker: {threads} thread(s), reconciliation {'on' if periodic else 'off'}")
    worker.run(app, threads=threads, reconcile_here=periodic)


@service.command("reconcile")
@reports_errors
def reconcile() -> None:
    """Queue every recording that waited past its deadline, once, now."""
    counts = worker.reconcile()
    click.echo(
        f"queued {counts['advance']} recordings to advance, {counts['poll']} transcripts to poll "
        f"and {counts['recover']} calls to check for recordings; {counts['delete']} deletions to finish, "
        f"{counts['forget']} recordings to delete at Twilio, {counts['expire']} calls past RETENTION_DAYS"
    )


@service.command("retry")
@click.argument("recording_sids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Retry every failed recording.")
@reports_errors
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


@service.command("transcribe")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--language", metavar="CODE", help="A language code such as en_us or de, or auto.")
@click.option(
    "--speakers", type=click.IntRange(1, uploads.MAX_SPEAKERS), help="How many people speak (one channel)."
)
@click.option(
    "--channels",
    is_flag=True,
    help="Two-channel audio, one party per channel (without it: as the file says).",
)
@click.option("--no-wait", is_flag=True, help="Submit and return; the worker stores the transcripts.")
@click.option("--json", "as_json", is_flag=True, help="Print each transcript as the JSON export.")
@click.option(
    "--as", "username", metavar="USER", help="Record the uploads as this user (default: the first admin)."
)
@reports_errors
def transcribe(
    files: tuple[Path, ...],
    language: str | None,
    speakers: int | None,
    channels: bool,
    no_wait: bool,
    as_json: bool,
    username: str | None,
) -> None:
    """Transcribe audio files (WAV, MP3, M4A, OGG, FLAC, WebM) as the service transcribes calls.

    No worker needs to run: the steps run here, and the command waits for
    each transcript and prints it. Exit code 0 when every file was
    transcribed, 1 otherwise (one line per failure).
    """
    clients.engine()  # not configured: say so before anything is uploaded
    if language is not None:
        try:
            language = language_code(language)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--language") from None
    options = uploads.UploadOptions(language=language, speakers=speakers, channels=channels)
    who = uploads.uploader(username)
    failures = []
    checked = []
    for path in files:  # every file is checked before any is uploaded
        try:
            checked.append((path, audio.probe(path)))
        except (audio.NotAudio, OSError) as error:
            failures.append(f"{path}: {_reason(error)}")
    for line in failures:
        click.echo(line, err=True)
    console = Console(stderr=True)
    for path, found in checked:
        failure = _transcribe_one(path, found, options, who, console, no_wait=no_wait, as_json=as_json)
        if failure:
            click.echo(failure, err=True)
            failures.append(failure)
    if failures:
        raise SystemExit(1)


def _transcribe_one(
    path: Path,
    found: audio.AudioFile,
    options: uploads.UploadOptions,
    who: str,
    console: Console,
    *,
    no_wait: bool,
    as_json: bool,
) -> str | None:
    """One file through the pipeline; the line to print when it failed, else None."""
    try:
        with path.open("rb") as source:
            recording = uploads.store_upload(
                iter(functools.partial(source.read, media.CHUNK_BYTES), b""),
                path.name,
                options,
                uploaded_by=who,
                enqueue=False,
            )
    except (uploads.UploadError, OSError) as error:
        return f"{path}: {_reason(error)}"
    recording_id, sid = recording.id, recording.recording_sid
    if found.size >= PROGRESS_BAR_BYTES:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(f"uploading {path.name}", total=found.size)
            uploads.transcribe_now(recording_id, progress=lambda n: bar.advance(task, n))
    else:
        uploads.transcribe_now(recording_id)
    stage = uploads.stage_of(recording_id)
    if no_wait and stage == Stage.SUBMITTED:
        click.echo(f"{path}: submitted as {sid}")
        return None
    if stage == Stage.SUBMITTED:
        with console.status(f"transcribing {path.name}…"):
            stage = uploads.wait_for_transcript(recording_id)
    call = db.session.scalar(select(Call).where(Call.call_sid == sid))
    assert call is not None
    if stage in (Stage.PENDING, Stage.DELIVERED):
        return f"{path}: not submitted yet; a running flask worker carries on with it ({sid})"
    if stage != Stage.TRANSCRIBED:
        error = call.recordings[0].last_error or "it was not transcribed"
        return f"{path}: {error} ({sid})"
    with current_app.test_request_context():  # the export's links are paths of this service
        click.echo(exports.json_export(call) if as_json else exports.text_export(call))
    return None


def _reason(error: Exception) -> str:
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)


@calls.command("delete")
@click.argument("call_sids", nargs=-1, required=True)
@click.option(
    "--as", "username", metavar="USER", default="cli", show_default=True, help="Who asked, for the log."
)
@reports_errors
def delete_calls(call_sids: tuple[str, ...], username: str) -> None:
    """Delete calls everywhere: Twilio's recordings, the engine's transcripts, our audio and rows.

    Each is deleted now; one whose step fails stays marked "deleting" and
    the worker tries it again. Exit code 1 unless every call is gone.
    """
    failed = False
    for sid in call_sids:
        try:
            call = deletion.request_deletion(sid, username)
            deletion.delete_call(call.id)
        except deletion.NoSuchCall as missing:
            click.echo(f"{sid}: {missing}", err=True)
            failed = True
        except pipeline.RetryLater:
            error = db.session.scalar(select(Call.deletion_error).where(Call.call_sid == sid))
            click.echo(
                f"{sid}: not deleted yet ({error or 'a job is at work on it'}); the worker retries", err=True
            )
            failed = True
        else:
            click.echo(f"{sid}: deleted")
    if failed:
        raise SystemExit(1)


@calls.command("deletions")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
def list_deletions(limit: int) -> None:
    """The log of deleted calls, newest first: when, who asked, and every copy deleted."""
    for gone in deletion.deletions(limit):
        copies = [*gone.recording_sids, *gone.transcript_ids, *gone.media_keys]
        click.echo(
            f"{gone.deleted_at:%Y-%m-%d %H:%M:%S}\t{gone.call_sid}\t{gone.requested_by or '-'}\t"
            f"asked {gone.requested_at:%Y-%m-%d %H:%M:%S}\t{' '.join(copies)}"
        )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (for scripts)."
)


ROLE = click.Choice([str(r) for r in Role])


@users.command("add")
@click.argument("username")
@click.option("--role", type=ROLE, default=str(Role.MEMBER), show_default=True, help="What the user may do.")
@password_stdin
@reports_errors
def add_user(username: str, role: str, password_stdin: bool) -> None:
    """Add a user (admin: everything; member: read, dial, retry; viewer: read only)."""
    auth.add_user(username, _read_password(password_stdin), Role(role))
    click.echo(f"added {username} ({role})")


@users.command("role")
@click.argument("username")
@click.argument("role", type=ROLE)
@reports_errors
def change_role(username: str, role: str) -> None:
    """Change a user's role (their open sessions end)."""
    auth.set_role(username, Role(role))
    click.echo(f"{username} is now a {role}")


@users.command("passwd")
@click.argument("username")
@password_stdin
@reports_errors
def passwd(username: str, password_stdin: bool) -> None:
    """Set a user's password (their open sessions end)."""
    auth.set_password(username, _read_password(password_stdin))
    click.echo(f"password of {username} changed")


@users.command("remove")
@click.argument("username")
@reports_errors
def remove_user(username: str) -> None:
    """Remove a user (their open sessions end)."""
    auth.remove_user(username)
    click.echo(f"removed {username}")


@users.command("token")
@click.argument("username")
@click.option(
    "--scope", help="Comma-separated: calls:read, calls:dial, calls:delete (default: all of the role's)."
)
@click.option("--expires", help="Lifetime such as 90m, 12h or 30d (default: until revoked).")
@reports_errors
def token(username: str, scope: str | None, expires: str | None) -> None:
    """Print a new API token for scripts (Authorization: Bearer ...); it is shown only now."""
    issued = tokens.issue(username, scopes=scope, expires=expires)
    click.echo(issued.token)
    until = issued.expires_at.strftime("%Y-%m-%d %H:%M UTC") if issued.expires_at else "until revoked"
    click.echo(f"token id {issued.id}, scopes {','.join(issued.scopes) or 'none'}, valid {until}")


@users.command("tokens")
@click.argument("username")
@reports_errors
def list_tokens(username: str) -> None:
    """List a user's tokens: id, state, scopes, expiry, last use."""
    for row in tokens.of_user(username):
        click.echo(tokens.describe(row))


@users.command("revoke")
@click.argument("token_id", type=click.IntRange(1, MAX_ROW_ID))
@reports_errors
def revoke(token_id: int) -> None:
    """Revoke an API token at once."""
    owner = tokens.revoke(token_id)
    click.echo(f"revoked token {token_id} of {owner}")


@users.command("list")
def list_users() -> None:
    """List the users and their roles."""
    for user in auth.users():
        click.echo(f"{user.username}\t{user.role}")


@service.command("audit")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
def audit(limit: int) -> None:
    """Print the /dial audit log, newest first: who, how, from where, which number, what came of it."""
    for a in dialing.audit_log(limit):
        when = a.created_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{when}\t{a.username}\t{a.auth_method or '-'}\t{a.client_address or '-'}\t"
            f"{a.to_number}\t{a.outcome}\t{a.reason or ''}{' ' + a.call_sid if a.call_sid else ''}"
        )


@users.command("hash", with_appcontext=False)
@password_stdin
@reports_errors
def hash_password(password_stdin: bool) -> None:
    """Print a hash for ADMIN_PASSWORD_HASH (keeps the password itself out of the environment)."""
    click.echo(auth.hash_password(_read_password(password_stdin), ADMIN_PASSWORD_MIN_LENGTH))


def init_app(app: Flask) -> None:
    for command in service.commands.values():
        app.cli.add_command(command)
    app.cli.add_command(users)
    app.cli.add_command(calls)
