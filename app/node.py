"""The objects one node process runs on, built by the lifespan in ``app.main``."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from app.settings import Settings
from app.storage.database import Database
from resolver.engine import Resolver


@dataclass(frozen=True)
class Node:
    settings: Settings
    database: Database
    resolver: Resolver
    pages: jinja2.Environment

    @property
    def operator_token(self) -> str | None:
        token = self.settings.admin_token
        return token.get_secret_value() if token is not None else None
