"""`--results-db URL`: which URLs are accepted, how they are shown and how they are kept.

SQLAlchemy's URL form: `sqlite:///relative.db` (relative to the current folder, made
absolute here so a resume from another folder finds the same file), `sqlite:////abs.db`,
`postgresql://user@host:port/db` (psycopg 3, the `postgres` extra). A password in the URL
is used to connect and nothing else: messages show the URL redacted, and a job keeps it
without the password (PGPASSWORD or ~/.pgpass supply it again on resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from retailpulse_cli.text.redaction import redact

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

POSTGRES_EXTRA_HINT = "pip install 'retailpulse[postgres]'"
_FORMS = "use sqlite:///FILE or postgresql://USER@HOST:PORT/DB"


def parsed(text: str) -> URL:
    """The URL for SQLAlchemy (postgresql goes through psycopg 3); ValueError if unusable."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text.strip())
    except (ArgumentError, ValueError):
        raise ValueError(f"not a database URL: {_FORMS}") from None
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite":
        if driver not in ("pysqlite", "") or url.database in (None, "", ":memory:"):
            raise ValueError(f"SQLite needs a file: {_FORMS}")
        return url
    if backend == "postgresql":
        if "+" in url.drivername and driver != "psycopg":
            raise ValueError("PostgreSQL goes through psycopg 3: write postgresql://...")
        return url.set(drivername="postgresql+psycopg")
    raise ValueError(f"{backend} is not supported: {_FORMS}")


def normalized(text: str) -> str:
    """The URL as the option keeps it: checked, and a relative SQLite file made absolute."""
    url = parsed(text)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database)).expanduser()
        url = url.set(drivername="sqlite", database=str(path.absolute()))
    else:
        url = url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def without_password(text: str) -> str:
    """The URL a job keeps in meta.json: usable again, with no password in it."""
    try:
        url = parsed(text)
    except ValueError:
        return redact(text)
    if url.password is None:
        return text
    plain = url._replace(password=None)  # URL.set() takes None as "leave as is"
    if url.get_backend_name() == "postgresql":
        plain = plain.set(drivername="postgresql")
    return plain.render_as_string(hide_password=False)


def shown(text: str) -> str:
    """The URL in a message: no user information at all."""
    return redact(text)
