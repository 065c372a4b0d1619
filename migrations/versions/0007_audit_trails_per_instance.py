"""the audit log as trails: one per process instance, headed by its row, and the log's own (audit_head)

Commands on different instances no longer wait for one head row: each instance's events are chained on the
instance's own trail. Events written before are the start of the log's own trail (trail 0), at their position
`seq`, so they verify as they were hashed. `seq` is now assigned by the database.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trail', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('trail_seq', sa.Integer(), nullable=True))
    op.execute("UPDATE audit_event SET trail = 0, trail_seq = seq")
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.alter_column('trail', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('trail_seq', existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_event_trail'), ['trail', 'trail_seq'])
    if op.get_bind().dialect.name == 'postgresql':
        # What SERIAL would have made, starting after the events already written (SQLite's INTEGER PRIMARY KEY
        # already takes the next rowid).
        op.execute("CREATE SEQUENCE audit_event_seq_seq OWNED BY audit_event.seq")
        op.execute("SELECT setval('audit_event_seq_seq', COALESCE((SELECT max(seq) FROM audit_event), 0) + 1, false)")
        op.execute("ALTER TABLE audit_event ALTER COLUMN seq SET DEFAULT nextval('audit_event_seq_seq')")
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audit_seq', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('audit_hash', sa.String(length=64), server_default='0' * 64, nullable=False))


def downgrade():
    # Only an empty log goes back to one chain: instance trails cannot be re-hashed into it.
    if op.get_bind().execute(sa.text("SELECT count(*) FROM audit_event WHERE trail <> 0")).scalar():
        raise RuntimeError("The audit log has instance trails; downgrading would break its hashes.")
    with op.batch_alter_table('process_instance', schema=None) as batch_op:
        batch_op.drop_column('audit_hash')
        batch_op.drop_column('audit_seq')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE audit_event ALTER COLUMN seq DROP DEFAULT")
        op.execute("DROP SEQUENCE audit_event_seq_seq")
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_event_trail'), type_='unique')
        batch_op.drop_column('trail_seq')
        batch_op.drop_column('trail')
