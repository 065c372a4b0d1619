"""Builders with keyword defaults, so each test says only what matters to it."""

from pathlib import Path

from engine.actor import Actor

BPMN_DIR = Path(__file__).parent / "bpmn"


def actor(username: str = "alice", roles=("manager",), groups=("sales",)) -> Actor:
    return Actor(username=username, roles=frozenset(roles), groups=frozenset(groups))


def bpmn_file(name: str, **replacements: str) -> tuple[str, bytes]:
    """A fixture diagram, optionally with text replaced (a variant derived inside the test)."""
    text = (BPMN_DIR / name).read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} not in {name}"
        text = text.replace(old, new)
    return name, text.encode()


def deploy(session_factory, *files, actor_name: str = "designer"):
    """Deploy fixture diagrams (names under tests/bpmn or (name, bytes) pairs) through the real catalogue."""
    from processes.catalogue import Catalogue

    pairs = [bpmn_file(f) if isinstance(f, str) else f for f in files]
    return Catalogue(session_factory).deploy(pairs, actor_name)
