"""The results store: SQLModel tables in SQLite (default) or PostgreSQL (`HLV_DB_URL`)."""
