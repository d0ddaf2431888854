"""Every form's fields write their attributes through forms.quick_html_params, and the page
reads exactly as WTForms' own html_params would write it (forms.py explains why: the speed
of each page with a form)."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from wtforms.meta import DefaultMeta
from wtforms.widgets import Input, html_params

import forms
from forms import quick_html_params
from tests.conftest import request_code

# What a box may be given to show: quotes, markup characters, and text that is already markup.
AWKWARD = 'Ann "Nan" O\'Brien <ann@example.com> & co'

ATTRIBUTE_SETS = [
    {},
    {"id": "code", "name": "code", "value": ""},
    {"class_": "input code-field", "for_": "x", "data_state": "queued", "aria_describedby":
     "a b", "data_a_b_c": "d"},
    {"required": True, "disabled": False, "autofocus": True, "checked": False},
    {"value": AWKWARD, "title": Markup('<a href="#">here</a>'), "placeholder": "&amp;"},
    {"maxlength": 254, "tabindex": -1, "value": None, "step": 0.5},
    {"data_x": Markup('"quoted" &amp; kept'), "pattern": r"[0-9 \-]*"},
]


@pytest.mark.parametrize("attributes", ATTRIBUTE_SETS)
def test_quick_html_params_writes_what_wtforms_writes(attributes):
    assert quick_html_params(**attributes) == html_params(**attributes)
    assert isinstance(quick_html_params(**attributes), Markup)


# Forms made with more than the request: what they are made with.
ARGUMENTS = {"GiveBackForm": (SimpleNamespace(email="owner@example.com"),)}


def _form_classes() -> list[type]:
    return [value for _, value in inspect.getmembers(forms, inspect.isclass)
            if issubclass(value, forms.FlaskForm) and value is not forms.FlaskForm]


def _stock(form_class: type) -> type:
    """The same form with WTForms' own widgets."""

    class Meta:
        def bind_field(self, form, unbound_field, options):
            return DefaultMeta.bind_field(self, form, unbound_field, options)

    return type(form_class.__name__, (form_class,), {"Meta": Meta})


def _rendered(form) -> list[str]:
    """Each field as a page shows it: the box (each radio button, for a choice) and its label."""
    html = []
    for field in form:
        html.append(str(field()))
        html.append(str(field.label()))
        if hasattr(field, "option_widget"):
            html.extend(str(option()) for option in field)
    return html


def test_every_form_renders_as_with_wtforms_own_widgets(app):
    classes = _form_classes()
    assert len(classes) > 20, "forms.py's forms were not found"
    with app.test_request_context("/", method="POST"):
        for form_class in classes:
            made_with = ARGUMENTS.get(form_class.__name__, ())
            data = MultiDict({name: AWKWARD for name in form_class(*made_with).data})
            quick = form_class(*made_with, formdata=data)
            stock = _stock(form_class)(*made_with, formdata=data)
            quick_inputs = [field for field in quick if isinstance(field.widget, Input)]
            assert quick_inputs, form_class
            for field in quick_inputs:
                assert field.widget.html_params is quick_html_params, (form_class, field.name)
            # The token is a field Flask-WTF adds, not one of ours: written the quick way too.
            assert quick.csrf_token.widget.html_params is quick_html_params
            for field in stock:
                assert getattr(field.widget, "html_params", None) is not quick_html_params
            assert _rendered(quick) == _rendered(stock), form_class.__name__


def test_labels_written_by_hand_read_as_wtforms_writes_them(app, user, browser, smtp, deliver):
    """The field macro (templates/_macros.html) and the code page's "don't ask again" box
    write their labels themselves, for the same reason: each is what the field's label
    would give."""
    request_code(browser, smtp, deliver)
    code_page = browser.text("/login/code")
    with app.test_request_context("/", method="POST"):
        macro = app.jinja_env.from_string(
            '{% from "_macros.html" import field %}{{ field(f) }}')
        login, code = forms.LoginForm(), forms.CodeForm()
        for box in (login.email, login.password, code.code):
            assert box.label(class_="label") in macro.render(f=box)
        assert code.code.label(class_="label") in code_page
        assert code.remember.label() in code_page
