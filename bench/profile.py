"""One run of OUR tool on a bench row under py-spy (every thread, idle ones too), summarised as Markdown.

    make profile-smb                                         # local → SMB, 5,000 × 4 KiB
    make profile-smb SCENARIO=smb-local DATASET=big
    .venv/bin/python -m bench.profile --scenario verify-s3      # POINT_IN_TIME_CONSISTENT, nothing to copy
    .venv/bin/python -m bench.profile --scenario local-smb --dataset small [--out FILE | --results]

The row is set up as ``bench.run`` sets it up (same servers, datasets, connections, clean destination; the
re-run rows sync once untimed first); only our CLI is profiled. py-spy samples every thread of the process
(and of child processes) ``--rate`` times a second; each sample is charged to a layer: "waiting" when the
innermost frame's source line is a blocking call (socket select/recv, lock, event, queue), otherwise the
layer of the innermost frame's module. Sampling pauses the process, so the profiled run is slower than a
bench run: read shares, not seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import linecache
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import datasets as ds  # noqa: E402
from bench.measure import measure  # noqa: E402
from bench.run import SMB_COPY_SCENARIOS, VENV_BIN, Harness, redact_cmd  # noqa: E402

COPY_SCENARIOS = {"local-local": ("local", "local"), "local-s3": ("local", "s3"), "s3-local": ("s3", "local"),
                  "s3-s3": ("s3", "s3"), **SMB_COPY_SCENARIOS}
RERUN_SCENARIOS = {"rerun-s3": "s3", "rerun-smb": "smb"}
#: Rows whose profiled run follows an untimed first sync, with these options (bench.run's verify_scenario).
PROFILED_OPTIONS = {"verify-s3": {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}}

SOCKET_WAIT = re.compile(r"\bselect\(|\.poll\(|\.recv(_into|from)?\(|\.readinto\(|\.accept\(|\.connect\(")
THREAD_WAIT = re.compile(r"\.wait\(|\.acquire\(|\bsleep\(|\.join\(|\.get\((block|timeout|True)?|"
                         r"^\s*with\s+[\w.]*lock\w*\s*:", re.IGNORECASE)
SOCKET_SEND = re.compile(r"\.send(all)?\(")
WAIT_LAYERS = ("waiting: socket", "waiting: threads (locks, events, queues)")
#: A send is busy (the syscall copies the message) but also holds the wait for the GIL after the syscall, and
#: blocks while the peer lags: a layer of its own.
SEND_LAYER = "socket send (syscall, then waiting for the GIL)"

#: (path fragment, layer), first match wins; paths are py-spy's full file names.
LAYERS = [
    ("airflow_datasync/locations/smb/", "our SMB backend"),
    ("airflow_datasync/checksum", "checksum"),
    ("airflow_datasync/", "our engine"),
    ("/smbprotocol/", "smbprotocol"), ("/smbclient/", "smbprotocol"), ("/spnego/", "smbprotocol"),
    ("/cryptography/", "cryptography (signing, encryption)"),
    ("/pyarrow/", "pyarrow"),
    ("/botocore/", "S3 client"), ("/boto3/", "S3 client"), ("/s3transfer/", "S3 client"),
    ("/awscrt/", "S3 client"), ("/urllib3/", "S3 client"),
    ("/airflow/", "Airflow (imports, settings)"),
    ("<frozen importlib", "imports (start-up)"),
]


@dataclass
class Frame:
    name: str
    file: str
    line: int

    @property
    def short_file(self) -> str:
        for marker in ("site-packages/", str(REPO) + "/", "lib/python3.11/"):
            if marker in self.file:
                return self.file.split(marker, 1)[1]
        return self.file

    @property
    def label(self) -> str:
        return f"`{self.name}` ({self.short_file})"


def layer_of(frame: Frame) -> str:
    for fragment, layer in LAYERS:
        if fragment in frame.file:
            return layer
    return "stdlib / other"


def wait_kind(frame: Frame) -> str | None:
    """Which wait a sample is in, judged by the innermost frame's source line, or None when it is busy."""
    text = linecache.getline(frame.file, frame.line) if frame.file and frame.line else ""
    if SOCKET_WAIT.search(text):
        return WAIT_LAYERS[0]
    if THREAD_WAIT.search(text):
        return WAIT_LAYERS[1]
    return None


def busy_layer(frame: Frame) -> str:
    text = linecache.getline(frame.file, frame.line) if frame.file and frame.line else ""
    return SEND_LAYER if SOCKET_SEND.search(text) else layer_of(frame)


def thread_group(name: str) -> str:
    """`Process 12 Thread 34 "ThreadPoolExecutor-0_3"` → `ThreadPoolExecutor-N_N`."""
    found = re.search(r'"(.*)"', name)
    label = found.group(1) if found and found.group(1) else "(unnamed)"
    return re.sub(r"\d+", "N", label)


@dataclass
class Summary:
    rate: int
    samples: int = 0
    busy: int = 0
    self_layer: Counter = field(default_factory=Counter)
    incl_layer: Counter = field(default_factory=Counter)
    self_fn: Counter = field(default_factory=Counter)
    self_line: Counter = field(default_factory=Counter)
    incl_fn: Counter = field(default_factory=Counter)
    fn_layer: dict = field(default_factory=dict)
    threads: dict = field(default_factory=dict)  # group -> Counter(total, busy, threads)


def summarise(speedscope: dict, rate: int) -> Summary:
    """Aggregate a py-spy speedscope profile (root-first stacks, one profile per thread)."""
    frames = [Frame(f["name"], f.get("file") or "", f.get("line") or 0) for f in speedscope["shared"]["frames"]]
    python = [bool(f.file) for f in frames]  # py-spy's "process …" pseudo-frames carry no file
    s = Summary(rate)
    waits: dict[int, str | None] = {}
    leaf_layers: dict[int, str] = {}
    for profile in speedscope["profiles"]:
        group = s.threads.setdefault(thread_group(profile["name"]), Counter())
        group["threads"] += 1
        for stack, weight in zip(profile["samples"], profile["weights"]):
            n = max(1, round(weight * rate))
            stack = [i for i in stack if python[i]]
            if not stack:
                continue
            s.samples += n
            group["samples"] += n
            leaf = stack[-1]
            if leaf not in waits:
                waits[leaf] = wait_kind(frames[leaf])
            kind = waits[leaf]
            if kind:
                s.self_layer[kind] += n
                continue
            if leaf not in leaf_layers:
                leaf_layers[leaf] = busy_layer(frames[leaf])
            s.self_layer[leaf_layers[leaf]] += n
            s.busy += n
            group["busy"] += n
            seen_layers, seen_fns = {leaf_layers[leaf]}, set()
            for i in stack:
                f = frames[i]
                key = (f.name, f.short_file)
                seen_fns.add(key)
                s.fn_layer[key] = layer_of(f)
                seen_layers.add(s.fn_layer[key])
            s.self_fn[(frames[leaf].name, frames[leaf].short_file)] += n
            s.self_line[(frames[leaf].name, frames[leaf].short_file, frames[leaf].line)] += n
            for key in seen_fns:
                s.incl_fn[key] += n
            for layer in seen_layers:
                s.incl_layer[layer] += n
    return s


def markdown(s: Summary, *, title: str, facts: list[str], top: int = 20) -> str:
    def pct(n: int, of: int) -> str:
        return f"{100 * n / of:.1f} %" if of else "–"

    def secs(n: int) -> str:
        return f"{n / s.rate:.1f}"

    lines = [f"# Profile: {title}", "", *[f"- {f}" for f in facts],
             f"- {s.samples:,} thread-samples at {s.rate} Hz ({secs(s.samples)} thread-s), of which {s.busy:,} busy "
             f"({secs(s.busy)} thread-s; a thread waiting for the GIL counts as busy)", "",
             "## By layer", "",
             "Self: the innermost frame's layer (waits by the blocking line). Inclusive: busy samples with the "
             "layer anywhere on the stack.", "",
             "| layer | self thread-s | self % of all | self % of busy | inclusive % of busy |", "|---|---|---|---|---|"]
    for layer, n in s.self_layer.most_common():
        busy_share = "–" if layer in WAIT_LAYERS else pct(n, s.busy)
        incl = "–" if layer in WAIT_LAYERS else pct(s.incl_layer[layer], s.busy)
        lines.append(f"| {layer} | {secs(n)} | {pct(n, s.samples)} | {busy_share} | {incl} |")
    lines += ["", "## By thread group", "", "| thread group | threads | thread-s sampled | busy thread-s | busy % |",
              "|---|---|---|---|---|"]
    for group, c in sorted(s.threads.items(), key=lambda kv: -kv[1]["busy"]):
        if c["samples"]:
            lines.append(f"| {group} | {c['threads']} | {secs(c['samples'])} | {secs(c['busy'])} | "
                         f"{pct(c['busy'], c['samples'])} |")
    # Inclusive: the standard library's frames (thread bootstrap, runpy) wrap everything and say nothing.
    ours_incl = Counter({k: n for k, n in s.incl_fn.items() if s.fn_layer.get(k) != "stdlib / other"})
    for heading, counter in ((f"Top {top} functions by self time (busy samples)", s.self_fn),
                             (f"Top {top} functions by inclusive time (busy samples, standard library left out)",
                              ours_incl)):
        lines += ["", f"## {heading}", "", "| function | layer | self % of busy | inclusive % of busy |",
                  "|---|---|---|---|"]
        for key, _n in counter.most_common(top):
            name, short = key
            hot = max((k for k in s.self_line if k[:2] == key), key=s.self_line.__getitem__, default=None)
            where = f"{short}:{hot[2]}" if hot and s.self_line[hot] else short
            lines.append(f"| `{name}` ({where}) | {s.fn_layer.get(key, '?')} | {pct(s.self_fn[key], s.busy)} | "
                         f"{pct(s.incl_fn[key], s.busy)} |")
    return "\n".join(lines) + "\n"


# -- running one row ------------------------------------------------------------------------------------
def py_spy_bin() -> str:
    found = VENV_BIN / "py-spy"
    if found.exists():
        return str(found)
    other = shutil.which("py-spy")
    if other is None:
        raise SystemExit("py-spy not found: `make setup` installs it (a dev dependency)")
    return other


PTRACE_HINT = ("py-spy could not attach (ptrace). Run as root, or give the container CAP_SYS_PTRACE "
               "(`docker run --cap-add SYS_PTRACE`), or allow it with `sysctl kernel.yama.ptrace_scope=0`.")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="local-smb",
                        choices=sorted({*COPY_SCENARIOS, *RERUN_SCENARIOS, *PROFILED_OPTIONS}))
    parser.add_argument("--dataset", default="small", choices=["small", "big"])
    parser.add_argument("--small-count", type=int, default=5000)
    parser.add_argument("--big-mib", type=int, default=500)
    parser.add_argument("--rate", type=int, default=200, help="samples per second per thread")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread py-spy finds holding the GIL (no waits); on Python 3.11 here it "
                             "caught about a third of the process's CPU seconds: compare shares with care")
    parser.add_argument("--nonblocking", action="store_true",
                        help="py-spy samples without pausing the process (less overhead, stacks may tear)")
    parser.add_argument("--work", default=str(REPO / "bench" / "work"))
    parser.add_argument("--out", help="write the Markdown here as well as to stdout")
    parser.add_argument("--results", action="store_true",
                        help="write it to bench/results/<date>-profile-<scenario>[-big].md")
    parser.add_argument("--timeout", type=float, default=900.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spy = py_spy_bin()
    h = Harness(args, {})
    data = Path(args.work).resolve() / "data"
    dataset = (ds.small_files(data, args.small_count, 4096) if args.dataset == "small"
               else ds.big_files(data, 2, args.big_mib))
    if args.scenario in COPY_SCENARIOS:
        src_kind, dst_kind = COPY_SCENARIOS[args.scenario]
    else:
        src_kind, dst_kind = "local", RERUN_SCENARIOS.get(args.scenario, "s3")
    kinds = {src_kind, dst_kind}
    raw = h.logs / f"profile-{args.scenario}-{args.dataset}.speedscope.json"
    try:
        h.start_servers("s3" in kinds, "smb" in kinds)
        if "smb" in kinds and h.smb is None:
            raise SystemExit(h.skipped.get("smb", "no smbd"))
        h.setup_env()
        src = h.source(src_kind, dataset)
        dst = h.new_dest(dst_kind, f"profile-{args.scenario}")
        cmd, env = h.command("ours", src, dst)
        if args.scenario in RERUN_SCENARIOS or args.scenario in PROFILED_OPTIONS:
            first = measure(cmd, env, h.logs / f"profile-{args.scenario}-initial.log", timeout=args.timeout)
            if not first.ok:
                raise SystemExit(f"the initial sync failed: see {first.log}")
            cmd, env = h.command("ours", src, dst, PROFILED_OPTIONS.get(args.scenario))
        spy_cmd = [spy, "record", "-r", str(args.rate), "-f", "speedscope", "--idle", "--subprocesses",
                   "--full-filenames", "-o", str(raw), *(["--nonblocking"] if args.nonblocking else []),
                   *(["--gil"] if args.gil else []), "--", *cmd]
        m = measure(spy_cmd, env, h.logs / f"profile-{args.scenario}-{args.dataset}.log", timeout=args.timeout)
        log_text = Path(m.log).read_text(errors="replace")
        h.drop(dst)
    finally:
        h.stop_servers()
    if not raw.exists():
        hint = PTRACE_HINT if re.search(r"ptrace|Permission denied|Operation not permitted", log_text) else ""
        raise SystemExit(f"py-spy wrote no profile (rc {m.returncode}, log {m.log}). {hint}")
    summary = summarise(json.loads(raw.read_text()), args.rate)
    status = "ok" if m.ok else f"FAILED rc={m.returncode} (log {m.log})"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    facts = [f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, engine commit {commit}, {os.cpu_count()} CPUs, "
             f"1-minute load {m.load1:.1f} at the start",
             f"dataset {dataset.name}: {dataset.files:,} files, {dataset.bytes / 1e6:,.1f} MB",
             f"command: `{redact_cmd(cmd, h.work)}`",
             f"profiled run: {m.wall:.1f} s wall under py-spy, {status} (CPU figures: `bench.run`; the child's "
             "rusage does not reach py-spy's parent whole)",
             f"raw profile (speedscope, open at speedscope.app): `{redact_cmd([str(raw)], h.work)}`"]
    text = markdown(summary, title=f"ours, {args.scenario} · {dataset.name}", facts=facts, top=args.top)
    print(text)
    outs = [Path(args.out)] if args.out else []
    if args.results:
        suffix = ("" if args.dataset == "small" else f"-{args.dataset}") + ("-gil" if args.gil else "")
        outs.append(REPO / "bench" / "results" / f"{dt.date.today().isoformat()}-profile-{args.scenario}{suffix}.md")
    for out in outs:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"written to {out}", file=sys.stderr)
    return 0 if m.ok else 1


if __name__ == "__main__":
    sys.exit(main())
