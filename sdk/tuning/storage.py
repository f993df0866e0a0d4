"""The Optuna storage a tune writes to, from its URL: one place for what a bare URL does not give.

- ``postgresql://`` (and ``postgres://``): SQLAlchemy 2 maps it to the psycopg 3 driver; edgekit's extra ``tune``
  installs psycopg2, so the URL is given the ``+psycopg2`` driver unless psycopg 3 is importable.
- Several workers starting on an empty database create Optuna's schema at the same moment; PostgreSQL refuses the
  second ``CREATE TYPE``/``CREATE TABLE`` (a unique violation). The loser retries: by then the schema exists and
  creation is a no-op.
"""

from __future__ import annotations

import random
import time


def storage_url(url: str) -> str:
    """``url`` with an installed PostgreSQL driver named (other URLs unchanged)."""
    scheme, sep, rest = str(url).partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres"):
        return str(url)
    try:
        import psycopg  # noqa: F401  (psycopg 3: SQLAlchemy's default for postgresql://)

        return f"postgresql://{rest}"
    except ImportError:
        return f"postgresql+psycopg2://{rest}"


def open_storage(url: str, attempts: int = 5):
    """An Optuna RDB storage for ``url`` (its schema created on first use, safely when workers race)."""
    import optuna
    import sqlalchemy.exc

    for i in range(attempts):
        try:
            return optuna.storages.RDBStorage(storage_url(url), engine_kwargs=_engine_kwargs(url))
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError):
            if i == attempts - 1:
                raise
            time.sleep(0.2 + random.random() * 0.5)  # the other worker finishes creating the schema meanwhile
    raise AssertionError("unreachable")


def _engine_kwargs(url: str) -> dict:
    # a worker's pool stays small; pre-ping drops connections a restarted server closed
    return {"pool_pre_ping": True} if not str(url).startswith("sqlite") else {}
