"""an instance's state as a head and one row per task: a command writes only the tasks it changed

The whole state used to be one text on process_instance.state_json ("dealflow-state-1"). It becomes its head
("dealflow-state-2": the same document without any "tasks") and one row per task in instance_task_state, whose
body is exactly the task's entry of the old document. Nothing is lost either way: downgrade puts the tasks back.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 12:00:00
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_INSTANCE = sa.table('process_instance', sa.column('id', sa.Integer), sa.column('state_json', sa.Text))
_ROWS = sa.table('instance_task_state', sa.column('instance_id', sa.Integer), sa.column('id', sa.String),
                 sa.column('workflow', sa.String), sa.column('seq', sa.Integer), sa.column('body', sa.Text))
_BATCH = 200


def upgrade():
    op.create_table(
        'instance_task_state',
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('workflow', sa.String(length=36), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['process_instance.id'],
                                name=op.f('fk_instance_task_state_instance_id_process_instance'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('instance_id', 'id', name=op.f('pk_instance_task_state')),
    )
    _convert(split)


def downgrade():
    _convert(join)
    op.drop_table('instance_task_state')


def _convert(change):
    """Apply `change(connection, instance id, state text)` to every instance, a batch of ids at a time."""
    connection = op.get_bind()
    last = 0
    while True:
        batch = connection.execute(sa.select(_INSTANCE.c.id, _INSTANCE.c.state_json)
                                   .where(_INSTANCE.c.id > last).order_by(_INSTANCE.c.id).limit(_BATCH)).all()
        if not batch:
            return
        for instance_id, text in batch:
            change(connection, instance_id, text)
        last = batch[-1][0]


def split(connection, instance_id, text):
    try:
        state = json.loads(text)
    except ValueError:
        return  # not a state (a row written by hand): left as it is, and the engine names it when it loads it
    if not isinstance(state, dict) or state.get('format') != 'dealflow-state-1':
        return
    rows = [{'instance_id': instance_id, 'id': task_id, 'workflow': '', 'seq': 0, 'body': _text(task)}
            for task_id, task in state.pop('tasks').items()]
    for sub_id, sub in state.get('subprocesses', {}).items():
        rows.extend({'instance_id': instance_id, 'id': task_id, 'workflow': sub_id, 'seq': 0, 'body': _text(task)}
                    for task_id, task in sub.pop('tasks').items())
    for seq, row in enumerate(rows):
        row['seq'] = seq
    if rows:
        connection.execute(_ROWS.insert(), rows)
    state['format'] = 'dealflow-state-2'
    connection.execute(_INSTANCE.update().where(_INSTANCE.c.id == instance_id).values(state_json=_text(state)))


def join(connection, instance_id, text):
    try:
        state = json.loads(text)
    except ValueError:
        return
    if not isinstance(state, dict) or state.get('format') != 'dealflow-state-2':
        return
    rows = connection.execute(sa.select(_ROWS.c.id, _ROWS.c.workflow, _ROWS.c.body)
                              .where(_ROWS.c.instance_id == instance_id).order_by(_ROWS.c.seq)).all()
    tasks = {'': {}} | {sub_id: {} for sub_id in state.get('subprocesses', {})}
    for task_id, workflow, body in rows:
        tasks.setdefault(workflow, {})[task_id] = json.loads(body)
    for sub_id, sub in state.get('subprocesses', {}).items():
        sub['tasks'] = tasks[sub_id]
    state['tasks'] = tasks['']
    state['format'] = 'dealflow-state-1'
    connection.execute(_INSTANCE.update().where(_INSTANCE.c.id == instance_id).values(state_json=_text(state)))


def _text(value):
    return json.dumps(value, separators=(',', ':'))
