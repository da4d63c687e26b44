"""The service's dashboard as HTML: a login form, and a user's jobs newest first.

Rendered on the server, whole: the page works with JavaScript off (it has none), and
refreshes itself with a meta refresh while a job is queued or running. Everything that
comes from a job or a user goes through html.escape.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

REFRESH_SECONDS = 5
RUNNING_STATES = ("queued", "ongoing")
# No script at all may run; styles are inline; forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1080px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;width:100%}th,td{padding:6px 10px;border-bottom:1px solid #eee;
vertical-align:top}th{text-align:left;background:#f6f6f6}
td.id{font-family:monospace;white-space:nowrap}td.when{white-space:nowrap}
progress{width:140px;height:14px;display:block}.count{font-size:.85em;color:#555}
.state{font-weight:600}
.completed{color:#1e8449}.failed,.cancelled{color:#c0392b}.interrupted{color:#b9770e}
.ongoing,.queued{color:#2471a3}.codes{font-size:.85em;color:#555}.none{color:#888}
form.login{display:flex;gap:8px;margin-top:1.5em}form.login input{flex:1;padding:6px}
.error{color:#c0392b}.top{display:flex;justify-content:space-between;align-items:center}
"""


def _page(title: str, body: str, *, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def login_page(message: str | None = None) -> str:
    """The form whose password field `token` logs in (POST /login)."""
    error = f'<p class="error" id="login-error">{escape(message)}</p>' if message else ""
    body = (
        "<h1>retailpulse</h1><p class='sub'>Sign in with your API token "
        "(<code>retailpulse token create NAME --role viewer</code> makes one).</p>"
        f"{error}"
        '<form class="login" method="post" action="/login">'
        '<label for="token">Token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" '
        'required autofocus><button type="submit">Sign in</button></form>'
    )
    return _page("retailpulse: sign in", body)


def jobs_page(
    user: str,
    role: str,
    jobs: list[dict[str, Any]],
    *,
    links: Callable[[str], list[tuple[str, str]]],
    note: str = "",
) -> str:
    """The user's jobs newest first; `links(job_id)` gives (label, href) pairs."""
    running = any(j.get("status") in RUNNING_STATES for j in jobs)
    header = (
        '<div class="top"><div><h1>Jobs</h1>'
        f'<p class="sub">{escape(user)} ({escape(role)})'
        f"{' · refreshes every ' + str(REFRESH_SECONDS) + ' s while jobs run' if running else ''}"
        "</p></div>"
        '<form method="post" action="/logout"><button type="submit">Sign out</button></form></div>'
    )
    if not jobs:
        table = '<p class="none" id="no-jobs">No jobs yet.</p>'
    else:
        rows = "".join(_row(j, links) for j in jobs)
        table = (
            '<table id="jobs"><thead><tr><th>job</th><th>created</th><th>status</th>'
            "<th>progress</th><th>failures</th><th>results</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    extra = f'<p class="sub">{escape(note)}</p>' if note else ""
    return _page(
        "retailpulse: jobs", header + table + extra, refresh=REFRESH_SECONDS if running else None
    )


def _row(job: dict[str, Any], links: Callable[[str], list[tuple[str, str]]]) -> str:
    job_id = str(job.get("job_id", ""))
    state = str(job.get("status", ""))
    total, done = _int(job.get("images_total")), _int(job.get("images_done"))
    failed = _int(job.get("images_failed"))
    source = job.get("source")
    title = f' title="{escape(str(source))}"' if source else ""
    counted = f"{done:,}/{total:,} images" + (f", {failed:,} failed" if failed else "")
    progress = (
        f'<progress value="{done}" max="{max(total, 1)}">{done}/{total}</progress>'
        f'<span class="count">{counted}</span>'
    )
    anchors = " ".join(
        f'<a href="{escape(href)}">{escape(label)}</a>' for label, href in links(job_id)
    )
    return (
        f'<tr data-job="{escape(job_id)}"><td class="id"{title}>{escape(job_id)}</td>'
        f'<td class="when">{escape(_when(job.get("created_at")))}</td>'
        f'<td class="state {escape(state)}">{escape(state)}</td>'
        f"<td>{progress}</td><td class='codes'>{_codes(job.get('failures_by_code'))}</td>"
        f"<td>{anchors}</td></tr>"
    )


def _when(text: object) -> str:
    """`2026-12-04T00:42:31.068Z` as `2026-12-04 00:42:31Z`: to the second, one line."""
    if not isinstance(text, str) or not text:
        return "-"
    head, _, _ = text.partition(".")
    return head.replace("T", " ") + ("Z" if text.endswith("Z") and not head.endswith("Z") else "")


def _codes(failures: object) -> str:
    if not isinstance(failures, dict) or not failures:
        return '<span class="none">none</span>'
    ordered = sorted(failures.items(), key=lambda kv: (-_int(kv[1]), str(kv[0])))
    return "<br>".join(f"{escape(str(code))} x{_int(n):,}" for code, n in ordered)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
