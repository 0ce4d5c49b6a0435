"""Load scenarios that prove the server's memory stays flat as the rows per stream grow.

``locustfile.py`` is what locust loads; the other modules are small on purpose so the parts
that decide anything (``pagecount``, ``verdict``) are plain Python, testable without gevent.
``run.py`` starts a server, runs locust headless against it and stops everything.

``reliability.py`` is the other suite: hostile and heavy clients (``attacks``, ``drain``)
against a real server while ``probes`` watch health checks, small pages, RSS and temp-file
disk; ``reliability_report`` renders the table and verdicts into docs/reliability.md.
"""
