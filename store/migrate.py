"""`refundctl migrate`: bring the schema to the newest Alembic revision."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from config.settings import get_settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url)
    return cfg


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=None, help="defaults to DATABASE_URL")


def run(args: argparse.Namespace) -> int:
    url = args.database_url or get_settings().database_url
    upgrade(url)
    print(f"schema up to date at {url.split('@')[-1]}")
    return 0
