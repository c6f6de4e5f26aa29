"""TwiML is checked by parsing the XML for verbs and attributes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from app import twiml

CALLBACK = "https://callscribe.example/twilio/recording-status"
AFTER = "https://callscribe.example/twilio/recorded"


def parse(document: str) -> ET.Element:
    root = ET.fromstring(document)
    assert root.tag == "Response"
    return root


def test_voicemail_greets_then_records_with_the_status_callback() -> None:
    root = parse(
        twiml.voicemail(greeting="Hi there", max_seconds=120, recording_callback=CALLBACK, after_url=AFTER)
    )
    say, record = list(root)
    assert (say.tag, say.text) == ("Say", "Hi there")
    assert record.tag == "Record"
    assert record.attrib["maxLength"] == "120"
    assert record.attrib["recordingStatusCallback"] == CALLBACK
    assert record.attrib["recordingStatusCallbackMethod"] == "POST"
    assert record.attrib["recordingStatusCallbackEvent"] == "completed absent"
    # Without an action Twilio would fetch the greeting again: a loop.
    assert record.attrib["action"] == AFTER


def test_forward_dials_with_dual_channel_recording() -> None:
    root = parse(twiml.forward(to="+14155550199", recording_callback=CALLBACK))
    say, dial = list(root)
    assert say.tag == "Say" and "recorded" in (say.text or "")
    assert dial.tag == "Dial"
    assert dial.attrib["record"] == "record-from-answer-dual"
    assert dial.attrib["recordingStatusCallback"] == CALLBACK
    assert dial.attrib["recordingStatusCallbackEvent"] == "completed absent"
    (number,) = list(dial)
    assert (number.tag, number.text) == ("Number", "+14155550199")


def test_outbound_says_the_call_is_recorded_and_records_the_callee() -> None:
    root = parse(twiml.outbound(max_seconds=60, recording_callback=CALLBACK, after_url=AFTER))
    say, record = list(root)
    assert say.tag == "Say" and "recorded" in (say.text or "")
    assert record.tag == "Record"
    assert record.attrib["maxLength"] == "60"
    assert record.attrib["recordingStatusCallback"] == CALLBACK


def test_goodbye_hangs_up() -> None:
    assert [element.tag for element in parse(twiml.goodbye())] == ["Say", "Hangup"]


def test_greeting_text_cannot_inject_verbs() -> None:
    root = parse(
        twiml.voicemail(
            greeting="</Say><Dial>+19005550100</Dial><Say>",
            max_seconds=60,
            recording_callback=CALLBACK,
            after_url=AFTER,
        )
    )
    assert [element.tag for element in root] == ["Say", "Record"]
    assert root[0].text == "</Say><Dial>+19005550100</Dial><Say>"
