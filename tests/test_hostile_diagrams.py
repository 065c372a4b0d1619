"""The hostile-diagram corpus of the engine-core issue, each through a real deployment (and run where it
deploys): none reads a file, runs a command or hangs the engine, and a refused upload stores nothing."""

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select

from engine.errors import DefinitionInvalid
from engine.models import ProcessDefinition
from tests.factories import actor
from tests.factories import bpmn_file
from tests.factories import deploy

SCRIPT = "discount = 10 if amount &gt; 10000 else 0\nnet = amount - amount * discount // 100"
CONDITION = "${approved == true}"
MARKER = Path(f"/tmp/dealflow-pwned-{uuid.uuid4().hex}")
XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
       b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">'
       b'<bpmn:process id="p" name="&xxe;" isExecutable="true"><bpmn:startEvent id="s"/></bpmn:process>'
       b'</bpmn:definitions>')
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
                     for i in range(1, 10))
          + b']>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol9;</bpmn:definitions>')

REFUSED = {
    "import os in a script": ({SCRIPT: f"import os\nos.system('touch {MARKER}')"}, "Compute_discount"),
    "open() in a script": ({SCRIPT: f"open('{MARKER}', 'w').write('x')"}, "Compute_discount"),
    "dunder escape in a condition": (
        {CONDITION: "${().__class__.__bases__[0].__subclasses__()}"}, "Flow_approved"),
    "module pivot through a helper": ({CONDITION: "${now.__globals__['os'].system('id')}"}, "Flow_approved"),
    "format-string pivot": ({CONDITION: "${'{0.__globals__}'.format(now) != ''}"}, "Flow_approved"),
    "builtins pivot in a script": ({SCRIPT: "b = getattr(len, '__self__')"}, "Compute_discount"),
    "exec in a script": ({SCRIPT: f"exec(\"import os; os.system('touch {MARKER}')\")"}, "Compute_discount"),
}


def _stored(session_factory) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(ProcessDefinition))


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_code_is_refused_at_deploy(case, session_factory):
    replacements, element = REFUSED[case]
    with pytest.raises(DefinitionInvalid) as err:
        deploy(session_factory, bpmn_file("deal_approval.bpmn", **replacements))
    assert element in {p["element_id"] for p in err.value.details["problems"]}
    assert _stored(session_factory) == 0 and not MARKER.exists()


@pytest.mark.parametrize("payload", [XXE, LAUGHS], ids=["xxe-reading-a-file", "billion-laughs"])
def test_hostile_xml_is_refused_before_parsing(payload, session_factory):
    started = time.perf_counter()
    with pytest.raises(DefinitionInvalid) as err:
        deploy(session_factory, ("evil.bpmn", payload))
    assert time.perf_counter() - started < 2
    assert "root:" not in str(err.value.details) and _stored(session_factory) == 0


@pytest.mark.parametrize("script", [
    "while True:\n    pass",                      # endless loop
    "x = 'a' * (10 ** 10)",                       # memory bomb
    "items = [0] * 1000\nwhile True:\n    items.extend(items)",  # a memory bomb that grows step by step
])
def test_runaway_code_fails_its_instance_and_the_engine_keeps_serving(script, engine, session_factory):
    deploy(session_factory, bpmn_file("deal_approval.bpmn", **{SCRIPT: script}))
    dana = actor("dana", roles=("designer",), groups=())
    started = time.perf_counter()
    failed = engine.start_instance("deal_approval", actor=dana, variables={"amount": 1})
    assert failed.status == "error" and time.perf_counter() - started < 30
    assert engine.get_instance(failed.id).status == "error" and not MARKER.exists()
