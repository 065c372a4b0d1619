"""The process catalogue: validate and deploy BPMN files as immutable, versioned process definitions."""

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from engine import audit
from engine.database import begin_write
from engine.errors import Conflict
from engine.errors import DefinitionInvalid
from engine.errors import NotFound
from engine.models import Deployment
from engine.models import ProcessDefinition
from processes.build import BuildResult
from processes.build import BuiltProcess
from processes.build import build
from processes.problems import Problem
from processes.problems import summarize

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
TopicCheck = Callable[[str], bool]


@dataclass(frozen=True)
class DefinitionInfo:
    """One deployed version of a process, without its XML and specs."""

    id: int
    key: str
    version: int
    name: str | None
    resource_name: str
    deployed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The definition as a JSON-able dict (deployed_at in ISO 8601)."""
        return {
            "id": self.id, "key": self.key, "version": self.version, "name": self.name,
            "resource_name": self.resource_name, "deployed_at": self.deployed_at.isoformat(),
        }


@dataclass(frozen=True)
class DeployResult:
    """What a deployment changed: new versions, processes whose bytes were already deployed, the deployment row."""

    created: list[DefinitionInfo]
    unchanged: list[DefinitionInfo]
    deployment_id: int | None


def info(row: ProcessDefinition) -> DefinitionInfo:
    """The DefinitionInfo of a definition row."""
    return DefinitionInfo(row.id, row.key, row.version, row.name, row.resource_name, row.deployed_at)


def latest(session: Session, key: str) -> ProcessDefinition | None:
    """The highest version of a process key, or None."""
    query = select(ProcessDefinition).where(ProcessDefinition.key == key)
    return session.scalars(query.order_by(ProcessDefinition.version.desc()).limit(1)).first()


class _DeployedSpecs:
    """The lookup `build` uses for call activity targets; remembers which definition rows it read."""

    def __init__(self, session: Session):
        self.session = session
        self.used: dict[str, int | None] = {}

    def __call__(self, key: str) -> str | None:
        row = latest(self.session, key)
        self.used[key] = row.id if row else None
        return row.spec_json if row else None

    def still_current(self, session: Session) -> bool:
        """True if every definition read is still the latest of its key (nobody deployed in between)."""
        return all((row.id if (row := latest(session, key)) else None) == used for key, used in self.used.items())


class Catalogue:
    """Validates, deploys, lists and serves process definitions; one write transaction per deployment."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], datetime] | None = None,
                 known_topics: TopicCheck | None = None):
        """`known_topics`: which service-task topics have a handler here (the app's registry); None checks none."""
        self._session_factory = session_factory
        self._clock = clock or (lambda: datetime.now(UTC))
        self._known_topics = known_topics

    def validate(self, files: Sequence[tuple[str, bytes]], max_bytes: int = DEFAULT_MAX_BYTES,
                 known_topics: TopicCheck | None = None) -> list[Problem]:
        """Every problem of a would-be deployment; writes nothing.

        :raises PayloadTooLarge: a file is larger than `max_bytes`.
        """
        known_topics = known_topics or self._known_topics
        with self._session_factory() as session:
            return build(files, max_bytes, known_topics, _DeployedSpecs(session)).problems

    def deploy(self, files: Sequence[tuple[str, bytes]], actor: str, max_bytes: int = DEFAULT_MAX_BYTES,
               known_topics: TopicCheck | None = None) -> DeployResult:
        """Store each changed executable process as its next version, or nothing at all.

        :raises DefinitionInvalid: with `details["problems"]`, when any file has a problem.
        :raises PayloadTooLarge: a file is larger than `max_bytes`.
        :raises Conflict: someone deployed the same process at the same moment.
        """
        files = list(files)
        known_topics = known_topics or self._known_topics
        # Parse outside the write transaction, so SQLite's single writer is not held while lxml works.
        with self._session_factory() as session:
            lookup = _DeployedSpecs(session)
            result = build(files, max_bytes, known_topics, lookup)
        _raise_problems(result)
        try:
            with self._session_factory() as session, session.begin():
                begin_write(session)
                if not lookup.still_current(session):
                    result = build(files, max_bytes, known_topics, _DeployedSpecs(session))
                    _raise_problems(result)
                return self._store(session, result.processes, [name for name, _ in files], actor)
        except IntegrityError:
            raise Conflict(
                "A process in this upload was deployed by someone else at the same moment; deploy again.",
                details={"keys": sorted({p.key for p in result.processes})},
            ) from None

    def _store(self, session: Session, built: list[BuiltProcess], file_names: list[str], actor: str) -> DeployResult:
        now = self._clock()
        created: list[ProcessDefinition] = []
        unchanged: list[DefinitionInfo] = []
        deployment = None
        for process in built:
            previous = latest(session, process.key)
            if previous is not None and previous.xml_sha256 == process.sha256:
                unchanged.append(info(previous))
                continue
            if deployment is None:
                deployment = Deployment(deployed_at=now, deployed_by=actor, file_names=file_names)
                session.add(deployment)
                session.flush()
            row = ProcessDefinition(
                key=process.key, version=previous.version + 1 if previous else 1, name=process.name,
                resource_name=process.file, bpmn_xml=process.xml, xml_sha256=process.sha256,
                spec_json=process.spec_json, deployment_id=deployment.id, deployed_at=now,
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(
                    f"Process {row.key!r} version {row.version} was deployed by someone else at the same moment; "
                    "deploy again.", details={"key": row.key, "version": row.version},
                ) from None
            created.append(row)
        audit.append(session, [
            audit.AuditRecord(event="definition_deployed", actor=actor, at=now, details={
                "key": row.key, "version": row.version, "file": row.resource_name, "sha256": row.xml_sha256,
            })
            for row in created
        ])
        return DeployResult([info(row) for row in created], unchanged, deployment.id if deployment else None)

    def list_definitions(self, key: str | None = None) -> list[DefinitionInfo]:
        """All versions of every process (or of one key), by key, latest version first."""
        query = select(ProcessDefinition)
        if key is not None:
            query = query.where(ProcessDefinition.key == key)
        query = query.order_by(ProcessDefinition.key, ProcessDefinition.version.desc())
        with self._session_factory() as session:
            return [info(row) for row in session.scalars(query)]

    def get_xml(self, key: str, version: int | Literal["latest"] = "latest") -> tuple[DefinitionInfo, str]:
        """A definition and its BPMN text, as uploaded.

        :raises NotFound: no such key, or no such version of it.
        """
        with self._session_factory() as session:
            if version == "latest":
                row = latest(session, key)
            else:
                row = session.scalars(select(ProcessDefinition).where(
                    ProcessDefinition.key == key, ProcessDefinition.version == version)).first()
            if row is None:
                raise NotFound(_not_found(session, key, version), details={"key": key, "version": version})
            return info(row), row.bpmn_xml

    def deploy_directory(self, path: str | Path, actor: str, max_bytes: int = DEFAULT_MAX_BYTES) -> DeployResult:
        """Deploy every *.bpmn file of a directory together (the shipped diagrams, for `make run`)."""
        files = [(p.name, p.read_bytes()) for p in sorted(Path(path).glob("*.bpmn"))]
        if not files:
            return DeployResult([], [], None)
        return self.deploy(files, actor, max_bytes)


def _raise_problems(result: BuildResult) -> None:
    if result.problems:
        raise DefinitionInvalid(
            summarize(result.problems), details={"problems": [p.to_dict() for p in result.problems]}
        )


def _not_found(session: Session, key: str, version: int | str) -> str:
    newest = latest(session, key)
    if newest is None:
        return f"No process {key!r} is deployed. Deploy a BPMN file whose process has the id {key!r} first."
    return f"Process {key!r} has no version {version!r}; the latest is version {newest.version}."
