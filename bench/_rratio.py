import sys, tempfile
from pathlib import Path
from bench.world import make_world
from bench import throughput
from citypass import node
n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as folder:
    wd = Path(folder)
    world = make_world(wd)
    out = throughput.redemption_figures(world, n, n, "rr")
    print({k: round(v, 2) for k, v in out.items()})
    print("ratio", round(out["redeem_seconds"] / out["redeem_presigned_seconds"], 2))
    node.node_stop(wd)
