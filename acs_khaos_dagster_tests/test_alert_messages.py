"""An alert as each channel shows it (``alerts/notifier/messages.py``): a Slack Block Kit
message, a Teams Adaptive Card, an email with a plain and an HTML part — each within the
channel's limits, with the same facts in the same order, and nothing the channel would
read as markup."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs_khaos_dagster.alerts.notifier.messages import (
    Alert,
    AlertKind,
    email_message,
    slack_payload,
    teams_payload,
)


def alert(**changed: object) -> Alert:
    fields: dict[str, object] = {
        "kind": AlertKind.OPENED,
        "title": "Order SO1042 held",
        "text": "Held for 3 days: courier unknown.",
        "exception_type": "order_held",
        "entity_ref": "order:SO1042",
        "severity": "high",
        "link": "https://dagster.internal/exceptions/17",
        "facts": (("Owner", "operations"), ("Seen", "3 times")),
    }
    fields.update(changed)
    return Alert(**fields)  # type: ignore[arg-type]


def blocks_of(payload: dict, kind: str) -> list[dict]:
    return [b for b in payload["blocks"] if b["type"] == kind]


def plain_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()


# --- the alert itself ----------------------------------------------------------------------------


def test_an_alert_read_back_from_its_json_is_the_same_alert() -> None:
    original = alert()
    assert Alert.from_json(original.to_json()) == original


def test_an_alerts_json_has_its_kind_as_text_and_facts_as_pairs() -> None:
    data = alert(kind=AlertKind.CHECK_FAILED).to_json()
    assert data["kind"] == "check_failed"
    assert data["facts"] == [["Owner", "operations"], ["Seen", "3 times"]]


# --- Slack ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "label", "emoji"),
    [
        (AlertKind.OPENED, "Opened", ":rotating_light:"),
        (AlertKind.CLOSED, "Closed", ":white_check_mark:"),
        (AlertKind.RUN_FAILED, "Run failed", ":x:"),
        (AlertKind.CHECK_FAILED, "Check failed", ":no_entry:"),
    ],
)
def test_slack_shows_what_happened_in_the_header_and_its_emoji_before_the_text(
    kind: AlertKind, label: str, emoji: str
) -> None:
    payload = slack_payload(alert(kind=kind))
    [header] = blocks_of(payload, "header")
    assert header["text"]["text"] == f"{label}: Order SO1042 held"
    assert payload["text"] == f"{label}: Order SO1042 held"
    assert blocks_of(payload, "section")[0]["text"]["text"] == (
        f"{emoji} Held for 3 days: courier unknown."
    )


def test_slack_facts_are_severity_type_reference_then_the_alerts_own() -> None:
    [_, facts] = blocks_of(slack_payload(alert()), "section")
    assert [f["text"] for f in facts["fields"]] == [
        "*Severity*\nhigh",
        "*Type*\norder_held",
        "*Reference*\norder:SO1042",
        "*Owner*\noperations",
        "*Seen*\n3 times",
    ]


def test_slack_leaves_out_a_type_and_reference_the_alert_does_not_have() -> None:
    [_, facts] = blocks_of(slack_payload(alert(exception_type=None, entity_ref=None)), "section")
    assert [f["text"].split("\n")[0] for f in facts["fields"]] == [
        "*Severity*",
        "*Owner*",
        "*Seen*",
    ]


def test_slack_shows_at_most_ten_facts() -> None:
    many = tuple((f"F{n}", str(n)) for n in range(20))
    [_, facts] = blocks_of(slack_payload(alert(facts=many)), "section")
    assert len(facts["fields"]) == 10
    assert facts["fields"][-1]["text"] == "*F6*\n6"  # three standard facts, then F0..F6


def test_slack_header_is_cut_to_150_characters_ending_with_an_ellipsis() -> None:
    [header] = blocks_of(slack_payload(alert(title="T" * 300)), "header")
    text = header["text"]["text"]
    assert len(text) == 150
    assert text == "Opened: " + "T" * 141 + "…"


def test_a_header_of_exactly_150_characters_is_not_cut() -> None:
    title = "T" * (150 - len("Opened: "))
    [header] = blocks_of(slack_payload(alert(title=title)), "header")
    assert header["text"]["text"] == f"Opened: {title}"


def test_slack_text_is_cut_to_2900_characters() -> None:
    [section, _] = blocks_of(slack_payload(alert(text="x" * 5000)), "section")
    assert len(section["text"]["text"]) == 2900
    assert section["text"]["text"].endswith("x…")


def test_slack_text_and_facts_are_escaped_so_they_are_never_read_as_markup() -> None:
    payload = slack_payload(alert(text="<!channel> a & b", facts=(("A<b>", "c>d"),)))
    [section, facts] = blocks_of(payload, "section")
    assert section["text"]["text"].endswith("&lt;!channel&gt; a &amp; b")
    assert facts["fields"][-1]["text"] == "*A&lt;b&gt;*\nc&gt;d"


def test_slack_has_an_open_button_only_when_the_alert_has_a_link() -> None:
    [actions] = blocks_of(slack_payload(alert()), "actions")
    [button] = actions["elements"]
    assert (button["text"]["text"], button["url"]) == (
        "Open",
        "https://dagster.internal/exceptions/17",
    )
    assert blocks_of(slack_payload(alert(link=None)), "actions") == []


# --- Teams ---------------------------------------------------------------------------------------


def card_of(payload: dict) -> dict:
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return attachment["content"]


@pytest.mark.parametrize(
    ("kind", "colour"),
    [
        (AlertKind.OPENED, "Attention"),
        (AlertKind.CLOSED, "Good"),
        (AlertKind.RUN_FAILED, "Attention"),
        (AlertKind.CHECK_FAILED, "Attention"),
    ],
)
def test_teams_colours_a_closed_alert_good_and_anything_else_for_attention(
    kind: AlertKind, colour: str
) -> None:
    title, *_ = card_of(teams_payload(alert(kind=kind)))["body"]
    assert title["color"] == colour


def test_teams_card_has_the_title_the_text_and_the_facts_in_order() -> None:
    payload = teams_payload(alert())
    assert payload["summary"] == "Opened: Order SO1042 held"
    title, text, facts = card_of(payload)["body"]
    assert title["text"] == "Opened: Order SO1042 held"
    assert text["text"] == "Held for 3 days: courier unknown."
    assert [(f["title"], f["value"]) for f in facts["facts"]] == [
        ("Severity", "high"),
        ("Type", "order_held"),
        ("Reference", "order:SO1042"),
        ("Owner", "operations"),
        ("Seen", "3 times"),
    ]


def test_teams_card_opens_the_link_only_when_there_is_one() -> None:
    [action] = card_of(teams_payload(alert()))["actions"]
    assert (action["type"], action["url"]) == (
        "Action.OpenUrl",
        "https://dagster.internal/exceptions/17",
    )
    assert "actions" not in card_of(teams_payload(alert(link=None)))


# --- email ---------------------------------------------------------------------------------------


def test_an_email_is_addressed_from_the_sender_to_every_recipient() -> None:
    message = email_message(alert(), "integration@brand.example", ["a@x.example", "b@x.example"])
    assert message["From"] == "integration@brand.example"
    assert message["To"] == "a@x.example, b@x.example"
    assert message["Message-ID"].endswith("@brand.example>")
    assert message["Date"]


def test_an_emails_subject_is_prefixed_and_cut_to_200_characters() -> None:
    assert email_message(alert(), "i@b.example", ["o@b.example"])["Subject"] == (
        "[ACS-Khaos] Opened: Order SO1042 held"
    )
    long = email_message(alert(title="T" * 400), "i@b.example", ["o@b.example"])
    assert len(long["Subject"]) == 200
    assert long["Subject"].endswith("T…")


def test_an_emails_plain_part_has_the_title_the_text_the_facts_and_the_link() -> None:
    body = plain_part(email_message(alert(), "i@b.example", ["o@b.example"]))
    assert body == (
        "Opened: Order SO1042 held\n\nHeld for 3 days: courier unknown.\n\n"
        "Severity: high\nType: order_held\nReference: order:SO1042\n"
        "Owner: operations\nSeen: 3 times\n\nhttps://dagster.internal/exceptions/17\n"
    )


def test_an_emails_html_part_escapes_the_alerts_text() -> None:
    message = email_message(
        alert(title="a <b>", text="x & y\nnext", facts=(("<k>", "<v>"),)),
        "i@b.example",
        ["o@b.example"],
    )
    page = html_part(message)
    assert "<h2>Opened: a &lt;b&gt;</h2>" in page
    assert "<p>x &amp; y<br>next</p>" in page
    assert "<tr><th align='left'>&lt;k&gt;</th><td>&lt;v&gt;</td></tr>" in page
    assert "<a href='https://dagster.internal/exceptions/17'>Open</a>" in page


def test_an_email_without_a_link_has_no_open_link() -> None:
    message = email_message(alert(link=None), "i@b.example", ["o@b.example"])
    assert "Open</a>" not in html_part(message)
    assert not plain_part(message).rstrip("\n").endswith("17")


@given(
    title=st.text(min_size=1, max_size=400).filter(lambda t: "\r" not in t and "\n" not in t),
    text=st.text(max_size=6000),
)
def test_whatever_the_text_every_rendering_stays_within_its_channels_limits(
    title: str, text: str
) -> None:
    payload = slack_payload(alert(title=title, text=text))
    [header] = blocks_of(payload, "header")
    assert len(header["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 2900 for b in blocks_of(payload, "section") if "text" in b)
    assert len(payload["text"]) <= 2900


def test_a_brands_alert_names_the_brand_first_in_its_title_and_facts() -> None:
    alert = Alert(kind=AlertKind.OPENED, title="3 orders stuck", text="t", facts=(("Owner", "x"),))
    branded = alert.for_brand("acme")
    assert branded.title == "[acme] 3 orders stuck"
    assert branded.facts == (("Brand", "acme"), ("Owner", "x"))
    assert branded.for_brand("acme") == branded  # a resend is not named twice
    assert alert.for_brand(None) == alert
