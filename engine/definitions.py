"""Parsed specs, cached per definition id: definitions are immutable, so an entry never goes stale."""

import threading
from collections import OrderedDict
from dataclasses import dataclass

from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import NotFound
from engine.models import ProcessDefinition
from engine.serialization import specs_from_json
from engine.sql import Prepared


@dataclass(frozen=True)
class LoadedSpec:
    definition_id: int
    key: str
    version: int
    name: str | None
    spec: BpmnProcessSpec
    subprocess_specs: dict[str, BpmnProcessSpec]


class SpecCache:
    """An LRU of restored specs; a miss costs one query and one JSON restore, never a BPMN parse."""

    def __init__(self, maxsize: int = 256):
        self._entries: OrderedDict[int, LoadedSpec] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def get(self, session: Session, definition_id: int) -> LoadedSpec:
        with self._lock:
            hit = self._entries.get(definition_id)
            if hit is not None:
                self._entries.move_to_end(definition_id)
                return hit
        row = session.get(ProcessDefinition, definition_id)
        if row is None:
            raise NotFound(f"Process definition {definition_id} does not exist.")
        spec, subs = specs_from_json(row.spec_json)
        loaded = LoadedSpec(row.id, row.key, row.version, row.name, spec, subs)
        with self._lock:
            self._entries[definition_id] = loaded
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        return loaded


_LATEST_QUERY = (select(ProcessDefinition.id, ProcessDefinition.version)
                 .where(ProcessDefinition.key == bindparam("b_key"))
                 .order_by(ProcessDefinition.version.desc()).limit(1))
_LATEST = Prepared(_LATEST_QUERY)
_VERSION = Prepared(_LATEST_QUERY.where(ProcessDefinition.version == bindparam("b_version")))


def resolve_definition_id(session: Session, key: str, version: int | None) -> int:
    """The id of version `version` of process `key`, or of its latest version."""
    query, params = (_LATEST, {"b_key": key}) if version is None else (_VERSION, {"b_key": key, "b_version": version})
    row = query.first(session, params)
    if row is None:
        which = f"version {version} of " if version is not None else ""
        raise NotFound(f"There is no {which}process {key!r}; deploy it first or check the key.")
    return row["id"]
