"""Alembic migrations of the report store, applied by :func:`services.store.database.migrate`
on every open (``upgrade head``); shipped inside the package so an installed Rapport can
create and upgrade its database without an ``alembic.ini``."""
