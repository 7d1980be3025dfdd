"""tasks/events.py: a typo in an event name would silently disarm the automations, so it is refused."""

from __future__ import annotations

import pytest

from tasks import events


def test_emit_refuses_unknown_event_names_and_resources() -> None:
    with pytest.raises(ValueError, match=r"unknown event 'hsf\.data\.lsot'"):
        events.emit("hsf.data.lsot", resource="hsf.cluster.x")
    with pytest.raises(ValueError, match=r"should start with 'hsf\.'"):
        events.emit(events.DATA_LOST, resource="cluster.x")
