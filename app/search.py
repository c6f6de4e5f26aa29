"""Full-text search over calls: their transcripts, phone numbers and speaker names.

One document per call, kept in a table of its own, ``call_search``:

* on SQLite, an FTS5 table with the ``unicode61`` tokenizer (rowid = call id);
* on PostgreSQL, a ``tsvector`` on the ``simple`` configuration with a GIN index.

Neither stems. Both are fed the same words, split and folded here
(:func:`words`), so both stores give the same hits. A document is rewritten
(:func:`reindex`) in the transaction that changes what it is made of: a
stored transcript, a call's numbers, a speaker's name.

What a person types never reaches the database as query syntax: it is parsed
here into terms (:func:`parse`), words and quoted phrases, each maybe a
prefix (``refun*``), and written out as FTS5 or ``tsquery`` syntax from
words that hold only letters and digits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape
from sqlalchemy import ColumnElement, Connection, bindparam, literal_column, select, text

from .models import Call, Recording, SpeakerName, Transcript
from .states import TranscriptStatus

# Letters and digits; everything else separates words, as for unicode61.
WORD = re.compile(r"[^\W_]+")
DIGITS_ONLY = re.compile(r"^\+?[\d\s().-]+$")
MAX_TERMS = 16
MAX_WORD = 64
SEARCH_TABLES = frozenset({"call_search"})


def fold(word: str) -> str:
    """One word as both stores keep it: compatibility-normalised, case-folded, without accents."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def words(text: str) -> list[str]:
    """The searchable words of ``text``, in order."""
    found: list[str] = []
    for match in WORD.finditer(text):
        found += [w[:MAX_WORD] for w in WORD.findall(fold(match.group()))]
    return found


def _spans(text: str) -> Iterable[tuple[int, int, list[str]]]:
    """(start, end, folded words) of each word of ``text`` as written."""
    for match in WORD.finditer(text):
        yield match.start(), match.end(), [w[:MAX_WORD] for w in WORD.findall(fold(match.group()))]


def number_words(number: str | None) -> list[str]:
    """A phone number as search words: its digits, a NANP number's ten without the 1, its last 7 and 4."""
    if not number:
        return []
    digits = "".join(c for c in number if c.isdigit())
    if not digits or not DIGITS_ONLY.match(number):
        return words(number)
    found = [digits]
    if number.startswith("+1") and len(digits) == 11:
        found.append(digits[1:])
    # People look a number up by its last digits too: the local part, the last four.
    found += [digits[-n:] for n in (7, 4) if len(digits) > n]
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Term:
    """Consecutive words that must appear in this order; the last may be a prefix."""

    words: tuple[str, ...]
    prefix: bool = False

    def fts5(self) -> str:
        return '"' + " ".join(self.words) + '"' + ("*" if self.prefix else "")

    def tsquery(self) -> str:
        parts = list(self.words)
        if self.prefix:
            parts[-1] += ":*"
        return "(" + " <-> ".join(parts) + ")"

    def at(self, folded: Sequence[str], index: int) -> bool:
        """Whether the term's words start at ``folded[index]``."""
        if index + len(self.words) > len(folded):
            return False
        *whole, last = self.words
        if any(folded[index + i] != w for i, w in enumerate(whole)):
            return False
        candidate = folded[index + len(whole)]
        return candidate.startswith(last) if self.prefix else candidate == last


def parse(query: str) -> list[Term]:
    """The terms of what a person typed: every one must match.

    ``"a phrase"`` in quotes, ``word*`` for a prefix; a quote left open is
    read as if it were not there, and a ``*`` with no word before it is
    dropped. A number typed with spaces or dashes is one word.
    """
    terms: list[Term] = []
    pieces = query.split('"')
    if len(pieces) % 2 == 0:  # an unbalanced quote: the last one is plain text
        pieces[-2:] = [pieces[-2] + " " + pieces[-1]]
    for index, piece in enumerate(pieces):
        quoted = index % 2 == 1
        if quoted:
            # "a phrase"* : a prefix on the phrase's last word.
            after = pieces[index + 1] if index + 1 < len(pieces) else ""
            chunks = [piece + ("*" if after.startswith("*") else "")]
        else:
            chunks = _unquoted_chunks(piece)
        for chunk in chunks:
            stripped = chunk.strip()
            found = number_words(stripped)[:1] if _is_number(stripped) else words(stripped)
            if found:
                terms.append(Term(tuple(found), prefix=stripped.endswith("*")))
    unique = list(dict.fromkeys(terms))
    return unique[:MAX_TERMS]


def _unquoted_chunks(piece: str) -> list[str]:
    """Whitespace-separated chunks, with a number written in groups ("+1 415 555 0100") kept whole."""
    chunks: list[str] = []
    for chunk in piece.split():
        numberish = DIGITS_ONLY.match(chunk.rstrip("*"))
        if chunks and numberish and DIGITS_ONLY.match(chunks[-1]) and not chunks[-1].endswith("*"):
            chunks[-1] += " " + chunk
        else:
            chunks.append(chunk)
    return chunks


def _is_number(chunk: str) -> bool:
    return bool(DIGITS_ONLY.match(chunk.rstrip("*"))) and sum(c.isdigit() for c in chunk) >= 3


# -- the index ----------------------------------------------------------------


def document(connection: Connection, call_id: int) -> str:
    """The words a call is found by: its numbers, its speakers' names, its finished transcripts."""
    call = connection.execute(
        select(Call.from_number, Call.to_number, Call.title).where(Call.id == call_id)
    ).one_or_none()
    if call is None:
        return ""
    found = number_words(call.from_number) + number_words(call.to_number) + words(call.title or "")
    found += words(
        " ".join(connection.scalars(select(SpeakerName.name).where(SpeakerName.call_id == call_id)))
    )
    texts = connection.scalars(
        select(Transcript.text)
        .join(Recording, Recording.id == Transcript.recording_id)
        .where(Recording.call_id == call_id, Transcript.status == TranscriptStatus.COMPLETED)
        .order_by(Recording.id)
    )
    for transcript_text in texts:
        found += words(transcript_text or "")
    return " ".join(found)


def reindex(connection: Connection, call_id: int) -> None:
    """Rewrite one call's document, inside the caller's transaction."""
    body = document(connection, call_id)
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                "INSERT INTO call_search (call_id, document) VALUES (:id, to_tsvector('simple', :body)) "
                "ON CONFLICT (call_id) DO UPDATE SET document = excluded.document"
            ),
            {"id": call_id, "body": body},
        )
    else:
        connection.execute(text("DELETE FROM call_search WHERE rowid = :id"), {"id": call_id})
        connection.execute(
            text("INSERT INTO call_search (rowid, body) VALUES (:id, :body)"), {"id": call_id, "body": body}
        )


def forget(connection: Connection, call_id: int) -> None:
    """Remove one call's document (the call is being deleted), inside the caller's transaction."""
    column = "call_id" if connection.dialect.name == "postgresql" else "rowid"
    connection.execute(text(f"DELETE FROM call_search WHERE {column} = :id"), {"id": call_id})  # noqa: S608


def rebuild(connection: Connection, batch: int = 1000) -> int:
    """Rewrite every call's document (after a migration, or a bulk import); returns how many."""
    done, last = 0, 0
    while True:
        ids = list(connection.scalars(select(Call.id).where(Call.id > last).order_by(Call.id).limit(batch)))
        if not ids:
            return done
        for call_id in ids:
            reindex(connection, call_id)
        done, last = done + len(ids), ids[-1]


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """For Alembic: leave out the search tables (and FTS5's shadow tables), which no model describes."""
    return not (
        type_ == "table" and name and any(name == t or name.startswith(t + "_") for t in SEARCH_TABLES)
    )


# -- queries --------------------------------------------------------------------


def condition(terms: Sequence[Term], dialect: str) -> ColumnElement[bool] | None:
    """A WHERE condition on ``calls``: the call's document holds every term."""
    if not terms:
        return None
    if dialect == "postgresql":
        query = " & ".join(t.tsquery() for t in terms)
        hits = text("SELECT call_id FROM call_search WHERE document @@ to_tsquery('simple', :tsquery)")
        return Call.id.in_(hits.bindparams(bindparam("tsquery", query)).columns(literal_column("call_id")))
    query = " ".join(t.fts5() for t in terms)
    hits = text("SELECT rowid FROM call_search WHERE call_search MATCH :fts")
    return Call.id.in_(hits.bindparams(bindparam("fts", query)).columns(literal_column("rowid")))


# -- snippets -------------------------------------------------------------------

SNIPPET_BEFORE = 8  # words of context before the first hit
SNIPPET_WORDS = 28


def snippet(source: str, terms: Sequence[Term]) -> Markup | None:
    """A short piece of ``source`` around the first hit, HTML-escaped, with each hit in ``<mark>``.

    None when no term is in the text (the call matched by a number or a name).
    """
    spans = list(_spans(source))
    folded: list[str] = []
    owner: list[int] = []  # folded word -> the span it came from
    for index, (_, _, parts) in enumerate(spans):
        folded += parts
        owner += [index] * len(parts)
    marked: set[int] = set()
    for term in terms:
        for i in range(len(folded)):
            if term.at(folded, i):
                marked.update(owner[j] for j in range(i, i + len(term.words)))
    if not marked:
        return None
    first = max(0, min(marked) - SNIPPET_BEFORE)
    last = min(len(spans), first + SNIPPET_WORDS) - 1
    start, end = spans[first][0], spans[last][1]
    pieces: list[Markup] = [Markup("… ")] if first > 0 else []
    cursor = start
    for index in range(first, last + 1):
        begin, stop, _ = spans[index]
        if index in marked:
            pieces.append(escape(source[cursor:begin]))
            pieces.append(Markup("<mark>{}</mark>").format(source[begin:stop]))
            cursor = stop
    pieces.append(escape(source[cursor:end]))
    if last < len(spans) - 1:
        pieces.append(Markup(" …"))
    return Markup("").join(pieces)
