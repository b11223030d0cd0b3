"""CityPass benchmarks: gas per operation and throughput, side by side with baselines.

    make bench        (python -m bench; see bench/README.md)
"""
