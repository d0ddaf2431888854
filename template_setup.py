"""The app's Jinja environment: heap_setup's, with templates that import their macros cheaply.

Every page imports macros (`{% from "_macros.html" import field %}`), and so does each email.
Jinja decides at each import whether the importing template has globals the imported one lacks
(then it must build the macros' module anew for them). It asks with
`ctx.globals_keys - self.globals.keys()`: a set minus the keys of a `ChainMap`, which Python
works out by asking the ChainMap about each key in turn, in Python. With the app's 23 globals
that took about 45 µs an import; one sign-in makes six (the login page, the code page, the
email), 0.8 M of its 51.6 M instructions outside the hash (`bench/instructions.py`).

`AppTemplate` asks the same question with `set.issubset`, and leaves every other case to
Jinja's own method, so a template with globals of its own still gets a module of its own.
It overrides a method Jinja does not document: `requirements.txt` pins Jinja2, and
tests/test_template_imports.py fails if that version stops calling it.
"""

from __future__ import annotations

from jinja2.environment import Template

from heap_setup import GivingBackEnvironment


class AppTemplate(Template):
    def _get_default_module(self, ctx=None):
        if ctx is not None and not ctx.globals_keys.issubset(self.globals):
            return super()._get_default_module(ctx)  # globals of its own: a module for them
        if self._module is None:
            self._module = self.make_module()
        return self._module


class AppEnvironment(GivingBackEnvironment):
    """Flask's Jinja environment, giving freed heap back after each compile (heap_setup)."""

    template_class = AppTemplate
