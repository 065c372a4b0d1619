"""Uploaded bytes before they become a tree: size, DTDs, entities, XInclude, encodings, then a hardened parse."""

import re

from lxml import etree

from engine.errors import PayloadTooLarge
from processes.problems import Problem
from processes.problems import ProblemsFound

XINCLUDE_NS = b"http://www.w3.org/2001/XInclude"
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")
# Encodings in which the markup we scan for is plain ASCII, so the byte scan above cannot be fooled.
_ASCII_COMPATIBLE = re.compile(r"^(utf-?8|us-ascii|ascii|iso-?8859-\d{1,2}|latin-?1|windows-125\d|cp125\d)$", re.I)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# Namespaces designers most often forget to declare, so the message can say exactly what to add.
KNOWN_PREFIXES = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmn2": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "camunda": "http://camunda.org/schema/1.0/bpmn",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "modeler": "http://camunda.org/schema/modeler/1.0",
}
_UNDECLARED = re.compile(r"Namespace prefix (\S+) (?:for (\S+) )?on (\S+) is not defined")


def check_upload(name: str, data: bytes, max_bytes: int) -> None:
    """Refuse oversized uploads and any DTD, entity declaration or XInclude before a parser sees the bytes.

    :raises PayloadTooLarge: the file is larger than `max_bytes`.
    :raises ProblemsFound: the file declares a DOCTYPE or ENTITY, uses XInclude, or an unsafe encoding.
    """
    check_size(name, data, max_bytes)
    text = _scannable(name, data)
    match = _DECLARATION.search(text)
    if match:
        kind = match.group(1).decode().upper()
        raise _refuse(name, text, match.start(), (
            f"File {name!r} line {{line}} declares a {kind}; Dealflow does not accept DTDs or entity "
            "declarations in uploads (they can read server files or exhaust memory). Remove the <!DOCTYPE ...> "
            "block; Camunda Modeler never writes one."
        ))
    position = text.find(XINCLUDE_NS)
    if position >= 0:
        raise _refuse(name, text, position, (
            f"File {name!r} line {{line}} uses XInclude ({XINCLUDE_NS.decode()}); Dealflow does not include "
            "other files into an upload. Put everything into the one BPMN file."
        ))


def check_size(name: str, data: bytes, max_bytes: int) -> None:
    """Refuse a file larger than `max_bytes`.

    :raises PayloadTooLarge: naming the file, its size and the limit.
    """
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"File {name!r} is {len(data):,} bytes, more than the limit of {max_bytes:,} bytes. "
            "Upload a smaller diagram (embedded images and long documentation make files large).",
            details={"file": name, "size": len(data), "max_bytes": max_bytes},
        )


def _scannable(name: str, data: bytes) -> bytes:
    """The bytes in an encoding where '<!DOCTYPE' is ASCII: UTF-8 as is, UTF-16 transcoded; others refused."""
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProblemsFound([Problem(name, None, None, (
                f"File {name!r} starts like UTF-16 but is not valid UTF-16 ({exc.reason}). Save it as UTF-8."
            ))]) from None
    declared = _ENCODING.match(data[:200].lstrip(b"\xef\xbb\xbf"))
    if declared and not _ASCII_COMPATIBLE.match(declared.group(1).decode()):
        raise ProblemsFound([Problem(name, None, 1, (
            f"File {name!r} declares the encoding {declared.group(1).decode()!r}, which Dealflow does not "
            "accept. Save the diagram as UTF-8 (what Camunda Modeler writes)."
        ))])
    return data


def _refuse(name: str, text: bytes, position: int, template: str) -> ProblemsFound:
    line = text.count(b"\n", 0, position) + 1
    return ProblemsFound([Problem(name, None, line, template.format(line=line))])


def _hardened_parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers are not thread-safe, and this one is cheap to build.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=False,
        dtd_validation=False, attribute_defaults=False,
    )


def parse_xml(name: str, data: bytes) -> etree._Element:
    """Parse checked bytes with entities, DTDs and network access off; syntax errors become a Problem.

    :raises ProblemsFound: the bytes are not well-formed XML, or (despite the scan) carry a DTD.
    """
    try:
        root = etree.fromstring(data, _hardened_parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, None)
        raise ProblemsFound([Problem(name, None, line, _syntax_message(name, exc.msg, line, column))]) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ProblemsFound([Problem(name, None, 1, (
            f"File {name!r} declares a DOCTYPE; Dealflow does not accept DTDs in uploads. Remove it."
        ))])
    return root


def _syntax_message(name: str, raw: str, line: int | None, column: int | None) -> str:
    where = f"{name} line {line}" + (f", column {column}" if column else "")
    undeclared = _UNDECLARED.search(raw or "")
    if undeclared:
        prefix = undeclared.group(1)
        uri = KNOWN_PREFIXES.get(prefix)
        fix = (
            f'add xmlns:{prefix}="{uri}" to the definitions element' if uri
            else f'declare it with xmlns:{prefix}="..." on the definitions element'
        )
        return f"{where}: the prefix {prefix!r} is used but not declared; {fix}."
    detail = re.sub(r",? line \d+, column \d+$", "", raw or "unknown error").rstrip(".")
    return (
        f"{where}: the file is not well-formed XML ({detail}). Open it in Camunda Modeler and save it again, "
        "or correct the XML at that position."
    )
