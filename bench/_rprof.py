import sys, time, tempfile, cProfile, pstats
from pathlib import Path
from bench.world import make_world
from bench import throughput
from citypass import node
n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as folder:
    wd = Path(folder)
    world = make_world(wd)
    pr = cProfile.Profile(); pr.enable()
    out = throughput.redemption_figures(world, n, n, "rp")
    pr.disable()
    for k in ("redeem_seconds", "redeem_presigned_seconds", "redeem_client_cpu_seconds", "redeem_node_cpu_seconds", "anvil_transfer_per_second", "redeem_per_second"):
        print(k, round(out[k], 3), file=sys.stderr)
    print("ratio", out["redeem_seconds"] / out["redeem_presigned_seconds"], file=sys.stderr)
    st = pstats.Stats(pr, stream=sys.stderr); st.sort_stats("cumulative").print_stats(70)
    node.node_stop(wd)
