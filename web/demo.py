"""`flask --app app setup-demo`: deploy the shipped diagrams, create the demo team, seed open deals."""

from pathlib import Path

import click
from flask import Flask
from flask import current_app

from crm import users as user_service
from engine.errors import Conflict

BPMN_DIR = Path(__file__).resolve().parent.parent / "bpmn"

# Demo accounts only: the passwords are printed by `make run` and must never be used in production.
TEAM = [
    ("admin", "Ada Admin", ["admin"], []),
    ("dana", "Dana Designer", ["designer"], []),
    ("alice", "Alice Seller", ["manager"], ["sales"]),
    ("bob", "Bob Seller", ["manager"], ["sales"]),
    ("lena", "Lena Lawyer", ["lawyer"], ["legal"]),
    ("artem", "Artem Accountant", ["accountant"], ["accounting"]),
    ("sue", "Sue Supervisor", ["supervisor"], ["sales", "legal", "accounting"]),
    ("audrey", "Audrey Auditor", ["auditor"], []),
]
DEALS = [("DEAL-1001", {"amount": 24000, "customer": "Acme LLC"}),
         ("DEAL-1002", {"amount": 3500, "customer": "Northwind"})]


def demo_password(username: str) -> str:
    return f"{username}-demo-pass"


def create_team(session) -> list[tuple[str, str, str]]:
    created = []
    for username, name, roles, groups in TEAM:
        try:
            user_service.create_user(session, username, password=demo_password(username), roles=roles,
                                     groups=groups, name=name, email=f"{username}@example.com")
        except Conflict:
            pass  # already there from an earlier `make run`
        created.append((username, ",".join(roles), ",".join(groups)))
    return created


@click.command("setup-demo", help="Deploy bpmn/*.bpmn, create the demo team and a few open deals.")
def setup_demo():
    from app import services

    svc = services(current_app)
    files = sorted(BPMN_DIR.glob("*.bpmn"))
    result = svc.catalogue.deploy([(f.name, f.read_bytes()) for f in files], "setup-demo")
    for d in result.created:
        click.echo(f"deployed {d.key} v{d.version}")
    with svc.session_factory() as session, session.begin():
        team = create_team(session)
    if not svc.engine.list_instances(limit=1):
        dana = _actor(svc, "dana")
        for business_key, variables in DEALS:
            svc.engine.start_instance("deal_approval", actor=dana, business_key=business_key, variables=variables)
    click.echo("\nDemo team (demo passwords; never use them in production):")
    for username, roles, groups in team:
        click.echo(f"  {username:<8} password {demo_password(username):<22} roles {roles:<11} groups {groups or '-'}")


def _actor(svc, username):
    with svc.session_factory() as session:
        return user_service.actor_for(session, username)


def init_app(app: Flask) -> None:
    app.cli.add_command(setup_demo)
