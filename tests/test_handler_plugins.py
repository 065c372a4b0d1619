"""Handlers a company adds as a package: found through the `dealflow.handlers` entry points, run like built-ins.

The package is tests/plugin_example, installed into the test environment by `make venv` (pip install -e).
"""

from importlib.metadata import EntryPoint

from handlers import ENTRY_POINT_GROUP
from handlers import build_registry
from handlers.mail import MailHandler
from tests.factories import actor
from tests.factories import bpmn_file
from tests.factories import deploy

GREET = bpmn_file("service_call.bpmn", **{'camunda:topic="test.echo"': 'camunda:topic="example.greet"',
                                          '<camunda:inputParameter name="to">${email}</camunda:inputParameter>':
                                          '<camunda:inputParameter name="name">${company}</camunda:inputParameter>'})


def test_an_installed_plugin_is_registered_with_its_config_and_retry_policy():
    registry = build_registry({"EXAMPLE_GREETING": "Добрый день"})
    assert {"mail.send", "document.render", "notify.send", "webhook.post", "example.greet"} <= set(registry.topics())
    registered = registry.get("example.greet")
    assert registered.retry.attempts == 2
    assert type(registered.handler).__module__ == "dealflow_example_handlers"


def test_a_broken_plugin_leaves_its_topic_unknown_and_a_plugin_cannot_replace_a_built_in(caplog):
    plugins = [EntryPoint("example.broken", "dealflow_example_handlers:does_not_exist", ENTRY_POINT_GROUP),
               EntryPoint("mail.send", "dealflow_example_handlers:GreetingHandler", ENTRY_POINT_GROUP),
               EntryPoint("example.greet", "dealflow_example_handlers:GreetingHandler", ENTRY_POINT_GROUP)]
    registry = build_registry({}, plugins=plugins)
    assert not registry.knows("example.broken") and registry.knows("example.greet")
    assert isinstance(registry.get("mail.send").handler, MailHandler)
    assert "failed to load" in caplog.text and "cannot replace the built-in handler" in caplog.text


def test_a_diagram_using_the_plugin_topic_deploys_and_runs(session_factory, clock, script_pool):
    from engine.engine import Engine
    from processes.catalogue import Catalogue

    registry = build_registry({"EXAMPLE_GREETING": "Hello"})
    assert Catalogue(session_factory).validate([GREET], known_topics=registry.knows) == []
    unknown = Catalogue(session_factory).validate([GREET], known_topics=build_registry({}, plugins=[]).knows)
    assert [p.element_id for p in unknown] == ["Task_send"] and "example.greet" in unknown[0].message

    deploy(session_factory, GREET)
    engine = Engine(session_factory, clock=clock, script_pool=script_pool, handlers=registry)
    started = engine.start_instance("service_call", actor=actor(), business_key="DEAL-7",
                                    variables={"company": "Acme LLC", "amount": 1})
    assert engine.fire_due_jobs() == 1
    assert engine.get_instance(started.id).variables["greeting"] == "Hello, Acme LLC!"
