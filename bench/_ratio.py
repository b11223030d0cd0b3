import sys, time
from bench.throughput import issue_run
for rows in [int(x) for x in sys.argv[1:]]:
    r = issue_run(rows, f"r{rows}t{int(time.time())}")
    print(f"{rows}: issue {r.seconds:.2f}s node-only {r.node_only_seconds:.2f}s ratio {r.ratio:.2f} startup {r.startup_seconds:.2f} after-startup {r.ratio_after_startup:.2f} client_cpu {r.client_cpu:.2f} node_cpu {r.node_cpu:.2f} node_only_cpu {r.node_only_cpu:.2f} blocks {r.blocks}", flush=True)
