"""The small HTML pages behind signed action links: confirm, done, and refusals.

A link is opened with GET and acted on with POST to the same URL. GET must change nothing:
chat and mail clients, link scanners and previews fetch every link they see, so the GET page
only says what the link would do and offers one button. The button POSTs a form whose hidden
field `csrf` carries an HMAC of the link token (`csrf_token`); the POST handler checks it with
`csrf_ok` before acting, so a bare POST to a link URL (a scanner replaying it, a form on
another site) does nothing.

Why no cookies and no SameSite: the authority to act is the signed token in the URL, not any
state the browser holds, so a cross-site request has nothing ambient to ride on and there is
no cookie for SameSite to protect. If a session cookie is ever added to these pages, make it
`SameSite=Strict; Secure; HttpOnly`. The POST handler should also refuse an `Origin` header
that is not pagerd's own (`origin_ok`); `Referrer-Policy: same-origin` keeps the browser
sending the real origin on our own form while never sending the tokenised URL to another site
(a runbook link on the page, say).

Every page is self-contained (inline CSS, no script, no images) and is served with
`HEADERS`. The functions are pure: the routes, the store and the single-use check live in the
daemon.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlsplit

from pagerd.links import LinkClaims

CSRF_FIELD = "csrf"
_CSRF_DOMAIN = b"pagerd-link-csrf\x00"

_VERB = {"ack": "Acknowledge", "resolve": "Resolve", "escalate": "Escalate", "view": "View"}
_DONE = {"ack": "acknowledged", "resolve": "resolved", "escalate": "escalated",
         "view": "shown"}
_CONSEQUENCE = {
    "ack": "Escalation stops and the others paged for it are told you have it.",
    "resolve": "The incident is closed and its escalation stops.",
    "escalate": "The next step of the escalation policy is paged now.",
}

# (HTTP status, heading, explanation) per refusal; the keys are LinkError reasons and the
# daemon's own: "used" (the nonce was already spent) and "csrf" (the form did not check).
_ERRORS: dict[str, tuple[int, str, str]] = {
    "malformed": (400, "This link is incomplete",
                  "Part of the link seems to be missing. Copy the whole link from the message "
                  "and try again, or act on the incident in pagerd."),
    "unknown_key": (403, "This link is not valid",
                    "pagerd cannot vouch for this link: it was changed, it was not issued by "
                    "pagerd, or it was signed with a key that has since been retired."),
    "bad_signature": (403, "This link is not valid",
                      "pagerd cannot vouch for this link: it was changed or it was not issued "
                      "by pagerd. Nothing was done."),
    "expired": (410, "This link has expired",
                "Action links work for a limited time. Use the link in a newer message, reply "
                "to the text message, or act on the incident in pagerd."),
    "used": (409, "This link has already been used",
             "Each action link works once, and this one has done its job. Nothing more was "
             "done. Check the incident in pagerd to see its state."),
    "csrf": (403, "The form could not be checked",
             "The button's form did not come from this page. Open the link again and press "
             "the button there. Nothing was done."),
}
_UNKNOWN_ERROR = (400, "This link cannot be used", "Nothing was done.")

_STYLE = (
    "body{font:1.125rem/1.5 system-ui,sans-serif;margin:0;padding:1.5rem;color:#1a1a1a;"
    "background:#fff}main{max-width:34rem;margin:auto}h1{font-size:1.5rem;line-height:1.25}"
    ".summary{padding:.75rem 1rem;border-left:.25rem solid #1a1a1a;background:#f2f2f2}"
    "button{font:inherit;padding:.75rem 1.5rem;border:0;border-radius:.25rem;"
    "color:#fff;background:#1f4fbf;cursor:pointer}"
    "button:focus-visible{outline:.2rem solid #1a1a1a;outline-offset:.2rem}"
    ".small{font-size:1rem;color:#4d4d4d}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

HEADERS: Mapping[str, str] = {
    "Content-Type": "text/html; charset=utf-8",
    # The page carries the CSRF value and incident details: keep it out of every cache.
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}


def csrf_token(key: bytes, link_token: str) -> str:
    """The hidden form value for `link_token`: an HMAC under `key`, base64url."""
    mac = hmac.new(key, _CSRF_DOMAIN + link_token.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def csrf_ok(key: bytes, link_token: str, presented: str | None) -> bool:
    """Whether a POSTed form value belongs to `link_token` (constant time)."""
    if not presented:
        return False
    return hmac.compare_digest(csrf_token(key, link_token).encode(), presented.encode())


def origin_ok(origin: str | None, external_url: str) -> bool:
    """Whether a POST's `Origin` header allows it: absent, or pagerd's own origin."""
    if origin is None:
        # Old clients and some privacy settings send none; the CSRF field still guards.
        return True
    ours = urlsplit(external_url)
    theirs = urlsplit(origin)
    return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)


def status_for(reason: str) -> int:
    """The HTTP status to serve `error_page(reason)` with (always a 4xx)."""
    return _ERRORS.get(reason, _UNKNOWN_ERROR)[0]


def confirm_page(claims: LinkClaims, incident_summary: str, csrf_token: str) -> str:
    """The GET page: what the link would do, and a button that POSTs it. Changes nothing."""
    verb = _VERB[claims.action]
    title = f"{verb} incident #{claims.incident_id}?"
    if claims.action == "view":
        # Viewing needs no confirmation, so there is nothing to post.
        return _page(f"Incident #{claims.incident_id}", _summary(incident_summary))
    body = (
        _summary(incident_summary)
        + f"<p>{escape(_CONSEQUENCE[claims.action])}</p>"
        + f"<p>You are acting as <strong>{escape(claims.user)}</strong>.</p>"
        # No action attribute: the form posts back to this same link URL.
        + '<form method="post">'
        + f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token)}">'
        + f'<button type="submit">{verb} incident #{claims.incident_id}</button>'
        + "</form>"
        + '<p class="small">Opening this page changed nothing. The link works once, until '
        + f"{escape(_when(claims.expires_at))}.</p>"
    )
    return _page(title, body)


def done_page(claims: LinkClaims, incident_summary: str, *, note: str = "") -> str:
    """The page after a POST that acted; `note` adds context (e.g. "It was already acked")."""
    heading = f"Incident #{claims.incident_id} {_DONE[claims.action]}"
    body = (
        f'<p role="status">Done by <strong>{escape(claims.user)}</strong>.</p>'
        + (f"<p>{escape(note)}</p>" if note else "")
        + _summary(incident_summary)
    )
    return _page(heading, body)


def error_page(reason: str) -> str:
    """The page for a refused link or form: what happened, in plain words, and what to do."""
    _, heading, text = _ERRORS.get(reason, _UNKNOWN_ERROR)
    return _page(heading, f"<p>{escape(text)}</p>")


def _summary(incident_summary: str) -> str:
    return f'<p class="summary">{escape(incident_summary)}</p>'


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="same-origin">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{escape(title)} - pagerd</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>\n"
    )


def post_allowed(key: bytes, link_token: str, presented: object, origin: str | None,
                 external_url: str) -> bool:
    """Whether a POST from a link's page may act: its CSRF value and its origin check out."""
    return (isinstance(presented, str) and csrf_ok(key, link_token, presented)
            and origin_ok(origin, external_url))
