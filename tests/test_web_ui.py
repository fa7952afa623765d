"""What a guard, an operator and a translator see (issue 11, items 1–7), through Flask's test
client: the display per mode and outcome, the dashboard in two languages, the confirmation of
emergency open and lockdown, people inside, and the catalogue every word comes from."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from kiosk.decide.decision import MESSAGES, Reason, messages
from kiosk.decide.texts import TEXTS, text
from kiosk.operator.actions import Action
from tests.web_fakes import OPERATOR, PASSWORD, FakeOperator, FakeStatus, csrf, login

TEMPLATES = Path(__file__).parent.parent / "kiosk" / "web" / "templates"


def logged_in(make_app: Any, **settings: Any) -> FlaskClient:
    client: FlaskClient = make_app(**settings).test_client()
    assert login(client).status_code == 302
    return client


def shown(page: str) -> str:
    """The text a reader sees: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# --- 1: fever, deny, refer and grant look different ------------------------------------

LAST: dict[str, dict[str, Any]] = {
    "fever": {"outcome": "deny", "reason": "fever", "temperature_c": 38.4},
    "deny": {"outcome": "deny", "reason": "unknown_credential", "temperature_c": None},
    "refer": {"outcome": "refer", "reason": "unsigned_credential", "temperature_c": None},
    "grant": {"outcome": "grant", "reason": "ok", "temperature_c": 36.6},
}


@pytest.mark.parametrize("kind", sorted(LAST))
def test_the_last_decision_card_has_the_colour_of_its_kind(
    make_app: Any, status: FakeStatus, kind: str
) -> None:
    vi, en = MESSAGES[Reason(LAST[kind]["reason"])]
    status.last = {"seq": 9, **LAST[kind], "message_vi": vi, "message_en": en}
    page = logged_in(make_app).get("/").text
    card = re.search(r'<article id="last-decision" class="decision (\w+)"', page)
    assert card is not None and card.group(1) == kind
    assert en in page
    if kind == "fever":
        assert "38.4 °C" in page


def test_the_display_stylesheet_gives_each_kind_its_colour(client: FlaskClient) -> None:
    css = client.get("/static/display.css").text
    rules = dict(re.findall(r"body\.(\w+) \{ ([^}]*) \}", css))
    backgrounds = {k: re.search(r"background: (#\w+)", rules[k]).group(1) for k in LAST}  # type: ignore[union-attr]
    assert len(set(backgrounds.values()) - {backgrounds["deny"]}) == 2  # refer and grant differ
    assert backgrounds["fever"] == backgrounds["deny"] and "animation: blink" in rules["fever"]


def test_every_referral_says_whom_to_see() -> None:
    """A referral is amber with no line of its own: its words send the person on. decide()
    refers for a thermometer fault, an unsigned code (policy "refer") and an unwritable log."""
    for reason in (Reason.SENSOR_FAULT, Reason.LOG_UNAVAILABLE, Reason.UNSIGNED_CREDENTIAL):
        vi, en = MESSAGES[reason]
        assert ("gặp bảo vệ" in vi and "see the guard" in en) or (
            "lễ tân" in vi and "reception" in en
        ), reason


# --- 2: the display follows the kiosk's mode and direction -----------------------------


def test_an_exit_grant_says_goodbye_not_welcome() -> None:
    assert messages(Reason.OK, exiting=True) == ("Tạm biệt, hẹn gặp lại", "Goodbye, see you again")
    assert messages(Reason.OK) == ("Mời vào", "Welcome, please enter")
    assert messages(Reason.ALREADY_INSIDE, exiting=True) == MESSAGES[Reason.ALREADY_INSIDE]


@pytest.mark.parametrize(
    ("settings", "says", "never"),
    [
        ({}, ["Scan your QR code", "Stand in front of the thermometer"], ["as you leave"]),
        ({"thermometer": False}, ["Scan your QR code"], ["thermometer"]),
        (
            {"direction": "exit"},
            ["Quét mã QR khi ra", "Scan your QR code as you leave"],
            ["thermometer", "Mask"],
        ),
        (
            {"mode": "checkin", "meeting": "Họp giao ban thứ Hai"},
            ["Quét mã QR để điểm danh", "Scan your QR code to check in", "Họp giao ban thứ Hai"],
            ["thermometer"],
        ),
        ({"mode": "screen"}, ["Stand in front of the thermometer"], ["Scan your QR"]),
    ],
)
def test_the_idle_display_asks_for_what_this_kiosk_needs(
    make_app: Any, settings: dict[str, Any], says: list[str], never: list[str]
) -> None:
    page = shown(make_app(**settings).test_client().get("/display").text)
    for words in says:
        assert words in page
    for words in never:
        assert words not in page


# --- 3: one catalogue, both languages, nothing hard-coded ------------------------------


def test_every_text_has_vietnamese_and_english() -> None:
    for key, (vi, en) in TEXTS.items():
        assert vi.strip() and en.strip(), key
    assert {f"reason.{r.value}" for r in Reason} <= set(TEXTS)
    assert not any("quẹt" in vi.lower() for vi, _ in TEXTS.values())  # swipe, not scan


def test_the_poster_and_the_kiosk_say_the_same_thing() -> None:
    assert TEXTS["poster.heading"] == ("Quét mã để điểm danh", "Scan to check in")
    assert "quét khi ra" in text("reason.already_inside", "vi")


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_no_template_writes_words_of_its_own(template: str) -> None:
    """Words come from the catalogue: outside Jinja expressions, a template holds tags,
    punctuation, units and command lines (``<pre>``) only."""
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    source = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", source, flags=re.S)
    source = re.sub(r"<pre>.*?</pre>|<script.*?</script>", " ", source, flags=re.S)
    attributes = re.findall(r'\b(?:alt|title|placeholder|aria-label)="([^"]*)"', source)
    between = re.sub(r"<[^>]*>", " ", source)
    leftovers = [w for w in [*attributes, *between.split()] if re.search(r"[^\W\d_]", w)]
    assert leftovers == [], f"{template} has words outside the catalogue: {leftovers}"


# --- 4: the dashboard in Vietnamese or English, reasons as words -----------------------


def test_the_dashboard_speaks_the_sites_language_and_switches(make_app: Any) -> None:
    client = logged_in(make_app, language="vi")
    page = client.get("/").text
    assert '<html lang="vi">' in page and "Đăng xuất" in page and "Log out" not in page
    switched = client.get("/language/en?next=/?outcome%3Ddeny")
    assert switched.location == "/?outcome=deny"
    page = client.get("/").text
    assert '<html lang="en">' in page and "Log out" in page and "Đăng xuất" not in page
    assert client.get("/language/vi?next=//evil.example").location == "/"
    assert "Đăng xuất" in client.get("/").text


def test_the_choice_of_language_outlives_the_login(make_app: Any) -> None:
    client = make_app(language="vi").test_client()
    client.get("/language/en")
    assert "Operator" in client.get("/login").text
    assert login(client).status_code == 302
    assert "Log out" in client.get("/").text


def test_refusal_reasons_are_words_in_the_operators_language(make_app: Any) -> None:
    page = logged_in(make_app, language="vi").get("/?outcome=deny").text
    cells = re.findall(r'<td title="([a-z_]+)">([^<]*)</td>', page)
    assert cells and set(cells) == {("unknown_credential", "Mã chưa được đăng ký")}
    assert ">unknown_credential<" not in page
    english = logged_in(make_app, language="en").get("/?outcome=deny").text
    assert '<td title="unknown_credential">Code not registered</td>' in english
    assert "<td>denied</td>" in english


def test_the_live_updates_get_their_words_from_the_page(make_app: Any) -> None:
    page = logged_in(make_app, language="vi").get("/").text
    assert 'data-yes="có" data-no="không"' in page
    reasons = re.search(r'data-reasons="([^"]*)"', page)
    assert reasons is not None and "Nhiệt độ cao: vui lòng gặp bảo vệ" in html.unescape(
        reasons.group(1)
    )


# --- 5: emergency open and lockdown are confirmed; the page shows the new state --------


@pytest.mark.parametrize(
    ("path", "call", "question"),
    [
        ("/actions/lockdown", (Action.LOCKDOWN, {"on": True}), "dash.confirm_lockdown"),
        (
            "/actions/emergency-open",
            (Action.EMERGENCY_OPEN, {"on": True}),
            "dash.confirm_emergency_open",
        ),
    ],
)
def test_emergency_open_and_lockdown_ask_first(
    operator: FlaskClient, actions: FakeOperator, path: str, call: Any, question: str
) -> None:
    asked = operator.post(path, data={"on": "1", "csrf_token": csrf(operator)})
    assert asked.status_code == 200
    assert text(question, "en") in asked.text
    assert actions.calls == []  # nothing happened yet
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', asked.text))
    assert form["on"] == "1" and form["confirm"] == "1"
    assert re.search(rf'<form method="post" action="{path}">', asked.text)
    done = operator.post(path, data=form)
    assert done.status_code == 302 and actions.calls == [call]


def test_ending_lockdown_needs_no_confirmation(
    operator: FlaskClient, actions: FakeOperator
) -> None:
    operator.post("/actions/lockdown", data={"on": "0", "csrf_token": csrf(operator)})
    assert actions.calls == [(Action.LOCKDOWN, {"on": False})]


def test_after_lockdown_the_page_shows_it_on(operator: FlaskClient) -> None:
    form = {"on": "1", "confirm": "1", "csrf_token": csrf(operator)}
    page = operator.post("/actions/lockdown", data=form, follow_redirects=True).text
    assert "Entrance closed" in page
    assert (
        '<span data-on="gate.lockdown" class="bad">lockdown: <span data-k="gate.lockdown">yes'
        in page
    )


# --- 6: people inside ------------------------------------------------------------------


def test_the_dashboard_shows_people_inside_where_counted(make_app: Any, status: FakeStatus) -> None:
    client = logged_in(make_app)
    assert 'id="inside"' not in client.get("/").text  # screen and checkin kiosks: no count
    status.document["occupancy"] = {"area": "main", "inside": 12}
    page = client.get("/").text
    assert '<span data-k="occupancy.inside">12</span>' in page and "People inside" in page


# --- 7: actions name the login that took them ------------------------------------------


def test_the_login_needs_an_operator_name(client: FlaskClient, actions: FakeOperator) -> None:
    token = csrf(client, "/login")
    for name in ("", "a b", "x" * 33, "<script>"):
        refused = client.post(
            "/login", data={"operator": name, "password": PASSWORD, "csrf_token": token}
        )
        assert refused.status_code == 400
        assert "Operator name: 1–32 letters" in refused.text
    assert client.get("/").status_code == 302  # still not logged in


def test_each_action_carries_the_operator_who_took_it(
    operator: FlaskClient, actions: FakeOperator
) -> None:
    operator.post("/actions/test-relay", data={"csrf_token": csrf(operator)})
    assert actions.operators == [OPERATOR]
    assert OPERATOR in operator.get("/").text  # the header says who is logged in
