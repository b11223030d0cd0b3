"""The event index does not mistake a restarted embedded node for a reorg: the durable chain
keeps its blocks (and their hashes) across a stop and start, so the index carries on from its
tip without rolling anything back; a real rollback on the same node is still found."""

from __future__ import annotations

import pytest

from citypass import events as E
from citypass.index import EventIndex
from citypass.web.api import Service
from tests.web_helpers import _cli, make_world, redeem, stop_node


@pytest.fixture(autouse=True)
def isolation():
    """These tests run on their own embedded chain, not Brownie's."""


def test_a_restarted_embedded_node_is_no_reorg(tmp_path):
    world = make_world(tmp_path / "w")
    try:
        idx = EventIndex.open(world.dep, world.workdir)
        first = idx.sync()
        assert first.events > 10 and first.rolled_back_to is None
        tip, tip_hash = idx.tip, idx.stored_hash(idx.tip)
        stop_node(world.workdir)
        _cli(world.workdir, "node", "start")
        service = Service.connect(None, world.workdir)  # a new connection to the restarted node
        again = EventIndex.open(service.dep, world.workdir)
        assert again.tip == tip and again.stored_hash(tip) == tip_hash
        result = again.sync()
        assert result.rolled_back_to is None and not result.rebuilt and result.events == 0
        world = type(world)(world.workdir, service, world.alice, world.bob, world.sport, world.culture)
        redeem(world, world.alice, world.sport, 100)
        follow = again.sync()
        assert follow.rolled_back_to is None and follow.events == 2
        assert [(r.block, r.log_index) for r in again.records()] == \
            [(r.block, r.log_index) for r in E.fetch_events(service.dep)]
    finally:
        stop_node(world.workdir)
