"""From uploaded files to serialized specs: safety checks, lint, call resolution, SpiffWorkflow, serialization.

Nothing here touches the database: already-deployed definitions come in through a lookup function.
"""

import hashlib
import logging
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

from lxml import etree

from engine.serialization import specs_from_json
from engine.serialization import specs_to_json
from processes.dialect import assign_missing_flow_ids
from processes.dialect import bpmn_tag
from processes.dialect import describe
from processes.dialect import executable_processes
from processes.lint import lint_tree
from processes.parser import DealflowParser
from processes.problems import Problem
from processes.problems import ProblemList
from processes.problems import ProblemsFound
from processes.reachability import walk
from processes.xml_safety import check_size
from processes.xml_safety import check_upload
from processes.xml_safety import parse_xml

log = logging.getLogger(__name__)
MAX_NAME = 255
DeployedLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class BuiltProcess:
    """One executable process ready to store: its key, file, text, hash and serialized specs."""

    key: str
    name: str | None
    file: str
    sha256: str
    xml: str
    spec_json: str


@dataclass
class Upload:
    """One uploaded file on its way through the checks."""

    name: str
    data: bytes
    root: etree._Element | None = None
    problems: ProblemList = field(init=False)

    def __post_init__(self):
        self.problems = ProblemList(self.name)


@dataclass
class BuildResult:
    """Every problem found, and (when there are none) the processes to store."""

    problems: list[Problem]
    processes: list[BuiltProcess]


def build(files: Sequence[tuple[str, bytes]], max_bytes: int, known_topics: Callable[[str], bool] | None = None,
          deployed: DeployedLookup | None = None) -> BuildResult:
    """Check and parse a deployment's files; `deployed(key)` returns the latest deployed spec_json of a key.

    :raises PayloadTooLarge: a file is over `max_bytes` (before anything else is read).
    """
    deployed = deployed or (lambda key: None)
    for name, data in files:
        check_size(name, data, max_bytes)
    uploads = [read_upload(name, data, max_bytes, known_topics) for name, data in files]
    check_names(uploads)
    owners = process_owners(uploads)
    check_calls(uploads, owners, deployed)
    built = build_specs([u for u in uploads if u.root is not None and not u.problems], deployed)
    problems = [p for u in uploads for p in u.problems.capped()]
    return BuildResult(problems, [] if problems else built)


def read_upload(name: str, data: bytes, max_bytes: int, known_topics: Callable[[str], bool] | None) -> Upload:
    """Safety checks, parse and lint of one file (problems recorded on the upload)."""
    upload = Upload(name, data)
    if name.lower().endswith(".dmn"):
        upload.problems.add(None, (
            f"File {name!r} is a DMN decision table; DMN decision tables are not supported yet. Deploy only "
            "BPMN files, and decide in script tasks or gateways for now."
        ))
        return upload
    try:
        check_upload(name, data, max_bytes)
        upload.root = parse_xml(name, data)
        # The same deterministic ids the parser gives id-less flows, so problems can name those flows too.
        assign_missing_flow_ids(upload.root)
    except ProblemsFound as found:
        for problem in found.problems:
            upload.problems.add_problem(problem)
        return upload
    try:
        for problem in lint_tree(upload.root, name, known_topics):
            upload.problems.add_problem(problem)
    except Exception as exc:  # a bug of ours must still come out as a problem, not a traceback
        log.exception("Lint failed on %s", name)
        upload.problems.add(None, f"Dealflow could not check {name!r} ({type(exc).__name__}: {exc}). "
                            "Report the file to the Dealflow team.")
    return upload


def check_names(uploads: list[Upload]) -> None:
    """File names are unique within a deployment and fit the catalogue's columns."""
    seen: set[str] = set()
    for upload in uploads:
        if upload.name in seen:
            upload.problems.add(None, f"File {upload.name!r} is uploaded twice. Upload each file once.")
        seen.add(upload.name)
        if len(upload.name) > MAX_NAME:
            upload.problems.add(None, f"The file name {upload.name[:40]!r}... is longer than {MAX_NAME} "
                                "characters. Rename the file.")


def process_owners(uploads: list[Upload]) -> dict[str, Upload]:
    """Executable process id -> the upload defining it; the same id in two files is a problem."""
    owners: dict[str, Upload] = {}
    for upload in uploads:
        for process in executable_processes(upload.root) if upload.root is not None else []:
            key = process.get("id") or ""
            if key in owners:
                upload.problems.add(process, (
                    f"The process {key!r} is defined both in {owners[key].name!r} and in {upload.name!r}. "
                    "Give each process its own id (Camunda Modeler: process properties, 'ID')."
                ))
            elif not key or len(key) > MAX_NAME:
                upload.problems.add(process, f"An executable process needs an id of 1 to {MAX_NAME} characters. "
                                    "Set it in the process properties ('ID').")
            else:
                owners[key] = upload
    return owners


def check_calls(uploads: list[Upload], owners: dict[str, Upload], deployed: DeployedLookup) -> None:
    """Every reachable call activity calls a process of this deployment or an already deployed one."""
    for upload in uploads:
        for process in executable_processes(upload.root) if upload.root is not None else []:
            for node in walk(process).nodes:
                called = (node.get("calledElement") or "").strip()
                if node.tag != bpmn_tag("callActivity") or not called or "{" in called:
                    continue
                if called not in owners and deployed(called) is None:
                    upload.problems.add(node, (
                        f"The {describe(node)} calls the process {called!r}, which is neither in this deployment "
                        "nor deployed before. Deploy that process together with this file, or first."
                    ))


def build_specs(uploads: list[Upload], deployed: DeployedLookup) -> list[BuiltProcess]:
    """Parse clean files with DealflowParser and serialize each executable process with what it calls."""
    parser = DealflowParser()
    added = []
    for upload in uploads:
        ok, _ = guard(upload, lambda u=upload: parser.add_bpmn_xml(u.root, u.name))
        if ok:
            added.append(upload)
    built = []
    for upload in added:
        for process in executable_processes(upload.root):
            ok, result = guard(upload, lambda p=process, u=upload: build_process(parser, p, u, deployed))
            if ok:
                built.append(result)
    return built


def build_process(parser: DealflowParser, process: etree._Element, upload: Upload,
                  deployed: DeployedLookup) -> BuiltProcess:
    """The serialized spec of one process, with its sub-processes and call activity targets."""
    key = process.get("id")
    spec = parser.get_spec(key)
    subprocess_specs = parser.get_subprocess_specs(key, require_call_activity_specs=False)
    for called in [name for name, sub in subprocess_specs.items() if sub is None]:
        subprocess_specs.pop(called)
        text = deployed(called)
        if text is not None:
            called_spec, called_subs = specs_from_json(text)
            subprocess_specs[called] = called_spec
            for name, sub in called_subs.items():
                subprocess_specs.setdefault(name, sub)
    return BuiltProcess(
        key=key, name=(process.get("name") or None) and process.get("name")[:MAX_NAME], file=upload.name,
        sha256=hashlib.sha256(upload.data).hexdigest(), xml=xml_text(upload),
        spec_json=specs_to_json(spec, subprocess_specs),
    )


def xml_text(upload: Upload) -> str:
    """The file as text, in the encoding its XML declaration names (a UTF-8 byte order mark dropped)."""
    encoding = upload.root.getroottree().docinfo.encoding or "utf-8"
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    return upload.data.decode(codec)


def guard(upload: Upload, action: Callable) -> tuple[bool, object]:
    """Run a SpiffWorkflow step: (True, result), or (False, None) with the exception recorded as a problem."""
    try:
        return True, action()
    except Exception as exc:
        upload.problems.add_problem(problem_from_exception(exc, upload))
        return False, None


def problem_from_exception(exc: Exception, upload: Upload) -> Problem:
    """A Problem naming file, element and line for an exception raised while SpiffWorkflow parsed a file."""
    element_id = getattr(exc, "id", None) or None
    node = None
    if element_id and upload.root is not None:
        node = next(iter(upload.root.xpath("//*[@id=$id]", id=element_id)), None)
    line = node.sourceline if node is not None else None
    where = f"{describe(node)} in {upload.name} line {line}" if node is not None else repr(upload.name)
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, RecursionError) or "RecursionError" in detail:
        return Problem(upload.name, element_id, line, (
            f"The process in {upload.name!r} is too long for SpiffWorkflow, which reads one path recursively (it "
            f"gave up at the {where}). Split the process into called processes of at most a few hundred steps."
        ))
    if not isinstance(exc, ValueError | KeyError) and not hasattr(exc, "id"):
        log.warning("Unexpected %s while parsing %s", type(exc).__name__, upload.name, exc_info=exc)
    return Problem(upload.name, element_id, line, (
        f"SpiffWorkflow could not read the {where}: {detail.rstrip('.')}. Check this element in Camunda "
        "Modeler; if it looks right, report the file to the Dealflow team."
    ))
