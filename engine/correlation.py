"""Messages and signals from outside: "contract signed", "payment received", correlated by business key."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import messages
from engine import step
from engine.actor import Actor
from engine.contention import retried
from engine.errors import InvalidInput
from engine.errors import NotFound
from engine.forms import check_variables
from engine.history import Recorder
from engine.models import EventSubscription
from engine.models import ProcessDefinition
from engine.models import ProcessInstance
from engine.runtime import load_workflow
from engine.status import FINAL

ACTIVE = ("running", "waiting", "error")


@dataclass(frozen=True)
class Delivery:
    """Where a message went: the instances that received it, or (started=True) the one it started."""

    instances: list[int]
    started: bool = False


class EventCommands:
    """Mixed into Engine: needs _command, _start, _lock_instance, _specs and _script_engine."""

    @retried
    def correlate_message(self, name: str, *, business_key: str, actor: Actor,
                          payload: dict[str, Any] | None = None) -> Delivery:
        """Deliver message `name` to every instance of deal `business_key` waiting for it, or start one.

        :raises NotFound: nobody waits for it and no process starts with it.
        """
        if not name or not business_key:
            raise InvalidInput("A message needs a name and the business key of the deal it is about.")
        payload = check_variables(payload or {}, what="the message payload")
        with self._command() as (session, now):
            waiting = self._waiting(session, "message", name, business_key)
            if waiting:
                for instance_id in waiting:
                    self._deliver(session, now, instance_id, "message", name, payload, actor)
                return Delivery(waiting)
            loaded = self._message_start(session, name)
            if loaded is None:
                raise NotFound(
                    f"Nobody waits for message {name!r} for business key {business_key!r}: no running instance "
                    "of that deal waits for it and no process starts with it. Check the message's name in the "
                    "diagram (its Name, not its id) and the business key.")
            started = self._start(session, now, loaded, actor, business_key, {},
                                  then=lambda wf: messages.deliver(wf, "message", name, payload))
            return Delivery([started], started=True)

    def broadcast_signal(self, name: str, *, actor: Actor, payload: dict[str, Any] | None = None) -> list[int]:
        """Deliver signal `name` to every instance waiting for it, each in its own transaction."""
        if not name:
            raise InvalidInput("A signal needs a name.")
        payload = check_variables(payload or {}, what="the signal payload")
        with self._sf() as session:
            waiting = self._waiting(session, "signal", name, None)
        delivered = []
        for instance_id in waiting:
            self._signal(instance_id, name, payload, actor)
            delivered.append(instance_id)
        return delivered

    @retried
    def _signal(self, instance_id: int, name: str, payload: dict[str, Any], actor: Actor) -> None:
        with self._command() as (session, now):
            self._deliver(session, now, instance_id, "signal", name, payload, actor)

    def _waiting(self, session: Session, kind: str, name: str, business_key: str | None) -> list[int]:
        query = (select(EventSubscription.instance_id).distinct()
                 .join(ProcessInstance, ProcessInstance.id == EventSubscription.instance_id)
                 .where(EventSubscription.kind == kind, EventSubscription.name == name,
                        ProcessInstance.status.in_(ACTIVE)))
        if business_key is not None:
            query = query.where(ProcessInstance.business_key == business_key)
        return sorted(session.scalars(query))

    def _deliver(self, session: Session, now: datetime, instance_id: int, kind: str, name: str,
                 payload: dict[str, Any], actor: Actor) -> None:
        instance = self._lock_instance(session, instance_id)
        if instance.status in FINAL:
            return
        loaded = self._specs.get(session, instance.definition_id)
        workflow = load_workflow(session, instance.id, loaded, self._script_engine)
        recorder = Recorder(actor.username, now, instance_id)
        recorder.add(f"{kind}_received", name=name, payload=payload)
        outcome = step.run(workflow, lambda: messages.deliver(workflow, kind, name, payload), recorder)
        recorder.records[0].details["path"] = outcome.path
        self._persist(session, instance, workflow, outcome, recorder, now)

    def _message_start(self, session: Session, name: str):
        """The latest definition whose top-level start event is message `name`, if any."""
        latest = select(ProcessDefinition.key, ProcessDefinition.id).order_by(
            ProcessDefinition.key, ProcessDefinition.version.desc())
        seen = set()
        for key, definition_id in session.execute(latest):
            if key in seen:
                continue
            seen.add(key)
            loaded = self._specs.get(session, definition_id)
            for start in loaded.spec.start.outputs:
                definition = getattr(start, "event_definition", None)
                if isinstance(definition, MessageEventDefinition) and definition.name == name:
                    return loaded
        return None
