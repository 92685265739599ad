"""The worker's allocator settings (service/training/memory.py) against glibc's defaults, on the
CPU: the same job trained by train() in fresh processes, one with the settings and one without,
alternately.

    .venv/bin/python bench/allocator.py [--example spiral-relu-adam] [--epochs 1000]
        [--repeats 5] [--threads 2]

Each run is a new interpreter (the settings are process-wide and cannot be undone), timed from
inside around train() alone: its wall time, and its user and system CPU time (resource's
getrusage, the system time being where page faults go). The table shows each setting's medians
and the ratio, default / kept.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# One timed train() of a normalised example, printed as JSON.
RUN = """
import json, resource, sys, time
import torch
from service.specs import JobSpec
from service.training.datasets import describe_dataset
from service.training.loop import train
from service.training.memory import keep_freed_memory
from service.training.plan import plan

raw, threads, kept = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "kept"
if kept:
    assert keep_freed_memory()
torch.set_num_threads(threads)
spec = JobSpec.model_validate(raw)
spec = plan(spec, data=describe_dataset(spec.dataset)).spec

class NoHooks:
    def on_epoch(self, metrics): pass
    def on_checkpoint(self, snapshot): pass
    def should_stop(self, *, epoch): return None

before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
train(spec, device=torch.device("cpu"), hooks=NoHooks())
wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": wall, "user": after.ru_utime - before.ru_utime,
                  "system": after.ru_stime - before.ru_stime}))
"""


def run(spec: dict, *, threads: int, kept: bool) -> dict[str, float]:
    argv = [sys.executable, "-c", RUN, json.dumps(spec), str(threads), "kept" if kept else "-"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--example", default="spiral-relu-adam")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    spec = json.loads((EXAMPLES / f"{args.example}.json").read_text()) | {"epochs": args.epochs}
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(args.repeats):
        for kept in (False, True):
            runs[kept].append(run(spec, threads=args.threads, kept=kept))
    print(f"{args.example}: {args.epochs} epochs, {args.repeats} repeats, {args.threads} threads")
    medians = {
        kept: {key: statistics.median(r[key] for r in each) for key in ("wall", "user", "system")}
        for kept, each in runs.items()
    }
    for kept, label in ((False, "glibc defaults"), (True, "kept (memory.py)")):
        m = medians[kept]
        print(
            f"  {label:17s} wall {m['wall']:6.2f} s  user {m['user']:6.2f} s  "
            f"system {m['system']:6.2f} s"
        )
    default, kept_ = medians[False], medians[True]
    print(
        f"  default / kept: wall {default['wall'] / kept_['wall']:.2f}x, "
        f"CPU {(default['user'] + default['system']) / (kept_['user'] + kept_['system']):.2f}x"
    )


if __name__ == "__main__":
    main()
