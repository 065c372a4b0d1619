"""jobs for timers and reminders, event subscriptions for messages and signals, notifications

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 16:59:37.111997
"""
import sqlalchemy as sa
from alembic import op

import engine.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('element_id', sa.String(length=255), nullable=False),
    sa.Column('due_at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('locked_by', sa.String(length=100), nullable=True),
    sa.Column('locked_until', engine.db.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'], name=op.f('fk_job_instance_id_process_instance')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job')),
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_due_at', ['due_at'], unique=False)
        batch_op.create_index('ix_job_instance_task', ['instance_id', 'task_id'], unique=False)



    op.create_table('event_subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('element_id', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'], name=op.f('fk_event_subscription_instance_id_process_instance')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_subscription'))
    )
    with op.batch_alter_table('event_subscription', schema=None) as batch_op:
        batch_op.create_index('ix_event_subscription_kind_name', ['kind', 'name'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_subscription_instance_id'), ['instance_id'], unique=False)

    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('recipient_user', sa.String(length=150), nullable=True),
    sa.Column('recipient_group', sa.String(length=150), nullable=True),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('task_id', sa.String(length=36), nullable=True),
    sa.Column('business_key', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_group', ['recipient_group'], unique=False)
        batch_op.create_index('ix_notification_user', ['recipient_user'], unique=False)

    op.create_table('notification_read',
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('read_at', engine.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], name=op.f('fk_notification_read_notification_id_notification'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('notification_id', 'username', name=op.f('pk_notification_read'))
    )


def downgrade():
    op.drop_table('notification_read')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_user')
        batch_op.drop_index('ix_notification_group')

    op.drop_table('notification')

    with op.batch_alter_table('event_subscription', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_subscription_instance_id'))
        batch_op.drop_index('ix_event_subscription_kind_name')

    op.drop_table('event_subscription')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_instance_task')
        batch_op.drop_index('ix_job_due_at')

    op.drop_table('job')
