"""Load scenarios that prove the server's memory stays flat as the rows per stream grow.

``locustfile.py`` is what locust loads; the other modules are small on purpose so the parts
that decide anything (``pagecount``, ``verdict``) are plain Python, testable without gevent.
``run.py`` starts a server, runs locust headless against it and stops everything.
"""
