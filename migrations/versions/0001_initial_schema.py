"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 16:25:03.843357
"""
import sqlalchemy as sa
from alembic import op

import engine.db


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('app_group',
    sa.Column('name', sa.String(length=150), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_app_group'))
    )
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user')),
    sa.UniqueConstraint('username', name=op.f('uq_app_user_username'))
    )
    op.create_table('audit_event',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=150), nullable=False),
    sa.Column('event', sa.String(length=50), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.Column('task_id', sa.String(length=36), nullable=True),
    sa.Column('element_id', sa.String(length=255), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_instance_id'), ['instance_id'], unique=False)

    audit_head = op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    # The chain's head row exists from the start, so appenders only ever lock it, never race to create it.
    op.bulk_insert(audit_head, [{'id': 1, 'last_seq': 0, 'last_hash': '0' * 64}])
    op.create_table('deployment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deployed_at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('deployed_by', sa.String(length=150), nullable=False),
    sa.Column('file_names', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployment'))
    )
    op.create_table('group_member',
    sa.Column('group_name', sa.String(length=150), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_name'], ['app_group.name'], name=op.f('fk_group_member_group_name_app_group')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_group_member_user_id_app_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_name', 'user_id', name=op.f('pk_group_member'))
    )
    op.create_table('process_definition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('resource_name', sa.String(length=255), nullable=False),
    sa.Column('bpmn_xml', sa.Text(), nullable=False),
    sa.Column('xml_sha256', sa.String(length=64), nullable=False),
    sa.Column('spec_json', sa.Text(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=False),
    sa.Column('deployed_at', engine.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployment.id'], name=op.f('fk_process_definition_deployment_id_deployment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_process_definition')),
    sa.UniqueConstraint('key', 'version', name='uq_process_definition_key_version')
    )
    with op.batch_alter_table('process_definition', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_process_definition_key'), ['key'], unique=False)

    op.create_table('process_instance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('definition_id', sa.Integer(), nullable=False),
    sa.Column('process_key', sa.String(length=255), nullable=False),
    sa.Column('business_key', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('state_json', sa.Text(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('started_at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('started_by', sa.String(length=150), nullable=False),
    sa.Column('updated_at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', engine.db.UTCDateTime(), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['definition_id'], ['process_definition.id'], name=op.f('fk_process_instance_definition_id_process_definition')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_process_instance'))
    )
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_process_instance_business_key'), ['business_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_process_instance_definition_id'), ['definition_id'], unique=False)
        batch_op.create_index('ix_process_instance_status_key', ['status', 'process_key'], unique=False)

    op.create_table('human_task',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('process_key', sa.String(length=255), nullable=False),
    sa.Column('business_key', sa.String(length=255), nullable=True),
    sa.Column('bpmn_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('lane', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assignee', sa.String(length=150), nullable=True),
    sa.Column('candidate_groups', sa.JSON(), nullable=False),
    sa.Column('candidate_users', sa.JSON(), nullable=False),
    sa.Column('form', sa.JSON(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('due_at', engine.db.UTCDateTime(), nullable=True),
    sa.Column('follow_up_at', engine.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('claimed_at', engine.db.UTCDateTime(), nullable=True),
    sa.Column('completed_at', engine.db.UTCDateTime(), nullable=True),
    sa.Column('completed_by', sa.String(length=150), nullable=True),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'], name=op.f('fk_human_task_instance_id_process_instance')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_human_task'))
    )
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_human_task_business_key'), ['business_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_human_task_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index('ix_human_task_status_assignee', ['status', 'assignee'], unique=False)
        batch_op.create_index('ix_human_task_status_due', ['status', 'due_at'], unique=False)

    op.create_table('task_candidate',
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=5), nullable=False),
    sa.Column('name', sa.String(length=150), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['human_task.id'], name=op.f('fk_task_candidate_task_id_human_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', 'kind', 'name', name=op.f('pk_task_candidate'))
    )
    with op.batch_alter_table('task_candidate', schema=None) as batch_op:
        batch_op.create_index('ix_task_candidate_kind_name', ['kind', 'name'], unique=False)



def downgrade():
    with op.batch_alter_table('task_candidate', schema=None) as batch_op:
        batch_op.drop_index('ix_task_candidate_kind_name')

    op.drop_table('task_candidate')
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.drop_index('ix_human_task_status_due')
        batch_op.drop_index('ix_human_task_status_assignee')
        batch_op.drop_index(batch_op.f('ix_human_task_instance_id'))
        batch_op.drop_index(batch_op.f('ix_human_task_business_key'))

    op.drop_table('human_task')
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.drop_index('ix_process_instance_status_key')
        batch_op.drop_index(batch_op.f('ix_process_instance_definition_id'))
        batch_op.drop_index(batch_op.f('ix_process_instance_business_key'))

    op.drop_table('process_instance')
    with op.batch_alter_table('process_definition', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_process_definition_key'))

    op.drop_table('process_definition')
    op.drop_table('group_member')
    op.drop_table('deployment')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_instance_id'))

    op.drop_table('audit_event')
    op.drop_table('app_user')
    op.drop_table('app_group')
    # ### end Alembic commands ###
