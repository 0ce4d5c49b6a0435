"""A kept-alive connection's next request is always read, however fast it follows the last answer.

The event loop (service/server/eventloop.py) asked a channel its interest and then whether it
was busy; a worker ending the request between the two left the channel unwatched and not
reading, so a client that sent its next request at once waited for the keep-alive timeout (5 %
of the small pages that followed an index page on one connection, in the locust smoke run and
in 3,000 requests by hand). Here: 300 index-then-page pairs on one connection, each answer
within 3 s.
"""

from __future__ import annotations

import http.client
import random

import pytest


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_every_request_on_a_kept_alive_connection_is_answered_at_once(process_server, demo_db):
    server = process_server(TABLESTREAM_DB=str(demo_db))
    rng = random.Random(7)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3)
    try:
        for i in range(300):
            table = rng.choice(["orders", "customers", "synthetic"])
            for path in ("/", f"/tables/{table}?limit={rng.randint(10, 200)}"):
                connection.request("GET", path)
                response = connection.getresponse()  # a hang is a TimeoutError here
                response.read()
                assert response.status == 200, (i, path, response.status)
    finally:
        connection.close()
