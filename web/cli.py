"""The operator's command line (like Camunda's zbctl): `flask --app app <command> ... [--json]`."""

import functools
import json
import sys
from dataclasses import replace
from pathlib import Path

import click
from flask import Flask
from flask import current_app
from flask.cli import AppGroup

from crm import users as user_service
from engine import audit
from engine.errors import DealflowError
from engine.errors import InvalidInput
from engine.queries import TaskFilter
from web import cli_format as fmt

users_cli = AppGroup("users", help="Create and list accounts.")
audit_cli = AppGroup("audit", help="Check the audit log.")
incidents_cli = AppGroup("incidents", help="Service calls that failed for good: list and retry.")


def _services():
    from app import services

    return services(current_app)


def _actor(username: str):
    with _services().session_factory() as session:
        return user_service.actor_for(session, username)


def command(group, name: str, **kwargs):
    """A CLI command with --json output and one clear sentence (exit 1) for any Dealflow error."""

    def wrap(fn):
        @group.command(name, **kwargs)
        @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
        @functools.wraps(fn)
        def run(*args, as_json: bool, **kw):
            try:
                result = fn(*args, **kw)
            except DealflowError as exc:
                click.echo(f"Error: {exc.message}", err=True)
                for problem in exc.details.get("problems", []):
                    click.echo(f"  - {fmt.problem(problem)}", err=True)
                sys.exit(1)
            if as_json:
                click.echo(json.dumps(result.json, indent=2, default=str))
            else:
                click.echo(result.text)

        return run

    return wrap


def _parse_vars(pairs: tuple[str, ...]) -> dict:
    """name=value pairs; a value that parses as JSON is taken as JSON (numbers, true/false), else as text."""
    variables = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise InvalidInput(f"--var {pair!r} must look like name=value.")
        try:
            variables[name] = json.loads(raw)
        except ValueError:
            variables[name] = raw
    return variables


def _json_arg(text: str, option: str):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{option} is not valid JSON ({exc}); write it like '{{\"approved\": true}}'.") from exc


def _register(cli):
    @command(cli, "deploy", help="Validate and deploy BPMN files (a new version per changed process).")
    @click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--as", "username", default="cli", show_default=True, help="Who deploys (recorded in the audit).")
    def deploy(files, username):
        result = _services().catalogue.deploy([(f.name, f.read_bytes()) for f in files], username,
                                              max_bytes=current_app.config["DEALFLOW_MAX_UPLOAD_BYTES"])
        return fmt.deployed(result)

    @command(cli, "definitions", help="List deployed process definitions.")
    @click.option("--key", default=None, help="Only this process key.")
    def definitions(key):
        return fmt.definitions(_services().catalogue.list_definitions(key))

    @command(cli, "start", help="Start a process instance and run it to its first wait state.")
    @click.argument("key")
    @click.option("--business-key", default=None, help="The deal's id, or any key you correlate by.")
    @click.option("--var", "pairs", multiple=True, help="name=value (JSON values allowed); repeatable.")
    @click.option("--version", type=int, default=None, help="A specific version (default: latest).")
    @click.option("--as", "username", required=True, help="The user starting it.")
    def start(key, business_key, pairs, version, username):
        view = _services().engine.start_instance(key, actor=_actor(username), business_key=business_key,
                                                 variables=_parse_vars(pairs), version=version)
        return fmt.instance(view)

    @command(cli, "tasks", help="Open tasks: a user's inbox with --user, else all.")
    @click.option("--user", default=None, help="Tasks this user may work on (assigned or offered).")
    @click.option("--business-key", default=None)
    @click.option("--instance", "instance_id", type=int, default=None, help="Only this process instance's tasks.")
    @click.option("--sort", type=click.Choice(["created", "due", "priority"]), default="created")
    def tasks(user, business_key, instance_id, sort):
        task_filter = TaskFilter(business_key=business_key, instance_id=instance_id, sort=sort, limit=500)
        if user:
            who = _actor(user)
            task_filter = replace(task_filter, user=who.username, groups=who.groups)
        return fmt.tasks(_services().engine.list_tasks(task_filter))

    @command(cli, "complete", help="Complete a task with form data.")
    @click.argument("task_id")
    @click.option("--as", "username", required=True)
    @click.option("--data", default="{}", help='Form data as JSON, e.g. \'{"approved": true}\'.')
    def complete(task_id, username, data):
        payload = _json_arg(data, "--data")
        return fmt.instance(_services().engine.complete_task(task_id, actor=_actor(username), data=payload))

    @command(cli, "claim", help="Claim a task offered to one of your groups.")
    @click.argument("task_id")
    @click.option("--as", "username", required=True)
    def claim(task_id, username):
        return fmt.task(_services().engine.claim_task(task_id, actor=_actor(username)))

    @command(cli, "unclaim", help="Give a claimed task back to its groups.")
    @click.argument("task_id")
    @click.option("--as", "username", required=True)
    def unclaim(task_id, username):
        return fmt.task(_services().engine.unclaim_task(task_id, actor=_actor(username)))

    @command(cli, "assign", help="Assign a task to a user (supervisors and admins).")
    @click.argument("task_id")
    @click.argument("assignee")
    @click.option("--as", "username", required=True)
    def assign(task_id, assignee, username):
        _actor(assignee)  # the new assignee must be an active user
        return fmt.task(_services().engine.assign_task(task_id, assignee, actor=_actor(username)))

    @command(cli, "cancel", help="Cancel a process instance.")
    @click.argument("instance_id", type=int)
    @click.option("--as", "username", required=True)
    @click.option("--reason", default=None)
    def cancel(instance_id, username, reason):
        return fmt.instance(_services().engine.cancel_instance(instance_id, actor=_actor(username), reason=reason))

    @command(cli, "show", help="An instance: status, open tasks, variables and history.")
    @click.argument("instance_id", type=int)
    def show(instance_id):
        engine = _services().engine
        return fmt.instance(engine.get_instance(instance_id), engine.history(instance_id))

    @command(cli, "message", help="Deliver a message to the deal's waiting instances (or start a process).")
    @click.argument("name")
    @click.option("--business-key", required=True, help="The deal the message is about.")
    @click.option("--payload", default="{}", help='Data as JSON, e.g. \'{"paid": 1200}\'; becomes process data.')
    @click.option("--as", "username", required=True)
    def message(name, business_key, payload, username):
        delivery = _services().engine.correlate_message(name, business_key=business_key, actor=_actor(username),
                                                        payload=_json_arg(payload, "--payload"))
        ids = ", ".join(map(str, delivery.instances))
        text = f"Started instance {ids} with {name!r}." if delivery.started else f"Delivered {name!r} to {ids}."
        return fmt.Output(text, {"instances": delivery.instances, "started": delivery.started})

    @command(cli, "signal", help="Broadcast a signal to every instance waiting for it.")
    @click.argument("name")
    @click.option("--payload", default="{}", help="Data as JSON; becomes process data.")
    @click.option("--as", "username", required=True)
    def signal(name, payload, username):
        ids = _services().engine.broadcast_signal(name, actor=_actor(username),
                                                  payload=_json_arg(payload, "--payload"))
        text = f"Signal {name!r} reached {len(ids)} instance(s)" + (f": {', '.join(map(str, ids))}." if ids else ".")
        return fmt.Output(text, {"instances": ids})

    @command(cli, "sweep", help="Fire every due timer and run every due service call (what the scheduler does).")
    def sweep():
        fired = _services().engine.sweep()
        return fmt.Output(f"Fired {fired} job(s).", {"fired": fired})

    @command(cli, "instances", help="List process instances, newest first.")
    @click.option("--business-key", default=None)
    @click.option("--key", "process_key", default=None)
    @click.option("--status", default=None)
    def instances(business_key, process_key, status):
        rows = _services().engine.list_instances(business_key=business_key, process_key=process_key,
                                                 status=status, limit=500)
        return fmt.instances(rows)


@command(users_cli, "create", help="Create a user.")
@click.argument("username")
@click.option("--role", "roles", multiple=True, help="admin designer manager lawyer accountant supervisor auditor")
@click.option("--group", "groups", multiple=True, help="Candidate group membership; repeatable.")
@click.option("--password", default=None, help="At least 8 characters (omit for an account that cannot log in).")
@click.option("--name", default="")
@click.option("--email", default=None)
def users_create(username, roles, groups, password, name, email):
    sf = _services().session_factory
    with sf() as session, session.begin():
        view = user_service.create_user(session, username, password=password, roles=roles, groups=groups,
                                        name=name, email=email)
    return fmt.user(view)


@command(users_cli, "absent", help="Mark a user absent (new leads skip them), or back with --back.")
@click.argument("username")
@click.option("--back", is_flag=True, help="The user is back: leads may reach them again.")
def users_absent(username, back):
    with _services().session_factory() as session, session.begin():
        view = user_service.update_user(session, username, absent=not back)
    return fmt.user(view)


@command(users_cli, "list", help="List users.")
def users_list():
    with _services().session_factory() as session:
        return fmt.users(user_service.list_users(session))


@command(incidents_cli, "list", help="Open incidents (service calls out of attempts), newest first.")
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--all", "include_resolved", is_flag=True, help="Also the resolved ones.")
def incidents_list(instance_id, include_resolved):
    rows = _services().engine.list_incidents(instance_id=instance_id, include_resolved=include_resolved, limit=500)
    lines = [f"#{i['id']} instance {i['instance_id']} {i['element_id']} ({i['topic']}), {i['attempts']} attempt(s): "
             f"{i['message']}" + (f" [{i['resolution']} by {i['resolved_by']}]" if i["resolved_at"] else "")
             for i in rows]
    return fmt.Output("\n".join(lines) or "No incidents.", rows)


@command(incidents_cli, "retry", help="Give a failed service call a fresh set of attempts (admins, supervisors).")
@click.argument("incident_id", type=int)
@click.option("--as", "username", required=True)
def incidents_retry(incident_id, username):
    incident = _services().engine.retry_incident(incident_id, actor=_actor(username))
    return fmt.Output(f"Incident {incident_id} retried: {incident['element_id']} ({incident['topic']}) runs again "
                      "at the next sweep.", incident)


@audit_cli.command("verify", help="Check every trail of the audit log; exit 1 and name the first bad event if any.")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(as_json):
    with _services().session_factory() as session:
        result = audit.verify(session)
    if as_json:
        click.echo(json.dumps(result.__dict__))
    elif result.ok:
        click.echo(f"Audit log intact: {result.checked} events verified.")
    else:
        click.echo(f"Audit log TAMPERED: {result.reason} ({result.checked} events before it verified).", err=True)
    sys.exit(0 if result.ok else 1)


def init_app(app: Flask) -> None:
    _register(app.cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(incidents_cli)
    from web import demo

    demo.init_app(app)
