#!/usr/bin/env python3
"""fashion_mlp (examples/fashion_mlp) in PyTorch, timed as kiln_bench_models times Kiln.

The same network: dense 784-300, batch norm, ELU, dense 300-100, batch norm, ELU, dense 100-10,
batch norm (Keras momentum 0.9 is PyTorch momentum 0.1; Keras epsilon 1e-3), softmax
cross-entropy, SGD with learning rate 0.01. Prints milliseconds per call (median of the
repetitions, wall-clock and CPU time) for inference at batch 1 (eager, and TorchScript frozen and optimized for
inference), inference at batch 64 and 256 (eager), and one training step at batch 200.

Run: /usr/bin/python3 benchmarks/pytorch_fashion_mlp.py [--threads 1]
Needs Debian's python3-torch; not part of the test suite.
"""
import argparse
import os
import statistics
import sys
import time

# The environment may pin OpenBLAS to its Haswell kernels (OPENBLAS_CORETYPE); a fair
# comparison uses the kernels OpenBLAS picks for this CPU. OpenBLAS reads the variable when it
# loads, so it must go before torch is imported.
os.environ.pop("OPENBLAS_CORETYPE", None)


def threads_arg():
    """--threads N, read before torch loads: OpenBLAS sizes its own pool from the environment."""
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


os.environ["OPENBLAS_NUM_THREADS"] = threads_arg()
os.environ["OMP_NUM_THREADS"] = threads_arg()

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit("pytorch_fashion_mlp.py: PyTorch is not installed (Debian: apt-get install python3-torch)")


def fashion_mlp():
    def bn(n):
        return nn.BatchNorm1d(n, eps=1e-3, momentum=0.1)

    return nn.Sequential(
        nn.Linear(784, 300), bn(300), nn.ELU(),
        nn.Linear(300, 100), bn(100), nn.ELU(),
        nn.Linear(100, 10), bn(10))


def time_ms(fn, repeat, number):
    """Median over `repeat` timings of `number` calls each, in ms per call, after a warm-up:
    (wall-clock, process CPU time). On a loaded machine the CPU time is the steadier figure
    (with 1 thread it is the time this process ran); Google Benchmark prints both likewise."""
    for _ in range(max(3, number // 10)):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(number):
            fn()
        wall.append((time.perf_counter() - start) * 1e3 / number)
        cpu.append((time.process_time() - start_cpu) * 1e3 / number)
    return statistics.median(wall), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--repeat", type=int, default=7, help="timings per figure (median printed)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")

    def report(name, figures):
        wall, cpu = figures
        print(f"{name:<48} {wall:9.4f} ms wall  {cpu:9.4f} ms CPU")

    model = fashion_mlp().eval()
    with torch.inference_mode():
        for batch, number in ((1, 2000), (64, 500), (256, 200)):
            x = torch.rand(batch, 784)
            report(f"inference batch {batch} eager", time_ms(lambda: model(x), args.repeat, number))
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
        x1 = torch.rand(1, 784)
        report("inference batch 1 TorchScript frozen+optimized",
               time_ms(lambda: frozen(x1), args.repeat, 2000))

    model = fashion_mlp().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(200, 784)
    y = torch.randint(0, 10, (200,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    report("training step batch 200 (SGD)", time_ms(step, args.repeat, 200))


if __name__ == "__main__":
    main()
