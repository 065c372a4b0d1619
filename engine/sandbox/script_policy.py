"""Static checks and the RestrictedPython policy for script tasks ("RP+").

The pre-check refuses whole language features and known pivots before RestrictedPython sees the code;
the policy then rewrites sized operators and f-string values into guarded calls and puts a step tick into
every `while` body and function entry (`for` loops and comprehensions tick through `_getiter_`).
"""

import ast
import re

from RestrictedPython import compile_restricted_exec
from RestrictedPython.transformer import INSPECT_ATTRIBUTES
from RestrictedPython.transformer import RestrictingNodeTransformer

from engine.sandbox.errors import CodeRejected
from engine.sandbox.expression_ast import check_depth
from engine.sandbox.expression_ast import check_format_spec

MAX_SCRIPT_CHARS = 50_000
MAX_SCRIPT_DEPTH = 100
FILENAME = "<script>"
TICK = "_tick_"
FORMATTED = "_fv_"
GUARDED_OPERATORS = {
    ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Add: "_add_", ast.Mod: "_mod_",
}

_FEATURES = {
    ast.Import: "'import' is not allowed in scripts; use the helpers listed in the docs instead",
    ast.ImportFrom: "'import' is not allowed in scripts; use the helpers listed in the docs instead",
    ast.Global: "'global' is not allowed in scripts; variables at the top level are task data already",
    ast.Nonlocal: "'nonlocal' is not allowed in scripts; return values from functions instead",
    ast.ClassDef: "'class' is not allowed in scripts; use dicts for structured data",
    ast.Lambda: "'lambda' is not allowed in scripts; define a function with 'def'",
    ast.Yield: "'yield' is not allowed in scripts; build and return a list",
    ast.YieldFrom: "'yield' is not allowed in scripts; build and return a list",
    ast.AsyncFunctionDef: "async code is not allowed in scripts",
    ast.AsyncFor: "async code is not allowed in scripts",
    ast.AsyncWith: "async code is not allowed in scripts",
    ast.Await: "async code is not allowed in scripts",
    ast.TryStar: "'except*' is not allowed in scripts; use a plain 'except'",
    ast.With: "'with' is not allowed in scripts; nothing a script can reach needs it",
}
# Never a data name, so refused wherever they appear.
DENIED_NAMES = frozenset({
    "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr", "vars", "globals", "locals", "dir",
    "breakpoint", "print", "printed", "memoryview", "bytearray", "super", "classmethod", "staticmethod",
    "BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit",
})
# Common words for data ('type', 'id', 'input'): refused only when called.
DENIED_CALLS = DENIED_NAMES | {
    "type", "id", "open", "help", "input", "exit", "quit", "iter", "next", "aiter", "anext", "format",
    "object", "bytes", "property", "copyright", "credits", "license", "reload", "apply", "execfile", "file",
    "raw_input",
}
DENIED_ATTRIBUTES = INSPECT_ATTRIBUTES | {
    "format", "format_map", "mro", "translate", "maketrans", "vformat", "get_field", "get_value",
    "with_traceback", "func_globals", "func_code", "im_func", "im_self", "register",
}
_DENIED_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_")
_RP_LINE = re.compile(r"Line (\d+): (.*)")


def _problem(node: ast.AST, message: str) -> CodeRejected:
    line = getattr(node, "lineno", None) or 1
    return CodeRejected(f"Line {line}: {message}.", line=line, col=getattr(node, "col_offset", None))


def attribute_allowed(name: str) -> bool:
    """Whether scripts may read attribute `name` (checked statically and again by the getattr guard)."""
    return not name.startswith(_DENIED_PREFIXES) and name not in DENIED_ATTRIBUTES


def _check_name(node: ast.AST) -> None:
    if isinstance(node, ast.Name):
        name = node.id
    else:
        name = getattr(node, "name", None) or getattr(node, "arg", None)
    if not name:
        return
    if name.startswith("_"):
        raise _problem(node, f"names starting with '_' are reserved; rename {name!r} (e.g. to 'item')")
    if name in DENIED_NAMES:
        raise _problem(node, f"{name!r} is not available in scripts; use the helpers listed in the docs")


def _check_node(node: ast.AST) -> None:
    feature = _FEATURES.get(type(node))
    if feature:
        raise _problem(node, feature)
    if isinstance(node, (ast.Name, ast.FunctionDef, ast.arg, ast.ExceptHandler)):
        _check_name(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DENIED_CALLS:
        raise _problem(node, f"{node.func.id}() is not available in scripts; use the helpers in the docs")
    if isinstance(node, ast.Attribute) and not attribute_allowed(node.attr):
        raise _problem(node, f"'.{node.attr}' is not allowed in scripts")
    if isinstance(node, ast.ExceptHandler) and node.type is None:
        raise _problem(node, "a bare 'except:' is not allowed; write 'except Exception:'")
    if isinstance(node, ast.FormattedValue):
        check_format_spec(node)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
            and isinstance(node.left.value, (str, bytes)):
        raise _problem(node, "'%' formatting is not allowed; use an f-string such as f\"{x:.2f}\"")
    if isinstance(node, ast.keyword) and node.arg and node.arg.startswith("_"):
        raise _problem(node, f"keyword arguments starting with '_' are not allowed: {node.arg!r}")


def _parse(source: str) -> ast.Module:
    if not isinstance(source, str):
        raise CodeRejected(f"A script must be text, not {type(source).__name__}.")
    if len(source) > MAX_SCRIPT_CHARS:
        raise CodeRejected(f"Line 1: the script has {len(source):,} characters, more than the "
                           f"{MAX_SCRIPT_CHARS:,} allowed; split it into several tasks.", line=1)
    try:
        return ast.parse(source, FILENAME, "exec")
    except SyntaxError as exc:
        line = exc.lineno or 1
        message = f"Line {line}: {exc.msg}; fix the Python syntax."
        raise CodeRejected(message, line=line, col=exc.offset) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise CodeRejected(f"Line 1: the script cannot be parsed ({type(exc).__name__}); "
                           "it is nested too deeply or contains invalid characters.", line=1) from None


def compile_script(source: str):
    """Check `source` and compile it with the RP+ policy; raises CodeRejected naming the first problem."""
    tree = _parse(source)
    check_depth(tree, MAX_SCRIPT_DEPTH)
    for node in ast.walk(tree):
        _check_node(node)
    result = compile_restricted_exec(tree, FILENAME, policy=_Policy)
    if result.errors:
        match = _RP_LINE.match(result.errors[0])
        line = int(match.group(1)) if match else None
        text = match.group(2) if match else result.errors[0]
        raise CodeRejected(f"Line {line or 1}: {text.rstrip('.')}.", line=line)
    return result.code


def _tick_statement(node: ast.AST) -> ast.stmt:
    call = ast.Expr(ast.Call(ast.Name(TICK, ast.Load()), [], []))
    return ast.fix_missing_locations(ast.copy_location(call, node))


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus guarded operators and step ticks."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        guard = GUARDED_OPERATORS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(ast.Name(guard, ast.Load()), [node.left, node.right], [])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        node = self.node_contents_visit(node)
        node.value = ast.fix_missing_locations(
            ast.copy_location(ast.Call(ast.Name(FORMATTED, ast.Load()), [node.value], []), node.value))
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        node = self.node_contents_visit(node)
        node.body.insert(0, _tick_statement(node.body[0]))
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node = super().visit_FunctionDef(node)
        node.body.insert(0, _tick_statement(node.body[0]))  # an error here points at the body, not the 'def'
        return node
