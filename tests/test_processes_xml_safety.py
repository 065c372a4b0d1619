"""Upload safety: hostile XML is refused before parsing, cheaply; syntax errors become sentences."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.errors import PayloadTooLarge
from processes.problems import ProblemsFound
from processes.xml_safety import check_upload
from processes.xml_safety import parse_xml
from tests.factories import bpmn_file

FIVE_MB = 5 * 1024 * 1024
BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol0 "lol">'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    + ']>\n<lolz>&lol9;</lolz>'
).encode()


def big_diagram(size: int = FIVE_MB - 1024) -> bytes:
    """A valid diagram just under the limit: a large, real-looking file (many annotations)."""
    _, data = bpmn_file("quote_review.bpmn")
    note = '    <bpmn:textAnnotation id="Note_{0}"><bpmn:text>Remember to call the client back.</bpmn:text>' \
           "</bpmn:textAnnotation>\n"
    head, tail = data.split(b"  </bpmn:process>", 1)
    notes, total = [], len(head) + len(tail)
    while total < size - 200:
        notes.append(note.format(len(notes)).encode())
        total += len(notes[-1])
    return head + b"".join(notes) + b"  </bpmn:process>" + tail


def refusal(data: bytes, name: str = "upload.bpmn") -> ProblemsFound:
    with pytest.raises(ProblemsFound) as caught:
        check_upload(name, data, FIVE_MB)
    return caught.value


def test_billion_laughs_is_refused_by_the_byte_scan():
    started = time.perf_counter()
    problem = refusal(BILLION_LAUGHS).problems[0]
    assert time.perf_counter() - started < 2
    assert problem.line == 2 and "declares a DOCTYPE" in problem.message


def test_entity_declaration_without_doctype_keyword_is_refused():
    # A lower-case or spaced declaration is still a declaration: the scan must not be fooled by case.
    assert "ENTITY" in refusal(b'<?xml version="1.0"?>\n<a><!  entity x "y"></a>').problems[0].message


def test_utf16_upload_is_scanned_after_transcoding():
    data = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE a [<!ENTITY x "y">]>\n<a/>'.encode("utf-16")
    assert "DOCTYPE" in refusal(data).problems[0].message


def test_non_ascii_compatible_encoding_is_refused():
    # In UTF-7 '<!DOCTYPE' need not contain the bytes '<!', so such uploads are refused outright.
    data = b'<?xml version="1.0" encoding="UTF-7"?>\n+ADw-!DOCTYPE a+AD4-\n<a/>'
    assert "Save the diagram as UTF-8" in refusal(data).problems[0].message


def test_size_limit_names_file_and_limit():
    with pytest.raises(PayloadTooLarge) as caught:
        check_upload("big.bpmn", b"x" * 2049, 2048)
    assert caught.value.message.startswith("File 'big.bpmn' is 2,049 bytes, more than the limit of 2,048 bytes.")
    assert caught.value.details == {"file": "big.bpmn", "size": 2049, "max_bytes": 2048}


def test_undeclared_prefix_becomes_a_sentence_with_line_and_column():
    data = b'<?xml version="1.0"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">\n' \
           b'  <bpmn:process id="p" camunda:historyTimeToLive="1"/>\n</bpmn:definitions>'
    with pytest.raises(ProblemsFound) as caught:
        parse_xml("x.bpmn", data)
    problem = caught.value.problems[0]
    assert problem.line == 3
    assert problem.message.startswith("x.bpmn line 3, column ")
    assert problem.message.endswith(": the prefix 'camunda' is used but not declared; add "
                                    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" to the definitions element.')


def test_parse_keeps_line_numbers_and_comments():
    root = parse_xml("x.bpmn", b"<a>\n<!-- why -->\n<b/>\n</a>")
    assert [child.sourceline for child in root] == [2, 3]


def test_five_megabyte_file_is_checked_and_parsed_within_limits(tmp_path: Path):
    # A fresh interpreter, and memory measured as growth over its own baseline after the imports: the bound is
    # about what an upload costs, not about how much the interpreter and its libraries take to start.
    payload = tmp_path / "big.bpmn"
    payload.write_bytes(big_diagram())
    bomb = tmp_path / "bomb.bpmn"
    bomb.write_bytes(BILLION_LAUGHS)
    script = textwrap.dedent(f"""
        import resource, time
        from processes.problems import ProblemsFound
        from processes.xml_safety import check_upload, parse_xml
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        base, started = peak(), time.perf_counter()
        try:
            check_upload("bomb.bpmn", open({str(bomb)!r}, "rb").read(), {FIVE_MB})
        except ProblemsFound:
            pass
        bomb_seconds, bomb_kib = time.perf_counter() - started, peak() - base
        started = time.perf_counter()
        data = open({str(payload)!r}, "rb").read()
        check_upload("big.bpmn", data, {FIVE_MB})
        root = parse_xml("big.bpmn", data)
        print(bomb_seconds, bomb_kib, time.perf_counter() - started, peak() - base, len(root))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).parents[1], check=True)
    bomb_seconds, bomb_kib, seconds, grown_kib, children = result.stdout.split()
    # The billion-laughs file is refused before any parsing: no time, no memory to speak of.
    assert float(bomb_seconds) < 2 and int(bomb_kib) < 16 * 1024
    assert float(seconds) < 2
    assert int(grown_kib) < 256 * 1024
    assert int(children) > 1
