"""the inbox sorted by priority walks an index: (status, priority DESC, created_at, id)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 04:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_human_task_status_priority', 'human_task',
                    ['status', sa.text('priority DESC'), 'created_at', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_human_task_status_priority', table_name='human_task')
