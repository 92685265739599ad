"""Alembic environment: runs on the connection `service migrate` passes, or on Settings' URL."""

from sqlalchemy import Connection

from alembic import context
from service.db import make_engine
from service.settings import Settings
from service.tables import Base


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = make_engine(Settings().database_url)
    with engine.connect() as new_connection:
        run_migrations(new_connection)
    engine.dispose()
