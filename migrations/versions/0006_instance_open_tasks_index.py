"""an instance's open tasks in order from one index: (instance_id, status, created_at, id) replaces (instance_id)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 00:10:00
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.create_index('ix_human_task_instance_status_created', ['instance_id', 'status', 'created_at', 'id'],
                              unique=False)
        batch_op.drop_index(batch_op.f('ix_human_task_instance_id'))


def downgrade():
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_human_task_instance_id'), ['instance_id'], unique=False)
        batch_op.drop_index('ix_human_task_instance_status_created')
