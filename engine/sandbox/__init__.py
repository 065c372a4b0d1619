"""Safe evaluation of designer code: expressions in process (AST allowlist), scripts in a worker pool.

Public surface (other packages import only these names):
    check_expression(text)  -> None, raises CodeRejected     (static check, used at deploy)
    check_script(text)      -> None, raises CodeRejected     (static check, used at deploy)
    evaluate(text, data, clock=None) -> value, raises CodeFailed
    ScriptPool(...)         .run(script, data) -> dict; .close()
    SandboxEnvironment(pool, clock)  the SpiffWorkflow environment; make_script_engine(pool, clock)
"""
