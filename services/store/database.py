"""Database plumbing of the report store: engines, migrations, transactions, error wrapping.

The URL comes from settings (explicit argument > ``RAPPORT_DB_URL`` > a SQLite file in the
data directory; services/settings.py). SQLite files are created with their directory and run
in WAL mode so the API can read while a consumer writes; PostgreSQL is reached through
psycopg 3 (``postgresql://`` URLs are read as ``postgresql+psycopg://``). Opening applies
every Alembic migration shipped in ``migrations/`` (``upgrade head``), under an advisory lock
on PostgreSQL so that two processes opening an empty database at once do not race.

Every SQLAlchemy or Alembic failure leaves the store as a :class:`StoreError` (one wrapping,
here, at the edge), so callers handle one exception from the project's tree (models/errors.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, insert, inspect, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models.errors import RapportError
from services.store.schema import Base

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x5241_5050  # "RAPP": pg_advisory_xact_lock key for migrations
SQLITE_BUSY_TIMEOUT_MS = 10_000


class StoreError(RapportError):
    """The report database failed (unreachable, locked, misconfigured, migration failed)."""


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600) before SQLite does with the
    umask's 0644: it holds a clinic's reports. SQLite gives its -wal and -shm files the
    database file's permissions. An existing file keeps the permissions it has."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; creates a SQLite file's directory. Raises :class:`StoreError`."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                path = Path(database).expanduser()
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _create_private(path)
            engine = create_engine(parsed, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, SQLAlchemyError, ImportError, OSError) as error:
        raise StoreError(f"cannot use database {redact(url)}: {error}") from error
    return engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (``alembic upgrade head``)."""
    config = alembic_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except (SQLAlchemyError, RapportError) as error:
        raise StoreError(f"cannot migrate {redact(str(engine.url))}: {error}") from error
    except Exception as error:  # Alembic raises its own CommandError and others
        if type(error).__module__.startswith("alembic"):
            raise StoreError(f"cannot migrate {redact(str(engine.url))}: {error}") from error
        raise
    log.info("report store at %s is at the newest schema", redact(str(engine.url)))


class Database:
    """An engine, its session factory and the error boundary every store module uses."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.engine = create_db_engine(url)
        self.url = redact(str(self.engine.url))
        if migrate_schema:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, what: str) -> Iterator[Session]:
        """An ORM session committed at the end; any database error becomes a StoreError
        naming ``what`` was being done."""
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as error:
            # The first line names the failure; the rest (SQL, parameters) may be long.
            reason = (str(error).splitlines() or [error.__class__.__name__])[0][:500]
            log.warning("report store: %s failed: %s", what, reason)
            raise StoreError(f"{what}: {reason}") from error

    def insert_ignoring_duplicates(
        self, session: Session, table: type[Base], rows: Sequence[dict[str, Any]]
    ) -> int:
        """Insert ``rows``, skipping any whose primary or unique key already exists; return
        how many were inserted (``INSERT … ON CONFLICT DO NOTHING`` on SQLite/PostgreSQL)."""
        if not rows:
            return 0
        # RETURNING counts what was inserted on both backends (rowcount does not survive
        # psycopg's executemany); Core execution, as the ORM bulk path returns no rows.
        connection = session.connection()
        keys = list(inspect(table).primary_key)
        if self.dialect in ("postgresql", "sqlite"):
            upsert = pg_insert if self.dialect == "postgresql" else sqlite_insert
            statement = upsert(table).on_conflict_do_nothing().returning(*keys)
            result = connection.execute(statement, list(rows))
            return len(result.all())
        inserted = 0  # other backends: one savepoint per row
        for row in rows:
            try:
                with session.begin_nested():
                    connection.execute(insert(table), [row])
                inserted += 1
            except IntegrityError:
                pass
        return inserted

    def drop_all(self) -> None:
        """Drop every table including Alembic's version table (tests and resets only)."""
        try:
            with self.engine.begin() as connection:
                Base.metadata.drop_all(connection)
                connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        except SQLAlchemyError as error:
            raise StoreError(f"drop tables: {error}") from error

    def close(self) -> None:
        self.engine.dispose()

