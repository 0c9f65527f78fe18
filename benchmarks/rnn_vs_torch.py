"""Our recurrent layers against torch.nn.RNN / LSTM / GRU on the CPU, same weights, same thread
count, timed alternately in one process (medians of per-round medians, and the best round of
each, less sensitive to other load), for a noisy machine.

    PYTHONPATH=. python benchmarks/rnn_vs_torch.py [--threads 2] [--rounds 7] [--reps 5]
        [--dir fwd|bwd|both] [CELL,H,N,T[,I] ...]

Forward: ours with prepared weights (W_hh packed once) and with the plain dict (packed in each
call) against torch under no_grad. Backward: rnn_backward (weight gradients, dh0; no dx) after
one rnn(training=True), against torch.autograd.grad of sum(y * dy) w.r.t. the layer's parameters
on a retained graph (backward only, no forward in either timing).
FLOPs: DeepBench's recurrent-only count 2*G*T*N*H^2 (G = 1, 4, 3) and the full count adding
the input projection 2*G*T*N*H*I. Not a test: pytest does not collect this file.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import dlcb_kernels as dk

DEFAULT = ["lstm,512,32,25", "gru,512,32,25", "vanilla,512,32,25", "lstm,1024,64,25", "gru,1024,32,25",
           "vanilla,1760,16,50"]
GATES = {"vanilla": 1, "lstm": 4, "gru": 3}


def median_time(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("shapes", nargs="*", default=DEFAULT)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", choices=["fwd", "bwd", "both"], default="both")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads {args.threads}, torch {torch.__version__}, isa {dk.kernel_info()['isa']}, "
          f"rounds {args.rounds} x {args.reps} reps (median of round medians)")
    for spec in args.shapes:
        parts = spec.split(",")
        cell, H, N, T = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
        I = int(parts[4]) if len(parts) > 4 else H
        G = GATES[cell]
        cls = {"vanilla": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        m = cls(I, H, **({"nonlinearity": "relu"} if cell == "vanilla" else {}))
        w = {k: getattr(m, k + "_l0").detach().numpy().copy() for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        prepared = dk.prepare_rnn_weights(w, cell, threads=args.threads)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((T, N, I)).astype(np.float32)
        h0 = np.zeros((N, H), np.float32)
        dy = rng.standard_normal((T, N, H)).astype(np.float32)
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        state = (torch.zeros(1, N, H), torch.zeros(1, N, H)) if cell == "lstm" else torch.zeros(1, N, H)
        rec = 2 * G * T * N * H * H
        full = rec + 2 * G * T * N * H * I
        name = f"{cell} H={H} N={N} T={T} I={I}"

        if args.dir in ("fwd", "both"):
            def ours():
                dk.rnn(x, h0, prepared, cell=cell, threads=args.threads)

            def ours_dict():
                dk.rnn(x, h0, w, cell=cell, threads=args.threads)

            def theirs():
                with torch.no_grad():
                    m(xt, state)

            with torch.no_grad():
                y_t = m(xt, state)[0].numpy()
            err = float(np.abs(dk.rnn(x, h0, prepared, cell=cell).y - y_t).max())
            times = {"ours": [], "dict": [], "torch": []}
            for f in (ours, ours_dict, theirs):
                f()
            for r in range(args.rounds):
                order = [("ours", ours), ("dict", ours_dict), ("torch", theirs)]
                for key, f in (order if r % 2 == 0 else order[::-1]):
                    times[key].append(median_time(f, args.reps))
            o, d, t = (statistics.median(times[k]) for k in ("ours", "dict", "torch"))
            bo, bt = min(times["ours"]), min(times["torch"])
            print(f"fwd {name}: ours {o * 1e3:.3f} ms (dict {d * 1e3:.3f}), torch {t * 1e3:.3f} ms, "
                  f"torch/ours {t / o:.2f} (dict {t / d:.2f}; best rounds {bo * 1e3:.3f} vs {bt * 1e3:.3f} "
                  f"ms, {bt / bo:.2f}); ours {rec / o / 1e9:.1f} GFLOP/s recurrent-only, "
                  f"{full / o / 1e9:.1f} full; max |y - torch| {err:.1e}", flush=True)

        if args.dir in ("bwd", "both"):
            out = dk.rnn(x, h0, prepared, cell=cell, training=True, threads=args.threads)

            def ours_b():
                dk.rnn_backward(out, dy, threads=args.threads)

            params = list(m.parameters())
            y_t = m(xt, state)[0]
            loss = (y_t * dyt).sum()

            def theirs_b():
                torch.autograd.grad(loss, params, retain_graph=True)

            times = {"ours": [], "torch": []}
            ours_b()
            theirs_b()
            for r in range(args.rounds):
                order = [("ours", ours_b), ("torch", theirs_b)]
                for key, f in (order if r % 2 == 0 else order[::-1]):
                    times[key].append(median_time(f, args.reps))
            o, t = statistics.median(times["ours"]), statistics.median(times["torch"])
            bo, bt = min(times["ours"]), min(times["torch"])
            print(f"bwd {name}: ours {o * 1e3:.3f} ms, torch {t * 1e3:.3f} ms, torch/ours {t / o:.2f} "
                  f"(best rounds {bo * 1e3:.3f} vs {bt * 1e3:.3f} ms, {bt / bo:.2f})", flush=True)


if __name__ == "__main__":
    main()
