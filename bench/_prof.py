import sys, time, tempfile, cProfile, pstats, os
from pathlib import Path
from bench.world import make_world, SPORT, resident_address
from citypass import node
rows = int(sys.argv[1])
with tempfile.TemporaryDirectory() as folder:
    wd = Path(folder)
    world = make_world(wd)
    budget = world.new_budget(SPORT, "prof")
    p = wd / "x.csv"
    p.write_text("holder,amount\n" + "".join(f"{resident_address('p', i)},150.00\n" for i in range(rows)))
    from citypass.cli import main as M
    argv = ["--rpc", world.chain.rpc_url, "--workdir", str(wd), "--contract", world.dep.address, "--from", "dev:1", "issue", str(p), "--budget", str(budget)]
    t = time.perf_counter()
    pr = cProfile.Profile(); pr.enable()
    try:
        M.main(argv)
    except SystemExit:
        pass
    pr.disable()
    print("elapsed", time.perf_counter() - t, file=sys.stderr)
    st = pstats.Stats(pr, stream=sys.stderr); st.sort_stats("cumulative").print_stats(60)
    node.node_stop(wd)
