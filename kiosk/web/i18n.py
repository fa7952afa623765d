"""The pages' words: the dashboard in the operator's language, the display in both.

Every word comes from :mod:`kiosk.decide.texts`. The dashboard speaks ``WebSettings.language`` until
the operator follows the switch (``/language/<vi|en>``), which this browser's session remembers.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, request, session, url_for
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from kiosk.decide.texts import LANGUAGES, TEXTS, Language, pair, text
from kiosk.web.auth import safe_next
from kiosk.web.context import web_context

bp = Blueprint("i18n", __name__)


def language() -> Language:
    """This request's dashboard language: the session's choice, else the settings' default."""
    chosen = session.get("lang")
    for known in LANGUAGES:
        if chosen == known:
            return known
    return web_context().settings.language


def t(key: str) -> str:
    """The text ``key`` in this request's language."""
    return text(key, language())


def both(key: str) -> Markup:
    """The text ``key`` as the display shows it: Vietnamese, then English in a ``.en`` span."""
    vi, en = pair(key)
    return Markup('{}<span class="en">{}</span>').format(escape(vi), escape(en))


def words(prefix: str) -> dict[str, str]:
    """Every text under ``prefix`` (e.g. ``reason.``) in this request's language, keyed by
    the rest of its key: what dashboard.js needs to turn codes into words."""
    lang = language()
    return {key.removeprefix(prefix): text(key, lang) for key in TEXTS if key.startswith(prefix)}


def template_globals() -> dict[str, Any]:
    """What every template may call: ``t``, ``both``, ``words`` and the language code."""
    return {"t": t, "both": both, "words": words, "lang": language}


@bp.get("/language/<code>")
def switch(code: str) -> Response:
    """Remember ``code`` (vi or en) for this browser, back to ``next`` (default: dashboard)."""
    if code in LANGUAGES:
        session["lang"] = code
    target = safe_next(request.args.get("next"))
    return redirect(target or url_for("dashboard.index"))
