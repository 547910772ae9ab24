"""Shared test helpers: ports, servers, recorders, the adapter table and the test services.

Importable as ``support`` from any test or conftest: pytest puts ``tests/`` on
``sys.path`` (``pythonpath = ["tests"]`` in ``pyproject.toml``), and worker processes the
tests spawn inherit that path.

- :mod:`support.net`: ``free_port``, ``wait_for_port``, ``wait_until``.
- :mod:`support.servers`: run an ASGI, WSGI or aiohttp app on 127.0.0.1 in a thread.
- :mod:`support.recorders`: ``Recorder``, what webhook handlers received.
- :mod:`support.adapters`: every framework adapter under its real server, from one table.
- :mod:`support.hardening`: every adapter driven in-process with raw requests.
- :mod:`support.cli`: run the command line as a subprocess.
- :mod:`support.services`: where PostgreSQL, Redis and Chromium are, and whether they answer.
"""
