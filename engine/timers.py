"""Timer event definitions that read the engine's clock instead of the wall clock.

SpiffWorkflow's own timers call datetime.now() inside the library, so neither a test clock nor the sweep's
`now` would reach them. These subclasses take the time from the workflow's script environment (the engine's
clock) and otherwise behave like the originals; the parser creates them and the serializer knows them.
"""

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import DurationTimerEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimeDateEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition as Base
from SpiffWorkflow.task import Task as SpiffTask


def now_of(my_task: SpiffTask) -> datetime:
    clock = getattr(getattr(my_task.workflow.script_engine, "environment", None), "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def _as_text(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


class TimeDateTimer(TimeDateEventDefinition):
    def has_fired(self, my_task):
        value = my_task._get_internal_data("event_value")
        if value is None:
            value = _as_text(my_task.workflow.script_engine.evaluate(my_task, self.expression))
            my_task._set_internal_data(event_value=value)
        if Base.parse_time_or_duration(value) <= now_of(my_task):
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


class DurationTimer(DurationTimerEventDefinition):
    def has_fired(self, my_task):
        value = my_task._get_internal_data("event_value")
        now = now_of(my_task)
        if value is None:
            parsed = Base.parse_iso_duration(my_task.workflow.script_engine.evaluate(my_task, self.expression))
            value = (now + Base.get_timedelta_from_start(parsed, now)).isoformat()
            my_task._set_internal_data(event_value=value)
        if Base.get_datetime(value) <= now:
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


def _recurring(expression: str, now: datetime) -> tuple[int, datetime, timedelta]:
    """(cycles, first time, interval) of an ISO repeating interval; a bare R/duration starts from `now`."""
    parts = expression.upper().replace("--", "/").strip("R").split("/")
    if len(parts) == 2 and parts[1].startswith("P"):
        cycles = int(parts[0]) if parts[0] else -1
        interval = Base.get_timedelta_from_start(Base.parse_iso_duration(parts[1]), now)
        return cycles, now + interval, interval
    return Base.parse_iso_recurring_interval(expression)


class CycleTimer(CycleTimerEventDefinition):
    def cycle_complete(self, my_task):
        value = my_task._get_internal_data("event_value")
        now = now_of(my_task)
        if value is None:
            cycles, start, interval = _recurring(
                my_task.workflow.script_engine.evaluate(my_task, self.expression), now)
            value = {"cycles": cycles, "next": start.isoformat(), "duration": interval.total_seconds()}
        ready = False
        if value["cycles"] != 0:
            upcoming = datetime.fromisoformat(value["next"])
            if upcoming <= now:
                value["next"] = (upcoming + timedelta(seconds=value["duration"])).isoformat()
                value["cycles"] -= 1
                ready = True
        else:
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True
        my_task._set_internal_data(event_value=value)
        return ready


CLOCKED = {TimeDateEventDefinition: TimeDateTimer, DurationTimerEventDefinition: DurationTimer,
           CycleTimerEventDefinition: CycleTimer}


def clocked(definition: Base) -> Base:
    """The clock-aware twin of a parsed SpiffWorkflow timer definition."""
    return CLOCKED[type(definition)](definition.name, definition.expression, description=definition.description)
