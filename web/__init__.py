"""Flask blueprints and the command line: the HTTP edge of Dealflow."""
