"""The workflow runtime. Knows BPMN, not deals; imports nothing of Dealflow but itself, and no Flask."""
