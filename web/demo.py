"""`flask --app app setup-demo`: deploy the shipped diagrams, create the demo team, seed open deals."""

from pathlib import Path

import click
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from crm import users as user_service
from crm.leads import take_lead_and_start
from crm.models import Deal
from engine.actor import Actor
from engine.errors import Conflict

BPMN_DIR = Path(__file__).resolve().parent.parent / "bpmn"

# Demo accounts only: the passwords are printed by `make run` and must never be used in production.
TEAM = [
    ("admin", "Ada Admin", ["admin"], []),
    ("dana", "Dana Designer", ["designer"], []),
    ("alice", "Alice Seller", ["manager"], ["sales"]),
    ("bob", "Bob Seller", ["manager"], ["sales"]),
    ("hector", "Hector Head-of-Sales", ["supervisor"], ["sales", "head_of_sales"]),
    ("lena", "Lena Lawyer", ["lawyer"], ["legal"]),
    ("leo", "Leo Backup Lawyer", ["lawyer"], ["legal", "legal_backup"]),
    ("artem", "Artem Accountant", ["accountant"], ["accounting"]),
    ("finn", "Finn Finance Director", ["accountant"], ["finance_director"]),
    ("sue", "Sue Supervisor", ["supervisor"], ["sales", "legal", "accounting", "head_of_legal"]),
    ("audrey", "Audrey Auditor", ["auditor"], []),
]
# Leads that `make run` takes in on a fresh database, so the managers' inboxes are not empty.
LEADS = [
    {"channel": "web_form", "source": "site", "message": "We need a CRM for 12 sales managers",
     "title": "CRM roll-out for Romashka", "contact": {"name": "Ivan Petrov", "email": "i.petrov@romashka.example",
                                                       "phone": "+7 495 123-45-67"},
     "company": {"name": "Romashka", "legal_form": "ООО", "region": "Moscow"},
     "line_items": [{"name": "CRM licence, 12 seats", "quantity": 12, "unit_price": 30000},
                    {"name": "Implementation", "quantity": 1, "unit_price": 60000}]},
    {"channel": "call", "source": "partner", "message": "Call back about telephony integration",
     "title": "Telephony integration for Vector Logistics",
     "contact": {"name": "Olga Smirnova", "email": "o.smirnova@vector.example", "phone": "+7 812 555-01-02"},
     "company": {"name": "Vector Logistics", "legal_form": "АО", "region": "Saint Petersburg"},
     "line_items": [{"name": "Telephony connector", "quantity": 1, "unit_price": 150000}]},
    {"channel": "email", "source": "exhibition", "message": "Price list, please",
     "title": "Sales analytics for Ural Machines",
     "contact": {"name": "Pavel Orlov", "email": "p.orlov@uralmash.example", "phone": "+7 343 200-30-40"},
     "company": {"name": "Ural Machines", "legal_form": "ООО", "region": "Yekaterinburg"},
     "line_items": [{"name": "Analytics module", "quantity": 1, "unit_price": 240000}]},
]


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


@click.command("setup-demo", help="Deploy bpmn/*.bpmn, create the demo team and take in a few leads.")
@with_appcontext
def setup_demo():
    from app import services

    svc = services(current_app)
    files = sorted(BPMN_DIR.glob("*.bpmn"))
    result = svc.catalogue.deploy([(f.name, f.read_bytes()) for f in files], "setup-demo")
    for d in result.created:
        click.echo(f"deployed {d.key} v{d.version}")
    with svc.session_factory() as session, session.begin():
        team = create_team(session)
    with svc.session_factory() as session:
        fresh = session.scalar(select(Deal.id).limit(1)) is None
    if fresh:
        process_key = current_app.config["DEALFLOW_SALES_PROCESS"]
        form = Actor("web-form", frozenset({"integration"}), frozenset())
        for lead in LEADS:
            intake = take_lead_and_start(svc.session_factory, svc.engine, svc.engine.now(), process_key, form, **lead)
            click.echo(f"lead -> deal {intake.deal['id']} {intake.deal['title']!r}, owner {intake.deal['owner']}")
        svc.engine.sweep()  # their first service calls (the owner's notification) run now
    click.echo("\nDemo team (demo passwords; never use them in production):")
    for username, roles, groups in team:
        click.echo(f"  {username:<8} password {demo_password(username):<22} roles {roles:<11} groups {groups or '-'}")


def init_app(app: Flask) -> None:
    app.cli.add_command(setup_demo)
