"""The ceilings: the bench diagram through SpiffWorkflow alone, in memory and persisting state-only JSON to SQLite.

Both use the stock Camunda parser and serializer configuration, and the same sandboxed script engine as
Dealflow (see run.py for why), so the only difference to the engine is what Dealflow adds around the library.
"""

import json
import sqlite3
from pathlib import Path
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG
from SpiffWorkflow.task import TaskState

from bench.common import DIAGRAM
from bench.common import FORMS
from bench.common import PROCESS_KEY
from bench.common import variables
from engine.database import SQLITE_STORAGE
from engine.registry import StateOnlyWorkflowConverter
from engine.workflow import DealflowWorkflow


def default_serializer() -> BpmnWorkflowSerializer:
    """SpiffWorkflow's default serializer for Camunda diagrams (spec embedded in every document), told that the
    engine's DealflowWorkflow is a BpmnWorkflow (as Dealflow's own registry is)."""
    registry = BpmnWorkflowSerializer.configure(dict(DEFAULT_CONFIG))
    DEFAULT_CONFIG[BpmnWorkflow](DealflowWorkflow, registry, typename=registry.typenames[BpmnWorkflow])
    return BpmnWorkflowSerializer(registry)


class RawSpiff:
    """Runs instances of the bench diagram with nothing but SpiffWorkflow (and sqlite3 for the persisted one)."""

    def __init__(self, script_engine, diagram: Path = DIAGRAM, key: str = PROCESS_KEY):
        parser = CamundaParser()
        parser.add_bpmn_file(str(diagram))
        self.spec = parser.get_spec(key)
        self.subprocess_specs = parser.get_subprocess_specs(key)
        self.script_engine = script_engine
        config = dict(DEFAULT_CONFIG)
        config[BpmnWorkflow] = StateOnlyWorkflowConverter
        self.registry = BpmnWorkflowSerializer.configure(config)

    def new(self, i: int) -> BpmnWorkflow:
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs, script_engine=self.script_engine)
        workflow.task_tree.data.update(variables(i))
        workflow.do_engine_steps()
        return workflow

    def dump(self, workflow: BpmnWorkflow) -> str:
        return json.dumps(self.registry.convert(workflow), separators=(",", ":"))

    def load(self, text: str) -> BpmnWorkflow:
        workflow = self.registry.restore(json.loads(text), spec=self.spec, subprocess_specs=self.subprocess_specs)
        workflow.script_engine = self.script_engine
        return workflow

    @staticmethod
    def next_task_id(workflow: BpmnWorkflow) -> UUID | None:
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        return ready[0].id if ready else None

    @staticmethod
    def complete(workflow: BpmnWorkflow, task_id: UUID) -> None:
        task = workflow.get_task_from_id(task_id)
        task.data.update(FORMS[task.task_spec.bpmn_id])
        task.run()
        workflow.do_engine_steps()

    def run_in_memory(self, count: int, first: int = 0) -> None:
        """Start and finish `count` instances, never leaving memory."""
        for i in range(first, first + count):
            workflow = self.new(i)
            while (task_id := self.next_task_id(workflow)) is not None:
                self.complete(workflow, task_id)
            assert workflow.is_completed()

    def run_persisted(self, conn: sqlite3.Connection, count: int, first: int = 0) -> None:
        """Like run_in_memory, but every step is load-from-SQLite, run, save, commit (one transaction each)."""
        for i in range(first, first + count):
            workflow = self.new(i)
            conn.execute("BEGIN IMMEDIATE")
            instance_id = conn.execute("INSERT INTO instance (state) VALUES (?)", (self.dump(workflow),)).lastrowid
            conn.execute("COMMIT")
            task_id = self.next_task_id(workflow)
            while task_id is not None:
                conn.execute("BEGIN IMMEDIATE")
                (state,) = conn.execute("SELECT state FROM instance WHERE id = ?", (instance_id,)).fetchone()
                workflow = self.load(state)
                self.complete(workflow, task_id)
                conn.execute("UPDATE instance SET state = ? WHERE id = ?", (self.dump(workflow), instance_id))
                conn.execute("COMMIT")
                task_id = self.next_task_id(workflow)
            assert workflow.is_completed()


def open_raw_sqlite(path: Path) -> sqlite3.Connection:
    """A SQLite file tuned like Dealflow's (engine.database.SQLITE_STORAGE: WAL, synchronous=NORMAL, checkpoint
    interval), with one state table."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in SQLITE_STORAGE:
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("CREATE TABLE IF NOT EXISTS instance (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
    return conn
