"""What is wrong with an uploaded file: one Problem per finding, collected into one list per deployment."""

from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

from lxml import etree

MAX_PROBLEMS_PER_FILE = 500


@dataclass(frozen=True)
class Problem:
    """One finding in one file: where it is (element id, line) and a sentence that says what to change."""

    file: str
    element_id: str | None
    line: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The problem as a JSON-able dict (the `details.problems` items of DefinitionInvalid)."""
        return asdict(self)


class ProblemsFound(Exception):
    """Raised where checking cannot go on (the bytes are not safe or not XML); carries the problems found."""

    def __init__(self, problems: list[Problem]):
        super().__init__(problems[0].message if problems else "Problems found.")
        self.problems = problems


def owner_id(node: etree._Element) -> str | None:
    """The id of the node itself or of its nearest ancestor that has one."""
    while node is not None:
        if not isinstance(node.tag, str):
            node = node.getparent()
            continue
        ident = node.get("id")
        if ident:
            return ident
        node = node.getparent()
    return None


class ProblemList:
    """Collects the problems of one file; `add` takes the offending node so id and line are never forgotten."""

    def __init__(self, file: str):
        self.file = file
        self.items: list[Problem] = []
        self._seen: set[Problem] = set()

    def add(self, node: etree._Element | None, message: str, line: int | None = None) -> None:
        """Record a problem at `node` (its id or its nearest ancestor's, and its line unless `line` is given)."""
        element_id = owner_id(node) if node is not None else None
        if line is None and node is not None:
            line = node.sourceline
        self.add_problem(Problem(self.file, element_id, line, message))

    def add_problem(self, problem: Problem) -> None:
        """Record a problem built elsewhere (for example from a SpiffWorkflow exception); duplicates are dropped."""
        if problem not in self._seen:
            self._seen.add(problem)
            self.items.append(problem)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def capped(self, limit: int = MAX_PROBLEMS_PER_FILE) -> list[Problem]:
        """At most `limit` problems, plus one that counts the rest (a generated diagram with thousands of broken
        tasks must still get a readable, bounded answer)."""
        if len(self.items) <= limit:
            return list(self.items)
        rest = len(self.items) - limit
        return [*self.items[:limit], Problem(self.file, None, None, (
            f"File {self.file!r} has {rest} more problems not listed here. Fix the ones above and upload again "
            "to see the rest."
        ))]


def summarize(problems: list[Problem]) -> str:
    """A one-sentence summary for DefinitionInvalid: how many problems, and the first one."""
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    return f"The deployment was refused: {count} {noun} found. The first: {problems[0].message}"
