"""Stream slots: a stream gets one or an immediate refusal that says why; slots come back."""

import pytest

from tablestream.server.admission import CLIENT_LIMIT, DRAINING, SLOTS_FULL, Admission, Rejected


def test_streams_beyond_the_slots_are_refused_and_a_finished_stream_frees_its_slot():
    admission = Admission(slots=2)
    first, _second = admission.admit("a"), admission.admit("b")
    with pytest.raises(Rejected) as refused:
        admission.admit("c")
    assert refused.value.reason == SLOTS_FULL and "2 stream slots" in refused.value.message
    first.finished("completed", 10)
    first.release()  # a second release changes nothing
    assert admission.in_use == 1
    admission.admit("c")
    assert admission.in_use == 2


def test_one_client_cannot_take_more_than_its_share():
    admission = Admission(slots=8, per_client=2)
    admission.admit("10.0.0.1"), admission.admit("10.0.0.1")
    with pytest.raises(Rejected) as refused:
        admission.admit("10.0.0.1")
    assert refused.value.reason == CLIENT_LIMIT
    admission.admit("10.0.0.2")  # another client still gets a slot


def test_a_draining_server_admits_no_new_stream():
    admission = Admission(slots=8)
    admission.draining = True
    with pytest.raises(Rejected) as refused:
        admission.admit("a")
    assert refused.value.reason == DRAINING
