"""The dashboard in a browser (issue 9): what a person does with it, on the running service.

Debian's headless Chromium drives the service as the Procfile runs it
(gunicorn and the worker), with the fake Twilio and AssemblyAI of
``tests/fakes``; calls arrive as Twilio's signed webhooks and are
transcribed by the fake AssemblyAI, which calls back. One service per
storage configuration serves the whole module; each test opens its own
browser context and logs in through the form.

Scenarios of features still being built (live status, full-text search and
filters on the list; clickable words and turn times on the call page) skip
with "feature not built yet" while the page lacks the feature's marker, and
run by themselves once it is there.

Screenshots go to ``$CALLSCRIBE_ARTIFACTS`` (default ``tests/artifacts/``).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import sqlalchemy as sa
import srt
import webvtt

from tests.e2e.browser import chromium
from tests.e2e.calls import PlannedCall, answer_and_record, ring, transcript_of, wait_transcribed
from tests.e2e.service import REPO, Fakes, Service, Storage
from tests.e2e.twilio_side import TwilioSide
from tests.fakes import audio
from tests.helpers import ADMIN_PASSWORD, wav_bytes

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, ViewportSize

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ARTIFACTS_VARIABLE = "CALLSCRIBE_ARTIFACTS"
CALLEE = "+14155550199"
# A user of the logout test's own: logging out ends every session of the user.
LEAVER, LEAVER_PASSWORD = "leaving", "leaving-password-4e2b"
WIDE, NARROW = 1280, 390
# The narrowest phone the pages are laid out for.
SMALLEST = 360
# How long the page may take to show what the service already knows.
SHOWN_MS = 10_000
# How long a live list may take to notice a change: a few polling intervals.
LIVE_MS = 20_000
# How wide the page is against the window, and the elements that reach past its right edge.
SIZES = """() => ({
  scroll: document.documentElement.scrollWidth,
  inner: window.innerWidth,
  past: [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth)
    .map(e => `${e.tagName.toLowerCase()}.${e.className}: ${e.textContent.trim().slice(0, 40)}`),
})"""
CALL_PAGE = re.compile(r"/calls/(CA[0-9a-f]{32})$")


def planned_calls() -> tuple[PlannedCall, PlannedCall]:
    """A voicemail (one channel, a diarized "Speaker A") and a forwarded call (a party per channel).

    The audio lasts longer than the words AssemblyAI's fake times, so a
    player can seek to any of them.
    """
    voicemail = PlannedCall(
        name="voicemail",
        caller="+14155550131",
        channels=1,
        source="RecordVerb",
        duration=5,
        audio=audio.tone(5.0, 1, 440.0),
        text="Hi, this is Ada asking about a refund for the invoice.",
        utterances=[{"speaker": "A", "text": "Hi, this is Ada asking about a refund for the invoice."}],
    )
    forwarded = PlannedCall(
        name="forwarded",
        caller="+14155550132",
        channels=2,
        source="DialVerb",
        duration=6,
        audio=audio.tone(6.0, 2, 660.0),
        text="Thanks for calling Acme. I'd like to change my order.",
        utterances=[
            {"channel": 2, "text": "Thanks for calling Acme."},
            {"channel": 1, "text": "I'd like to change my order."},
        ],
    )
    return voicemail, forwarded


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # A player started from a script, not a click, must play: the test presses play that way.
    with chromium("--autoplay-policy=no-user-gesture-required") as running:
        yield running


@pytest.fixture(scope="module")
def calls(service: Service, fakes: Fakes, database: sa.Engine) -> tuple[PlannedCall, PlannedCall]:
    """Two calls, played through the service as Twilio would, transcribed before any test looks."""
    planned = planned_calls()
    with requests.Session() as session:
        twilio = TwilioSide(session, service.local_url)
        for call in planned:
            ring(twilio, call)
            answer_and_record(twilio, fakes, call)
    wait_transcribed(database, list(planned))
    return planned


@pytest.fixture(scope="module")
def artifacts(storage: Storage) -> Path:
    folder = Path(os.environ.get(ARTIFACTS_VARIABLE) or REPO / "tests" / "artifacts") / storage.backend
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser: Browser, service: Service, width: int = WIDE) -> Page:
    """A fresh browser context (no cookies) on the service, ``width`` CSS pixels wide."""
    context = browser.new_context(base_url=service.local_url, viewport=viewport(width), accept_downloads=True)
    context.set_default_timeout(SHOWN_MS)
    return context.new_page()


def viewport(width: int) -> ViewportSize:
    return {"width": width, "height": 844 if width < 600 else 800}


def log_in(page: Page, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    """Through the login form, as a person would; lands on the calls list."""
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.fixture(scope="module")
def signed_in(
    browser: Browser, service: Service, calls: tuple[PlannedCall, PlannedCall]
) -> Iterator[BrowserContext]:
    """One browser context logged in as the admin, for the tests that start logged in.

    Logging in costs a password hash on the server; once per module keeps the
    run short. No test logs this user out: logging out ends every session of
    the user, so the logout test uses a user of its own.
    """
    page = open_page(browser, service)
    try:
        log_in(page)
        page.close()
        yield page.context
    finally:
        page.context.close()


@pytest.fixture
def page(signed_in: BrowserContext) -> Iterator[Page]:
    """A new tab of the logged-in context."""
    opened = signed_in.new_page()
    try:
        yield opened
    finally:
        opened.close()


def link_to(page: Page, call_sid: str) -> Locator:
    """The link to a call's page, wherever the list shows it."""
    return page.locator(f'a[href$="/calls/{call_sid}"]')


def dialogue(page: Page) -> list[tuple[str, str]]:
    """The call page's dialogue as a person reads it: (who, said) per turn."""
    turns = page.locator("ol.dialogue > li")
    who, said = turns.locator(".who").all_inner_texts(), turns.locator(".said").all_inner_texts()
    return list(zip(who, said, strict=True))


def needs_feature(present: bool, feature: str) -> None:
    """Skip until the page carries the feature's marker; from then on the test must pass."""
    if not present:
        pytest.skip(f"feature not built yet: {feature}")


# -- logging in and out ------------------------------------------------------------


def test_logging_in_through_the_form_opens_the_calls_list(
    browser: Browser, service: Service, calls: tuple[PlannedCall, PlannedCall]
) -> None:
    from playwright.sync_api import expect

    page = open_page(browser, service)
    try:
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/login"))
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{service.local_url}/")
        expect(page.locator("header")).to_contain_text("admin")
        for call in calls:
            expect(link_to(page, call.call_sid).first).to_be_visible()
    finally:
        page.context.close()


def add_user(page: Page, username: str, password: str, role: str) -> None:
    """The admin adds a user on /users."""
    from playwright.sync_api import expect

    page.goto("/users")
    form = page.locator("form", has=page.get_by_role("button", name="Add"))
    form.get_by_label("User name").fill(username)
    form.get_by_label("Password").fill(password)
    form.get_by_label("Role").select_option(role)
    form.get_by_role("button", name="Add").click()
    expect(page.locator("table.users")).to_contain_text(username)


def test_logging_out_sends_the_calls_list_back_to_the_login_form(
    browser: Browser, service: Service, page: Page
) -> None:
    from playwright.sync_api import expect

    add_user(page, LEAVER, LEAVER_PASSWORD, "viewer")
    leaving = open_page(browser, service)
    try:
        log_in(leaving, LEAVER, LEAVER_PASSWORD)
        leaving.get_by_role("button", name="Log out").click()
        expect(leaving).to_have_url(re.compile(r"/login"))
        leaving.goto("/")
        expect(leaving).to_have_url(re.compile(r"/login"))
        expect(leaving.get_by_role("button", name="Log in")).to_be_visible()
    finally:
        leaving.context.close()


# -- the dial form -------------------------------------------------------------------


def test_dialling_an_invalid_number_shows_why_and_calls_no_one(page: Page, fakes: Fakes) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    before = len(fakes.twilio.calls_created)
    page.get_by_label("Number to call").fill("4155550100")
    page.get_by_role("button", name="Call and record").click()
    expect(page.locator("#dial-error")).to_contain_text("E.164")  # inline, under the field
    expect(page.get_by_label("Number to call")).to_be_visible()  # still on the list, to try again
    assert len(fakes.twilio.calls_created) == before, fakes.twilio.calls_created[before:]


def test_dialling_a_valid_number_places_the_call_and_opens_its_page(page: Page, fakes: Fakes) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    before = len(fakes.twilio.calls_created)
    page.get_by_label("Number to call").fill(CALLEE)
    page.get_by_role("button", name="Call and record").click()
    expect(page).to_have_url(CALL_PAGE)
    placed = fakes.twilio.calls_created[before:]
    assert [form["To"] for form in placed] == [[CALLEE]], placed
    match = CALL_PAGE.search(page.url)
    assert match and match.group(1) in fakes.twilio.calls, page.url
    expect(page.locator("h1")).to_contain_text(CALLEE)


# -- uploading audio ---------------------------------------------------------------------


def test_uploading_files_shows_each_file_s_progress_and_opens_its_transcript(
    page: Page, fakes: Fakes, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    good, bad = tmp_path / "standup.wav", tmp_path / "notes.wav"
    good.write_bytes(wav_bytes(seconds=1.5))
    bad.write_bytes(b"meeting notes, not sound")
    fakes.assemblyai.set_result_for_audio(good.read_bytes(), "Morning everyone, quick update.")
    page.goto("/")
    page.get_by_role("link", name="Upload audio").click()
    page.get_by_label("Audio files").set_input_files([str(good), str(bad)])
    page.get_by_role("button", name="Upload and transcribe").click()

    rows = page.locator("ul.uploads > li")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("notes.wav is not WAV audio")
    rows.nth(0).get_by_role("link", name="Transcribing: open the call").click()
    expect(page.locator("h1")).to_have_text("standup.wav")
    expect(page.locator("ol.dialogue")).to_contain_text("Morning everyone, quick update.", timeout=15_000)


# -- a call's page ---------------------------------------------------------------------


def test_renaming_a_speaker_on_the_call_page_shows_the_name_in_the_dialogue(
    page: Page, calls: tuple[PlannedCall, PlannedCall]
) -> None:
    from playwright.sync_api import expect

    voicemail, _ = calls
    page.goto(f"/calls/{voicemail.call_sid}")
    who = page.locator("ol.dialogue > li .who")
    expect(who).to_have_text(["Caller"])  # one voice on a voicemail: the caller
    field = page.get_by_label("Name for speaker A")
    field.fill("Dana")
    page.locator("form", has=field).get_by_role("button", name="Rename").click()
    expect(page).to_have_url(re.compile(re.escape(f"/calls/{voicemail.call_sid}") + "$"))
    expect(who).to_have_text(["Dana"])
    assert dialogue(page) == [("Dana", voicemail.text)]


def cue_turns(cues: list[str]) -> list[tuple[str, str]]:
    """Subtitle cues ("Name: words", wrapped) as turns: a long turn's cues joined back together."""
    turns: list[tuple[str, str]] = []
    for cue in cues:
        who, sep, said = " ".join(cue.split()).partition(": ")
        assert sep, f"a cue without its speaker: {cue!r}"
        if turns and turns[-1][0] == who:
            turns[-1] = (who, f"{turns[-1][1]} {said}")
        else:
            turns.append((who, said))
    return turns


def parse_text(body: str) -> list[tuple[str, str]]:
    lines = body.splitlines()
    turns = []
    for line in lines[2:]:
        match = re.fullmatch(r"\[(\d\d):([0-5]\d):([0-5]\d)\] ([^:]+): (.+)", line)
        assert match, f"not a dialogue line: {line!r}"
        turns.append((match.group(4), match.group(5)))
    return turns


def parse_srt(body: str) -> list[tuple[str, str]]:
    subtitles = list(srt.parse(body))
    assert subtitles and all(s.start < s.end for s in subtitles), subtitles
    return cue_turns([s.content for s in subtitles])


def parse_vtt(body: str) -> list[tuple[str, str]]:
    captions = webvtt.from_buffer(io.StringIO(body)).captions
    assert captions and all(c.start_in_seconds < c.end_in_seconds for c in captions), captions
    return cue_turns([c.text for c in captions])


def parse_json(body: str) -> list[tuple[str, str]]:
    document: dict[str, Any] = json.loads(body)
    return [(t["speaker"], t["text"]) for r in document["recordings"] for t in r["dialogue"]]


EXPORTS = {
    "txt": ("Text", parse_text),
    "srt": ("SRT", parse_srt),
    "vtt": ("WebVTT", parse_vtt),
    "json": ("JSON", parse_json),
}


@pytest.mark.parametrize("fmt", list(EXPORTS))
def test_each_export_downloads_with_the_speakers_and_words_of_the_page(
    page: Page, calls: tuple[PlannedCall, PlannedCall], fmt: str, tmp_path: Path
) -> None:
    _, forwarded = calls
    page.goto(f"/calls/{forwarded.call_sid}")
    shown = dialogue(page)
    assert [said for _, said in shown] == forwarded.lines
    link_name, parse = EXPORTS[fmt]
    with page.expect_download() as started:
        page.locator("nav.exports").get_by_role("link", name=link_name, exact=True).click()
    download = started.value
    assert download.failure() is None, download.failure()
    assert download.suggested_filename.startswith(forwarded.call_sid), download.suggested_filename
    assert download.suggested_filename.endswith(f".{fmt}"), download.suggested_filename
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    body = saved.read_text(encoding="utf-8")
    if fmt == "txt":
        assert forwarded.call_sid in body.splitlines()[0], body
    if fmt == "json":
        assert json.loads(body)["call_sid"] == forwarded.call_sid
    assert parse(body) == shown, body


# -- screenshots, wide and narrow ----------------------------------------------------------


VIEWS = ["list", "call", "users", "upload", "login"]


def show(page: Page, view: str, calls: tuple[PlannedCall, PlannedCall]) -> None:
    """Open one of the :data:`VIEWS` and wait until it shows what it is for."""
    from playwright.sync_api import expect

    _, forwarded = calls
    if view == "call":
        page.goto(f"/calls/{forwarded.call_sid}")
        expect(page.locator("ol.dialogue > li")).to_have_count(len(forwarded.lines))
    elif view == "list":
        page.goto("/")
        expect(link_to(page, forwarded.call_sid).first).to_be_visible()
        page.locator("details.more-filters > summary").click()  # the filters, open
    elif view == "users":
        page.goto("/users")
        expect(page.get_by_role("heading", name="Users")).to_be_visible()
    elif view == "upload":
        page.goto("/upload")
        expect(page.get_by_label("Audio files")).to_be_visible()
        page.locator("form.upload details > summary").click()  # the options, open
    else:
        page.goto("/login")
        expect(page.get_by_role("button", name="Log in")).to_be_visible()


@pytest.fixture
def viewed(request: pytest.FixtureRequest, page: Page, browser: Browser, service: Service) -> Iterator[Page]:
    """A tab for the test's ``view``: logged in, or, for the login form, a fresh browser."""
    if request.node.callspec.params["view"] != "login":
        yield page
        return
    fresh = open_page(browser, service)
    try:
        yield fresh
    finally:
        fresh.context.close()


@pytest.mark.parametrize("width", [WIDE, NARROW, SMALLEST])
@pytest.mark.parametrize("view", VIEWS)
def test_each_page_fits_the_window_and_is_saved_as_a_screenshot(
    viewed: Page, calls: tuple[PlannedCall, PlannedCall], artifacts: Path, view: str, width: int
) -> None:
    """Each page at a laptop's and a phone's width; on a phone nothing scrolls sideways."""
    viewed.set_viewport_size(viewport(width))
    try:
        show(viewed, view, calls)
    finally:
        viewed.screenshot(path=str(artifacts / f"{view}-{width}px.png"), full_page=True)
    if width < WIDE:
        sizes = viewed.evaluate(SIZES)
        assert sizes["scroll"] <= sizes["inner"], f"the {view} page scrolls sideways at {width} px: {sizes}"


# -- accessibility -------------------------------------------------------------------------

# Every control a person can reach, and the name assistive technology reads for it.
UNNAMED_CONTROLS = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, a[href], audio, summary')]
  .filter(el => {
    const labelled = el.labels && [...el.labels].some(l => l.textContent.trim());
    const by = el.getAttribute('aria-labelledby');
    const named = labelled || (el.getAttribute('aria-label') || '').trim()
      || (by && (document.getElementById(by) || {}).textContent)
      || (['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) && el.textContent.trim());
    return !named;
  })
  .map(el => el.outerHTML.slice(0, 120))"""

# WCAG 2.1's contrast ratio for every piece of text shown: 4.5:1, or 3:1 for large text.
LOW_CONTRAST = """() => {
  const rgb = c => { const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null; const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const luminance = ({r, g, b}) => { const f = v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const behind = el => { for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor); if (c && c.a > 0.5) return c; }
    return {r: 255, g: 255, b: 255, a: 1}; };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    if (box.width < 2 || box.height < 2 || style.visibility === 'hidden') continue;
    const [hi, lo] = [luminance(rgb(style.color)), luminance(behind(el))].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05), size = parseFloat(style.fontSize);
    const need = size >= 24 || (parseInt(style.fontWeight) >= 700 && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) low.push(`${el.tagName.toLowerCase()}.${el.className} ${ratio.toFixed(2)}:1 `
      + `“${el.textContent.trim().slice(0, 30)}”`);
  }
  return low;
}"""


@pytest.mark.parametrize("view", VIEWS)
def test_every_control_has_a_name_and_all_text_has_enough_contrast(
    viewed: Page, calls: tuple[PlannedCall, PlannedCall], view: str
) -> None:
    show(viewed, view, calls)
    assert viewed.evaluate(UNNAMED_CONTROLS) == [], f"controls on the {view} page with no name"
    assert viewed.evaluate(LOW_CONTRAST) == [], f"text on the {view} page below WCAG AA contrast"


def focused(page: Page) -> str:
    """The focused element as a person hears it: its accessible name, or its tag."""
    name: str = page.evaluate(
        """() => { const el = document.activeElement, label = el.labels && el.labels[0];
          return el.getAttribute('aria-label') || (label && label.textContent.trim())
            || el.textContent.trim() || el.tagName.toLowerCase(); }"""
    )
    return " ".join(name.split())


def test_the_filters_open_and_apply_from_the_keyboard_in_reading_order(
    page: Page, calls: tuple[PlannedCall, PlannedCall]
) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    page.get_by_role("searchbox").focus()
    page.keyboard.press("Tab")
    assert focused(page) == "Search"
    page.keyboard.press("Tab")
    assert focused(page) == "Filters"
    page.keyboard.press("Enter")  # the summary opens the filters
    page.keyboard.press("Tab")
    assert focused(page).startswith("Direction")
    page.keyboard.press("ArrowDown")  # Any -> Inbound
    expect(page.locator("select[name=direction]")).to_have_value("inbound")
    for _ in range(15):  # status, transcript, each part of two dates, number: then Apply
        page.keyboard.press("Tab")
        if focused(page) == "Apply":
            break
    assert focused(page) == "Apply"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"direction=inbound"))
    for call in calls:
        expect(link_to(page, call.call_sid).first).to_be_visible()


def test_a_turn_plays_from_the_keyboard(
    page: Page, calls: tuple[PlannedCall, PlannedCall], fakes: Fakes
) -> None:
    _, forwarded = calls
    page.goto(f"/calls/{forwarded.call_sid}")
    second = transcript_of(fakes, forwarded)["utterances"][1]
    button = page.locator("button.seek[data-start]").nth(1)
    player = page.locator("section.recording", has=button).locator("audio").first
    before = play_then_pause(page, player)
    assert before < second["start"] / 1000 - 1, f"paused at {before} s, too near the turn"
    button.focus()
    assert focused(page).startswith("Play from")
    page.keyboard.press("Enter")
    expect_player_at(page, player, second["start"] / 1000)


# -- features still being built: each skips until the page carries its marker ----------------

# The element that holds one call on the list: a table row today, perhaps a card later.
LIST_ENTRY = "xpath=ancestor::*[self::tr or self::li or self::article][1]"


def list_polls_for_changes(page: Page) -> bool:
    """The live list's marker: one of the page's scripts asks for the calls updated since a time."""
    scripts: list[dict[str, str]] = page.locator("script").evaluate_all(
        "all => all.map(s => ({src: s.src, text: s.textContent}))"
    )
    for script in scripts:
        text = page.request.get(script["src"]).text() if script["src"] else script["text"]
        if "updated_since" in text:
            return True
    return False


def lists_calls_as_json(page: Page) -> bool:
    """Full-text search's marker: GET /api/calls, the list's own API, where its search is built."""
    return page.request.get("/api/calls").status == 200


def search(page: Page, query: str) -> None:
    box = page.get_by_role("searchbox")
    box.fill(query)
    box.press("Enter")


def test_a_new_call_appears_on_the_list_and_moves_on_without_a_reload(
    page: Page, service: Service, fakes: Fakes, database: sa.Engine
) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    needs_feature(list_polls_for_changes(page), "live status on the calls list")
    page.evaluate("window.stayedOnThisPage = true")  # gone if the page reloads
    call = PlannedCall(
        name="live",
        caller="+14155550133",
        channels=1,
        source="RecordVerb",
        duration=3,
        audio=audio.tone(3.0, 1, 550.0),
        text="Just checking in on the delivery.",
        utterances=[{"speaker": "A", "text": "Just checking in on the delivery."}],
    )
    with requests.Session() as session:
        twilio = TwilioSide(session, service.local_url)
        ring(twilio, call)
        link = link_to(page, call.call_sid).first
        expect(link).to_be_visible(timeout=LIVE_MS)
        entry = link.locator(LIST_ENTRY)
        expect(entry).to_contain_text(re.compile("ringing", re.IGNORECASE), timeout=LIVE_MS)
        answer_and_record(twilio, fakes, call)
    wait_transcribed(database, [call])
    expect(entry).to_contain_text(re.compile(r"\bdone\b", re.IGNORECASE), timeout=LIVE_MS)
    assert page.evaluate("window.stayedOnThisPage === true"), "the list reloaded to show the change"


def test_search_finds_a_phrase_and_a_prefix(page: Page, calls: tuple[PlannedCall, PlannedCall]) -> None:
    from playwright.sync_api import expect

    voicemail, forwarded = calls
    page.goto("/")
    needs_feature(lists_calls_as_json(page), "full-text search on the calls list")
    # Each search below changes what is shown, so every expectation waits for the new results.
    search(page, '"change my order"')
    expect(link_to(page, forwarded.call_sid).first).to_be_visible()
    expect(link_to(page, voicemail.call_sid)).to_have_count(0)
    search(page, '"calling change"')  # both words are in the forwarded call, not side by side
    expect(link_to(page, forwarded.call_sid)).to_have_count(0)
    search(page, "refun*")
    expect(link_to(page, voicemail.call_sid).first).to_be_visible()
    expect(link_to(page, forwarded.call_sid)).to_have_count(0)


def choose_direction(page: Page, prefix: str) -> None:
    """Pick the direction filter's first value starting with ``prefix`` (a select or radios), and apply it."""
    control = page.locator("[name=direction]").first
    if not control.is_visible():  # the filters fold away under "Filters" until opened
        page.locator("summary", has_text="Filters").click()
    if control.evaluate("e => e.tagName") == "SELECT":
        values: list[str] = control.locator("option").evaluate_all("all => all.map(o => o.value)")
        control.select_option(next(v for v in values if v.startswith(prefix)))
    else:
        page.locator(f'[name=direction][value^="{prefix}"]').first.check()
    control.evaluate("e => e.form.requestSubmit()")


def test_filtering_by_direction_shows_only_those_calls(
    page: Page, calls: tuple[PlannedCall, PlannedCall]
) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    needs_feature(page.locator("[name=direction]").count() > 0, "the direction filter on the calls list")
    page.get_by_label("Number to call").fill(CALLEE)
    page.get_by_role("button", name="Call and record").click()
    expect(page).to_have_url(CALL_PAGE)
    dialled = CALL_PAGE.search(page.url)
    assert dialled
    page.goto("/")
    choose_direction(page, "outbound")
    for call in calls:
        expect(link_to(page, call.call_sid)).to_have_count(0)
    expect(link_to(page, dialled.group(1)).first).to_be_visible()
    choose_direction(page, "inbound")
    for call in calls:
        expect(link_to(page, call.call_sid).first).to_be_visible()
    expect(link_to(page, dialled.group(1))).to_have_count(0)


def starts_at(attribute: str | None, ms: int) -> bool:
    """A data-start in AssemblyAI's milliseconds or in the player's seconds: either names the moment."""
    value = float(attribute or "nan")
    return abs(value - ms) < 1 or abs(value - ms / 1000) < 0.001


def play_then_pause(page: Page, player: Locator) -> float:
    """Press play on the call's recording, wait until it plays, pause; where it stopped (s)."""
    player.evaluate("a => a.play()")
    page.wait_for_function("a => a.currentTime > 0", arg=player.element_handle())
    position: float = player.evaluate("a => { a.pause(); return a.currentTime; }")
    return position


def expect_player_at(page: Page, player: Locator, seconds: float) -> None:
    """The player moves to ``seconds`` (within a quarter second) soon after the click."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([a, at]) => Math.abs(a.currentTime - at) < 0.25",
            arg=[player.element_handle(), seconds],
            timeout=3000,
        )
    except PlaywrightTimeout:
        at = player.evaluate("a => a.currentTime")
        raise AssertionError(f"the player is at {at} s, not at {seconds} s") from None


def test_clicking_a_word_moves_the_player_to_that_word(
    page: Page, calls: tuple[PlannedCall, PlannedCall], fakes: Fakes
) -> None:
    _, forwarded = calls
    page.goto(f"/calls/{forwarded.call_sid}")
    words = page.locator("span.word[data-start]")
    needs_feature(words.count() > 0, "words that seek on the call page")
    said = [w for u in transcript_of(fakes, forwarded)["utterances"] for w in u["words"]]
    change = next(w for w in said if w["text"] == "change")  # in the second turn, seconds in
    span = words.filter(has_text=re.compile(r"^\s*change\s*$")).first
    assert starts_at(span.get_attribute("data-start"), change["start"]), span.get_attribute("data-start")
    player = page.locator("section.recording", has=span).locator("audio").first
    before = play_then_pause(page, player)
    assert before < change["start"] / 1000 - 1, f"paused at {before} s, too near the word"
    span.click()
    expect_player_at(page, player, change["start"] / 1000)


def test_clicking_a_turns_time_moves_the_player_to_that_turn(
    page: Page, calls: tuple[PlannedCall, PlannedCall], fakes: Fakes
) -> None:
    _, forwarded = calls
    page.goto(f"/calls/{forwarded.call_sid}")
    seeks = page.locator("button.seek[data-start]")
    needs_feature(seeks.count() > 0, "turn times that seek on the call page")
    second = transcript_of(fakes, forwarded)["utterances"][1]
    button = seeks.nth(1)
    assert starts_at(button.get_attribute("data-start"), second["start"]), button.get_attribute("data-start")
    player = page.locator("section.recording", has=button).locator("audio").first
    before = play_then_pause(page, player)
    assert before < second["start"] / 1000 - 1, f"paused at {before} s, too near the turn"
    button.click()
    expect_player_at(page, player, second["start"] / 1000)
