"""Reading the pass QR in the browser: the fake camera (a Y4M made from a real pass QR), a
photo, a typed code, and a code that is not a CityPass pass."""

from __future__ import annotations

import media
from passes import Entry, pass_qr
from tillkit import CAMERA


def deployment(server):
    d = server.api("deployment")
    return d["chain_id"], d["contract"]


def verdicts(till) -> int:
    return int(till.page.evaluate("() => Number(document.body.dataset.verdicts || 0)"))


def test_camera_reads_the_pass_qr(open_till, server, world):
    chain_id, contract = deployment(server)
    who = world.new_resident("camera")
    code = pass_qr(who, chain_id, contract, [Entry(world.sport, 5_000, 1)], 2_000_000_000)
    media.write_y4m(CAMERA, code)
    till = open_till("ok")
    till.page.click("#camera")
    till.page.wait_for_function("() => Number(document.body.dataset.verdicts || 0) > 0", timeout=20_000)
    assert till.page.is_visible("#video")
    assert "Camera uit" in till.text("#camera")
    # the code reached the server: a verdict (entries, or the server's sentence) is on screen
    assert till.page.locator("#entries li").count() > 0 or till.text("#verdict-status").strip()
    till.state("till-camera-on")
    till.page.click("#camera")
    assert not till.page.is_visible("#video")


def test_the_same_code_in_front_of_the_camera_is_one_scan(open_till, server, world):
    chain_id, contract = deployment(server)
    who = world.new_resident("camera-once")
    media.write_y4m(CAMERA, pass_qr(who, chain_id, contract, [Entry(world.sport, 5_000, 2)], 2_000_000_000))
    till = open_till("ok")
    till.page.click("#camera")
    till.page.wait_for_function("() => Number(document.body.dataset.verdicts || 0) > 0", timeout=20_000)
    till.page.wait_for_timeout(1500)  # a dozen more frames of the same code
    assert verdicts(till) == 1
    till.page.click("#camera")


def test_not_a_citypass_code(open_till):
    till = open_till("ok")
    till.type_code("https://example.org/not-a-pass")
    assert "Dit is geen CityPass-code" in till.text("#verdict-status")
    till.state("till-not-citypass")


def test_a_photo_without_a_qr(open_till, tmp_path):
    till = open_till("ok")
    blank = tmp_path / "blank.png"
    # a picture with no QR in it: a 1x1 white PNG
    blank.write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a4570000000049454e44ae426082"))
    till.page.set_input_files("#photo", str(blank))
    till.page.wait_for_function("() => document.getElementById('scan-status').textContent.length > 0")
    assert "geen leesbare QR-code" in till.text("#scan-status")
