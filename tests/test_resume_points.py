"""A page's rows carry its resume points (service/stream/resumepoints.py): after the first batch
and every 8th, the URL that continues after that batch's last row, which a cut page follows."""

from __future__ import annotations

import re
from urllib.parse import unquote

from markupsafe import Markup

from tablestream import create_app
from tablestream.stream.resumepoints import with_resume_points
from tablestream.testing import httpraw

POINT = re.compile(rb"<!--ts-after ([^>]*)-->")


def test_a_point_follows_the_first_batch_and_every_eighth_and_never_closes_its_comment():
    asked = []
    urls = iter(["/t?a=1&b=-->x", None, "/t?c=3"])

    def resume():
        asked.append(1)
        return next(urls)

    render = with_resume_points(lambda batch: Markup("<tr>%s</tr>") % batch[0], resume, every=2)
    out = [str(render(["<b>"])) for _ in range(6)]
    assert len(asked) == 3  # batches 1, 3, 5: a resume point costs a signature, not every batch
    assert out[0] == "<tr>&lt;b&gt;</tr><!--ts-after /t%3Fa%3D1%26b%3D--%3Ex-->"
    assert out[2] == out[1] == out[3] == "<tr>&lt;b&gt;</tr>"  # None: no point
    assert out[4].endswith("<!--ts-after /t%3Fc%3D3-->")
    # Rows given as plain text are escaped, as the template would escape them.
    plain = with_resume_points(lambda batch: "<tr>", lambda: "/t")
    assert str(plain([()])) == "&lt;tr&gt;<!--ts-after /t-->"


def test_each_point_of_a_page_continues_after_the_rows_before_it(thread_server, settings_for):
    server = thread_server(create_app(settings_for(synthetic_rows="5000", gzip="false")))
    page = httpraw.get(f"{server.url}/tables/synthetic?limit=4500")
    assert page.terminated
    points = list(POINT.finditer(page.body))
    assert len(points) == 3  # after 256, 2,304 and 4,352 rows (batches 1, 9 and 17)
    rows_start = page.body.index(b"<tbody>")  # after the header row
    for point in points:
        before = page.body[rows_start : point.start()].count(b"</tr>")
        rest = httpraw.get(server.url + unquote(point.group(1).decode()))
        assert rest.terminated
        first = re.search(rb"<tr><td>(\d+)</td>", rest.body.split(b"<tbody>", 1)[1]).group(1)
        assert int(first) == before + 1
        assert f'data-rows-sent="{4500 - before}"'.encode() in rest.body
