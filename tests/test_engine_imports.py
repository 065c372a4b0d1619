"""The engine is a library: importing it must not drag in Flask or marshmallow."""

import subprocess
import sys


def test_engine_imports_no_web_framework():
    code = (
        "import sys, engine.engine, engine.sandbox, processes.catalogue;"
        "bad = [m for m in ('flask', 'marshmallow', 'werkzeug') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
