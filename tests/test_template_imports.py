"""Templates import their macros as Jinja would, through template_setup.AppTemplate's quicker
check: the same module for every import, and a module of its own for a template that brings
globals of its own."""

from __future__ import annotations

import pytest
from jinja2 import DictLoader, Environment
from jinja2.environment import Template

from template_setup import AppTemplate

IMPORTING = '{% from "macros.html" import hello %}{{ hello() }}'


@pytest.fixture
def seen(monkeypatch):
    """The templates whose imports AppTemplate was asked about, and those it left to Jinja."""
    calls = {"asked": [], "jinja": []}
    jinja_own = Template._get_default_module

    class Counting(AppTemplate):
        def _get_default_module(self, ctx=None):
            calls["asked"].append(self.name)
            return super()._get_default_module(ctx)

    def jinja_counting(self, ctx=None):
        calls["jinja"].append(self.name)
        return jinja_own(self, ctx)

    monkeypatch.setattr(Template, "_get_default_module", jinja_counting)
    calls["class"] = Counting
    return calls


def environment(template_class) -> Environment:
    """A bare Jinja environment with the app's template class (Flask's needs an app)."""
    env = Environment(loader=DictLoader({
        "macros.html": "{% macro hello() %}hello {{ who | default('nobody') }}{% endmacro %}",
        "page.html": IMPORTING, "own.html": IMPORTING,
    }))
    env.template_class = template_class
    return env


def test_the_app_renders_with_these_templates(app):
    assert app.jinja_env.template_class is AppTemplate
    assert isinstance(app.jinja_env.get_template("_macros.html"), AppTemplate)


def test_an_import_is_answered_here_and_its_module_built_once(seen, monkeypatch):
    """Fails if Jinja stops calling the method AppTemplate overrides, as a new version might."""
    built = []
    make = Template.make_module
    monkeypatch.setattr(Template, "make_module", lambda self, *args, **kwargs:
                        built.append(self.name) or make(self, *args, **kwargs))
    page = environment(seen["class"]).get_template("page.html")
    assert [page.render() for _ in range(3)] == ["hello nobody"] * 3
    assert seen["asked"] == ["macros.html"] * 3
    assert seen["jinja"] == []  # answered without Jinja's walk of the globals
    assert built == ["macros.html"]  # once, then the same module


def test_a_template_with_globals_of_its_own_gets_a_module_that_sees_them(seen):
    env = environment(seen["class"])
    assert env.get_template("page.html").render() == "hello nobody"
    own = env.get_template("own.html", globals={"who": "a client"})
    assert own.render() == "hello a client"
    assert seen["jinja"] == ["macros.html"]  # that one was Jinja's to build
    assert env.get_template("page.html").render() == "hello nobody"
