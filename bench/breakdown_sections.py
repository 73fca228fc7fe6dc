"""The sections bench/train_breakdown.py reports after the per-step split.

* Sequences in flight on the policy: each rollout group records its Generate
  calls as [started_unix, finished_unix, sequences] (rollouts.jsonl,
  `generate_calls`); a call adds its sequences at its start and removes them at
  its end. The level is reported time-weighted over the steady state.
* CPU per component: `CpuSampler` reads, about once a second, the CPU seconds
  (user + system) of every process under `outrider train`; each process is put
  in a component by `COMPONENTS` (command-line patterns). Mean cores of a
  component = its CPU seconds between the samples in the steady state ÷ the
  wall seconds those samples span.
* RPCs per turn: each group's RPC counts per "service/Rpc" (`rpcs`, counted
  by outrider/rollout/rpcs.py) ÷ the episode-turns of those groups (`turns`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

COMPONENTS: list[tuple[str, str]] = [
    ("policy", r"outrider\.services\.policy\.main|VLLM::"),
    ("env", r"outrider\.services\.env\.main"),
    ("reward", r"outrider\.services\.reward\.main"),
    ("curriculum", r"outrider\.services\.curriculum\.main"),
    ("rollout workers", r"celery.*outrider\.rollout\.worker"),  # also its setproctitle "[celeryd: …] (-A …)"
    ("learner", r"torch\.distributed\.run|torchrun|outrider\.learner\.main"),
    ("redis", r"valkey-server|redis-server"),
    ("driver", r"outrider\.cli\.main train|outrider train"),
]
"""Component of a process: the first pattern its command line matches. A process
matching none counts with its parent's component (vLLM's spawned workers,
compile helpers), except directly under the driver: those are "other"."""

OTHER = "other"


# Sequences in flight.


def in_flight_series(groups: list[dict]) -> list[tuple[float, int]]:
    """The step function of sequences in flight: (time, level from then on), by time."""
    events = [(t, delta) for g in groups for t0, t1, n in g.get("generate_calls", []) for t, delta in ((t0, n), (t1, -n))]
    # At equal times the −n sorts first: a call that ends as another starts is not counted twice.
    events.sort()
    series: list[tuple[float, int]] = []
    level = 0
    for t, delta in events:
        level += delta
        if series and series[-1][0] == t:
            series[-1] = (t, level)
        else:
            series.append((t, level))
    return series


def level_stats(series: list[tuple[float, int]], start: float, end: float) -> dict:
    """Time-weighted statistics of the step function over [start, end]: mean =
    ∫ level dt ÷ (end − start); median = the smallest level L with time at levels
    ≤ L ≥ half the window; max; idle = share of the window with nothing in flight."""
    seconds: dict[int, float] = defaultdict(float)
    bounds = [t for t, _ in series] + [float("inf")]
    levels = [0] + [level for _, level in series]
    for level, lo, hi in zip(levels, [float("-inf"), *bounds[:-1]], bounds):
        overlap = min(hi, end) - max(lo, start)
        if overlap > 0:
            seconds[level] += overlap
    window = end - start
    cumulative, median = 0.0, 0
    for level in sorted(seconds):
        cumulative += seconds[level]
        median = level
        if cumulative >= window / 2:
            break
    return {
        "mean": sum(level * s for level, s in seconds.items()) / window,
        "median": median,
        "max": max(seconds),
        "idle_share": seconds.get(0, 0.0) / window,
    }


def plot_in_flight(series: list[tuple[float, int]], step_times: list[float], path: Path) -> None:
    """Sequences in flight against seconds since the first Generate; steady state shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = series[0][0]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.step([t - origin for t, _ in series], [level for _, level in series], where="post", linewidth=1)
    ax.axvspan(step_times[0] - origin, step_times[-1] - origin, color="tab:green", alpha=0.1, label="steady state")
    for t in step_times:
        ax.axvline(t - origin, color="dimgrey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("seconds since the first Generate (dotted: learner steps end)")
    ax.set_ylabel("sequences in flight")
    ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# CPU per component.


class CpuSampler:
    """Samples the CPU seconds of `root_pid` and its descendants in a thread.

    A sample is {"time", "cpu": {pid: seconds}, "new": {pid: {"ppid", "cmd"}}},
    "new" holding the processes first seen, or whose command line changed
    (vLLM renames its processes), since the previous sample."""

    def __init__(self, root_pid: int, interval_s: float = 1.0):
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.samples: list[dict] = []
        self._known: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                root = psutil.Process(self.root_pid)
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sample = {"time": round(time.time(), 3), "cpu": {}, "new": {}}
            for process in processes:
                try:
                    with process.oneshot():
                        times = process.cpu_times()
                        cmd = " ".join(process.cmdline())[:400] or process.name()
                        ppid = process.ppid()
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                pid = str(process.pid)
                sample["cpu"][pid] = round(times.user + times.system, 3)
                if self._known.get(pid) != cmd:
                    self._known[pid] = cmd
                    sample["new"][pid] = {"ppid": str(ppid), "cmd": cmd}
            self.samples.append(sample)
            self._stop.wait(self.interval_s)


def classify(pid: str, processes: dict[str, dict], table: list[tuple[str, str]] = COMPONENTS) -> str:
    """The component of `pid` (see COMPONENTS)."""
    info = processes.get(pid)
    if info is None:
        return OTHER
    for component, pattern in table:
        if re.search(pattern, info["cmd"]):
            return component
    parent = info["ppid"]
    if parent not in processes or parent == pid:
        return OTHER
    inherited = classify(parent, processes, table)
    return OTHER if inherited == "driver" else inherited


def cpu_by_component(samples: list[dict], start: float, end: float) -> tuple[dict[str, float], float]:
    """CPU seconds per component between consecutive samples inside [start, end],
    and the wall seconds those samples span. A process first seen in a sample
    started after the previous one: all its CPU time falls in that interval."""
    processes: dict[str, dict] = {}
    for sample in samples:
        processes.update(sample["new"])
    inside = [s for s in samples if start <= s["time"] <= end]
    cpu: dict[str, float] = defaultdict(float)
    for before, after in zip(inside, inside[1:]):
        for pid, seconds in after["cpu"].items():
            cpu[classify(pid, processes)] += max(0.0, seconds - before["cpu"].get(pid, 0.0))
    wall = inside[-1]["time"] - inside[0]["time"] if len(inside) > 1 else 0.0
    return dict(cpu), wall


def cpu_report(samples: list[dict], start: float, end: float) -> dict:
    """Mean cores used and share of the CPU time, per component, over [start, end]."""
    cpu, wall = cpu_by_component(samples, start, end)
    total = sum(cpu.values())
    if wall <= 0 or total <= 0:
        return {}
    order = [name for name, _ in COMPONENTS] + [OTHER]
    return {name: {"cores": cpu[name] / wall, "share": cpu[name] / total} for name in order if name in cpu}


def write_samples(samples: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))


# RPCs per turn.


def rpcs_per_turn(groups: list[dict]) -> dict:
    """Per "service/Rpc": calls per group and per episode-turn, over the groups that counted them."""
    counted = [g for g in groups if "rpcs" in g and g.get("turns")]
    if not counted:
        return {}
    totals: Counter = Counter()
    for group in counted:
        totals.update(group["rpcs"])
    turns = sum(g["turns"] for g in counted)
    return {
        "groups": len(counted),
        "turns_per_episode": turns / sum(g["episodes"] for g in counted),
        "total_per_turn": sum(totals.values()) / turns,
        "kinds": {kind: {"per_group": n / len(counted), "per_turn": n / turns} for kind, n in sorted(totals.items())},
    }


def sections(groups: list[dict], step_times: list[float], samples: list[dict] | None, out_dir: Path) -> dict:
    """The three sections' numbers; the in-flight plot goes to out_dir/in_flight.png."""
    start, end = step_times[0], step_times[-1]
    numbers: dict = {"in_flight": None, "cpu": None, "rpcs": rpcs_per_turn(groups) or None}
    series = in_flight_series(groups)
    if series:
        numbers["in_flight"] = level_stats(series, start, end)
        numbers["in_flight"]["plot"] = str(out_dir / "in_flight.png")
        plot_in_flight(series, step_times, out_dir / "in_flight.png")
    if samples:
        numbers["cpu"] = cpu_report(samples, start, end) or None
    return numbers


def print_sections(numbers: dict, cpu_count: int | None) -> None:
    flight = numbers["in_flight"]
    if flight:
        print(f"sequences in flight on the policy (steady state, time-weighted): mean {flight['mean']:.1f}, "
              f"median {flight['median']}, max {flight['max']}; nothing in flight {flight['idle_share']:.0%} of the time "
              f"(plot: {flight['plot']})")
    else:
        print("sequences in flight: no `generate_calls` in rollouts.jsonl (a run from before they were recorded)")
    cpu = numbers["cpu"]
    if cpu:
        used = sum(c["cores"] for c in cpu.values())
        print(f"CPU per component (steady state, mean cores; {used:.2f} of {cpu_count} cores used):")
        for name, c in cpu.items():
            print(f"  {name:<22}  {c['cores']:5.2f} cores  {c['share']:5.0%}")
    else:
        print("CPU per component: no samples (breakdown/cpu.jsonl is written when this bench runs the training)")
    rpcs = numbers["rpcs"]
    if rpcs:
        print(f"RPCs per episode-turn ({rpcs['groups']} groups, {rpcs['turns_per_episode']:.2f} turns/episode; "
              f"{rpcs['total_per_turn']:.2f} in all):")
        for kind, r in rpcs["kinds"].items():
            print(f"  {kind:<28}  {r['per_turn']:6.2f} per turn  {r['per_group']:7.1f} per group")
    else:
        print("RPCs per turn: no `rpcs` in rollouts.jsonl (a run from before they were counted)")
