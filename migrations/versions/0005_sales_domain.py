"""sales domain: clients, contacts, deals, stage transitions, lead assignment, absent users

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:58:02.017885
"""
import sqlalchemy as sa
from alembic import op

import engine.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('assignment_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team', sa.String(length=150), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=20), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('assignee', sa.String(length=150), nullable=True),
    sa.Column('group_name', sa.String(length=150), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment_rule'))
    )
    with op.batch_alter_table('assignment_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignment_rule_team'), ['team'], unique=False)

    op.create_table('client',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('name_key', sa.String(length=255), nullable=False),
    sa.Column('legal_form', sa.String(length=20), nullable=False),
    sa.Column('inn', sa.String(length=12), nullable=True),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client'))
    )
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_inn'), ['inn'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_name_key'), ['name_key'], unique=False)

    op.create_table('team_settings',
    sa.Column('group_name', sa.String(length=150), nullable=False),
    sa.Column('strategy', sa.String(length=30), nullable=False),
    sa.Column('last_assigned', sa.String(length=150), nullable=True),
    sa.Column('updated_at', engine.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('group_name', name=op.f('pk_team_settings'))
    )
    op.create_table('contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], name=op.f('fk_contact_client_id_client')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact'))
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_phone'), ['phone'], unique=False)

    op.create_table('deal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('owner', sa.String(length=150), nullable=True),
    sa.Column('stage', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('lost_reason', sa.String(length=100), nullable=True),
    sa.Column('lost_comment', sa.Text(), nullable=True),
    sa.Column('channel', sa.String(length=30), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('expected_close_date', sa.Date(), nullable=True),
    sa.Column('created_at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('closed_at', engine.db.UTCDateTime(), nullable=True),
    sa.Column('instance_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['client.id'], name=op.f('fk_deal_client_id_client')),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], name=op.f('fk_deal_contact_id_contact')),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'],
                            name=op.f('fk_deal_instance_id_process_instance')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deal'))
    )
    with op.batch_alter_table('deal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deal_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deal_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deal_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_deal_status'), ['status'], unique=False)

    op.create_table('deal_line_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=14, scale=3), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], name=op.f('fk_deal_line_item_deal_id_deal'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deal_line_item'))
    )
    with op.batch_alter_table('deal_line_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deal_line_item_deal_id'), ['deal_id'], unique=False)

    op.create_table('stage_transition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('from_stage', sa.String(length=100), nullable=True),
    sa.Column('to_stage', sa.String(length=100), nullable=False),
    sa.Column('at', engine.db.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=150), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], name=op.f('fk_stage_transition_deal_id_deal')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_transition'))
    )
    with op.batch_alter_table('stage_transition', schema=None) as batch_op:
        batch_op.create_index('ix_stage_transition_deal_at', ['deal_id', 'at'], unique=False)
        batch_op.create_index('ix_stage_transition_to_stage_at', ['to_stage', 'at'], unique=False)

    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('absent', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade():
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_column('absent')

    with op.batch_alter_table('stage_transition', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_transition_to_stage_at')
        batch_op.drop_index('ix_stage_transition_deal_at')

    op.drop_table('stage_transition')
    with op.batch_alter_table('deal_line_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deal_line_item_deal_id'))

    op.drop_table('deal_line_item')
    with op.batch_alter_table('deal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deal_status'))
        batch_op.drop_index(batch_op.f('ix_deal_owner'))
        batch_op.drop_index(batch_op.f('ix_deal_instance_id'))
        batch_op.drop_index(batch_op.f('ix_deal_client_id'))

    op.drop_table('deal')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_phone'))
        batch_op.drop_index(batch_op.f('ix_contact_email'))
        batch_op.drop_index(batch_op.f('ix_contact_client_id'))

    op.drop_table('contact')
    op.drop_table('team_settings')
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_name_key'))
        batch_op.drop_index(batch_op.f('ix_client_inn'))

    op.drop_table('client')
    with op.batch_alter_table('assignment_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignment_rule_team'))

    op.drop_table('assignment_rule')
