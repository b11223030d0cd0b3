"""Constants the browser tests share (keys, paths, sizes): the Anvil dev accounts that are the
providers, and where the fake camera's video and the screenshots go."""

from __future__ import annotations

import os
from pathlib import Path

from citypass import keys

ROOT = Path(__file__).resolve().parents[2]
DEV = [keys.dev_account(i).address for i in range(10)]
POOL, MUSEUM = DEV[7], DEV[8]  # sport at most 50 euros a payment; culture, no limit
CHROMIUM = os.environ.get("CITYPASS_CHROMIUM", "/usr/bin/chromium")
BUILD = ROOT / "build" / "test-web"
SHOTS = ROOT / "build" / "screenshots"
SIZES = [(1280, 800), (768, 1024), (390, 844)]
CAMERA = BUILD / "camera.y4m"

POOL_KEY = "0x" + bytes(keys.dev_account(DEV.index(POOL)).key).hex()
MUSEUM_KEY = "0x" + bytes(keys.dev_account(DEV.index(MUSEUM)).key).hex()
STRANGER_KEY = "0x" + bytes(keys.dev_account(9).key).hex()  # a dev account that is no provider
