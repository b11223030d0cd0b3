"""The pass QR the library writes (citypass/passqr.py, contract v2) is the one the tests
write from the spec, and the till's own reader (used offline) reads it."""

from __future__ import annotations

import pytest

from passes import Entry, pass_qr

pytestmark = pytest.mark.v2


def test_library_and_spec_encoders_agree(server, world):
    from citypass import passqr

    d = server.api("deployment")
    who = world.new_resident("qr-agree")
    deadline = d["time"] + 900
    ours = pass_qr(who, d["chain_id"], d["contract"], [Entry(world.sport, 5_000, 3), Entry(world.culture, 700, 4)], deadline)
    theirs = passqr.sign_pass(who.key, d["chain_id"], d["contract"], [(world.sport, 5_000, 3), (world.culture, 700, 4)],
                              deadline).encode()
    assert ours == theirs


def test_till_reads_the_library_qr_offline(open_till, server, world):
    from citypass import passqr

    d = server.api("deployment")
    who = world.new_resident("qr-offline")
    code = passqr.sign_pass(who.key, d["chain_id"], d["contract"], [(world.sport, 4_200, 5)], d["time"] + 900).encode()
    till = open_till("ok")
    till.connect()
    till.context.set_offline(True)
    till.type_code(code)
    assert "maximaal €42,00 per betaling" in till.text("#entries")
    till.context.set_offline(False)
