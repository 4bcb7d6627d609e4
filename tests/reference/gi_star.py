"""Reference Gi* from PySAL's esda, for gridwatch's tests and benchmark.

Reads {"y": [...], "neighbours": [[j, ...], ...]} (area i's neighbours, itself not listed) on
stdin, runs esda.G_Local(y, w, transform="B", star=True, permutations=P) and writes
{"z": [...], "p_sim": [...] | null, "p_ties": [...] | null, "seconds": t} on stdout, t being the
time G_Local took (a second call: the first, untimed, warms up numba's compiled kernels when numba
is installed). "p_sim" is esda's own; "p_ties" is from esda's simulated G values (rGs) with ties
counted on both sides, min(#{G_s >= G}, #{G_s <= G}), gridwatch's convention (see
src/analysis/hotspots.rs).

    tests/.venv/bin/python tests/reference/gi_star.py [--permutations P] < input.json
"""
import argparse
import json
import sys
import time
import warnings

import numpy as np
from esda.getisord import G_Local
from libpysal.weights import W


def p_ties(g, permutations):
    """Pseudo p-values from the simulated G values with ties counted on both sides."""
    observed = np.asarray(g.Gs, dtype=float)[:, None]
    simulated = np.asarray(g.rGs, dtype=float)
    tolerance = 1e-12 * np.abs(observed)
    at_least = (simulated >= observed - tolerance).sum(axis=1)
    at_most = (simulated <= observed + tolerance).sum(axis=1)
    return [float(v) for v in (np.minimum(at_least, at_most) + 1) / (permutations + 1)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--permutations", type=int, default=0)
    args = parser.parse_args()
    data = json.load(sys.stdin)
    y = np.asarray(data["y"], dtype=float)
    neighbours = {i: list(js) for i, js in enumerate(data["neighbours"])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands
        w = W(neighbours, silence_warnings=True)
        if args.permutations:
            # Warm up first, so numba's compilation (when numba is installed) is not timed.
            G_Local(y, w, transform="B", star=True, permutations=args.permutations, seed=1)
        started = time.perf_counter()
        g = G_Local(y, w, transform="B", star=True, permutations=args.permutations, seed=12345)
        seconds = time.perf_counter() - started
    json.dump(
        {
            "z": [float(v) for v in g.Zs],
            "p_sim": [float(v) for v in g.p_sim] if args.permutations else None,
            "p_ties": p_ties(g, args.permutations) if args.permutations else None,
            "seconds": seconds,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
