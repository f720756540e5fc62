"""Storage: SQLAlchemy models, engines and the repositories that hold every SQL statement."""
