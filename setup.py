"""Package discovery for an import name that differs from its folder.

The code is in ``service/`` and installs as ``tablestream`` (``package-dir`` in pyproject.toml).
setuptools' declarative ``packages.find`` cannot add that prefix, so the subpackages are found
here, at build time: every folder under ``service/`` with an ``__init__.py`` ships as
``tablestream.<folder>``, every folder under ``templates/`` as ``tablestream.templates.<folder>``
(static files and row templates; their files ship by pattern), and nothing named ``service`` is
installed. Everything else about the
build is declared in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

setup(
    packages=[
        "tablestream",
        *(f"tablestream.{name}" for name in find_packages("service")),
        "tablestream.templates",
        *(f"tablestream.templates.{name}" for name in find_namespace_packages("templates")),
    ]
)
