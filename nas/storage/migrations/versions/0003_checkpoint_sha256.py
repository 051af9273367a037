"""Evaluations name the checkpoint they were measured with by what it holds: the column
``checkpoint`` (a sha256) becomes ``checkpoint_sha256``, the name the code, the model card
and the CLI use (#20: one name per concept). Values and the unique key are unchanged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a native rename on both back ends (SQLite >= 3.25, PostgreSQL): the unique constraint
    # follows the column, and no table is rebuilt (a batch rebuild would drop SQLite's
    # unreflected CHECK constraints)
    op.execute("ALTER TABLE evaluations RENAME COLUMN checkpoint TO checkpoint_sha256")


def downgrade() -> None:
    op.execute("ALTER TABLE evaluations RENAME COLUMN checkpoint_sha256 TO checkpoint")
