"""A Locust master for lva-loadtest workers.

    locust -f scripts/locust_master.py --master --host URL [-u N -r R -t 10m --headless] \
        [--scenario load] [--tags T] [--lva-args "--keep-accounts --target ..."]
    lva-loadtest --worker --master-host MASTER_IP          # on each worker machine

The master runs Locust as it is (its web UI, console, --csv and --html show the workers'
live figures under this tool's request names); the workers are lva-loadtest processes
speaking Locust's worker protocol. This file:

- declares the tool's user classes (names, weights, waits, tasks and tags), read from the
  tool itself (`lva-loadtest locust-classes`), so they are always the build's own;
- adds the tool's options, which reach the workers with every spawn: --scenario (a preset:
  its tags and its checks), --lva-args (any other run option of lva-loadtest, targets
  included); Locust's own --host, -u, -r, -t, --tags and --exclude-tags are the run's;
- refuses workers of another build, and keeps the user classes the tag filter leaves a
  task;
- collects each worker's exact measured run at the end of every test into a folder
  (--lva-results), with workers.json saying which workers took part and which were lost;
- when the master quits, runs `lva-loadtest merge` on the last test's folder: the exact
  verdict, reports and exit code of the run (Locust's rounded percentiles are never the
  verdict). --lva-no-verdict skips it.

The tool is found as $LVA_LOADTEST (default: lva-loadtest on the PATH); point it at a
program of your own user classes to declare those. See docs/DISTRIBUTED.md.
"""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import gevent
from locust import User, between, events, tag
from locust.runners import STATE_MISSING, MasterRunner

TOOL = os.environ.get("LVA_LOADTEST", "lva-loadtest")
# How long the end of a test waits for the workers' exact runs.
COLLECT_TIMEOUT = 90.0


def tool(*args):
    """Runs the tool and reads its JSON answer; exits with its message if it refuses."""
    try:
        done = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        sys.exit(
            f"error: {TOOL} not found: set LVA_LOADTEST to the lva-loadtest binary "
            "(or to the program that adds your own user classes)"
        )
    if done.returncode != 0:
        sys.exit(f"error: {TOOL} {' '.join(args)}: {done.stderr.strip()}")
    return json.loads(done.stdout)


CLASSES = tool("locust-classes")


def only_on_workers(user):
    raise RuntimeError("this class runs on lva-loadtest workers: start this file with --master")


def declare(spec):
    """A Locust user class standing for one of the tool's: what the master dispatches."""
    tasks = {}
    for task_spec in spec["tasks"]:
        body = tag(*task_spec["tags"])(lambda user: only_on_workers(user))
        body.__name__ = task_spec["name"]
        tasks[body] = task_spec["weight"]
    least, most = spec["wait_seconds"]
    return type(
        spec["name"],
        (User,),
        {
            "weight": spec["weight"],
            "wait_time": between(least, most),
            "tasks": tasks,
            "__module__": __name__,
            "__doc__": f"lva-loadtest's {spec['name']} (run by lva-loadtest workers)",
        },
    )


for spec in CLASSES["classes"]:
    globals()[spec["name"]] = declare(spec)
del spec


@events.init_command_line_parser.add_listener
def add_options(parser):
    group = parser.add_argument_group("lva-loadtest")
    group.add_argument(
        "--scenario",
        default="custom",
        help="lva-loadtest scenario preset: its tags (when no --tags) and its checks",
    )
    group.add_argument(
        "--lva-args",
        default="",
        help="other lva-loadtest run options for the workers and the verdict, as one string",
    )
    group.add_argument(
        "--lva-results",
        default="reports/load_tests/locust",
        help="folder for the workers' exact runs (one subfolder per test)",
    )
    group.add_argument(
        "--lva-no-verdict",
        action="store_true",
        default=False,
        help="do not run lva-loadtest merge when the master quits",
    )


class Collector:
    """The workers of each test, and their exact runs."""

    def __init__(self, environment):
        self.environment = environment
        self.runner = environment.runner
        self.names = {}
        self.refused = set()
        self.folder = None
        self.started = None
        self.taking_part = set()
        self.delivered = set()
        self.reported = {}
        self.last_folder = None
        self.runner.register_message("lva_hello", self.on_hello)
        self.runner.register_message("lva_run", self.on_run)
        self.runner.register_message("lva_failed", self.on_failed)
        self.runner.register_message("lva_ready", lambda **_: None)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.worker_connect.add_listener(self.on_worker_connect)
        events.worker_report.add_listener(self.on_worker_report)

    def log(self, text):
        print(f"[lva-loadtest] {text}", file=sys.stderr, flush=True)

    def on_hello(self, environment, msg, **_):
        hello = msg.data
        self.names[msg.node_id] = hello.get("name", msg.node_id)
        if hello.get("digest") != CLASSES["digest"]:
            reason = (
                f"this worker runs another build or other user classes (version "
                f"{hello.get('fingerprint', {}).get('tool_version')}, digest {hello.get('digest')}) "
                f"than the master's {TOOL} (version {CLASSES['tool_version']}, digest "
                f"{CLASSES['digest']}): run the same build everywhere"
            )
            self.refused.add(msg.node_id)
            self.log(f"refused worker {self.names[msg.node_id]}: {reason}")
            self.runner.send_message("lva_refused", {"reason": reason}, client_id=msg.node_id)

    def on_failed(self, environment, msg, **_):
        self.log(f"worker {self.names.get(msg.node_id, msg.node_id)} cannot run: {msg.data.get('reason')}")

    def on_worker_connect(self, client_id, **_):
        if self.folder is not None and client_id not in self.refused:
            self.taking_part.add(client_id)

    def on_worker_report(self, client_id, data, **_):
        if self.folder is not None and client_id in self.taking_part:
            requests = data.get("stats_total", {}).get("num_requests", 0)
            self.reported[client_id] = self.reported.get(client_id, 0) + requests

    def on_test_start(self, environment, **_):
        stamp = time.strftime("%Y%m%d_%H%M%S")
        self.folder = Path(environment.parsed_options.lva_results) / f"run_{stamp}"
        self.folder.mkdir(parents=True, exist_ok=True)
        # The workers Locust gives users to: connected, not missing, not refused by us.
        self.taking_part = {
            node
            for node, client in self.runner.clients.items()
            if client.state != STATE_MISSING and node not in self.refused
        }
        self.started = time.monotonic()
        self.delivered = set()
        self.reported = {}
        self.log(f"collecting the workers' exact runs into {self.folder}")

    def on_run(self, environment, msg, **_):
        if self.folder is None:
            return
        node = msg.node_id
        path = self.folder / f"{node}.lvarun"
        partial = path.with_suffix(".partial")
        partial.write_bytes(msg.data["run"])
        partial.rename(path)
        self.delivered.add(node)
        self.taking_part.add(node)
        self.log(f"exact run of {self.names.get(node, node)} stored")

    def waiting_for(self):
        clients = self.runner.clients
        return [
            node
            for node in self.taking_part - self.delivered
            if node in clients and clients[node].state != STATE_MISSING
        ]

    def on_test_stop(self, environment, **_):
        if self.folder is None:
            return
        for node in self.waiting_for():
            self.runner.send_message("lva_collect", None, client_id=node)
        deadline = time.monotonic() + COLLECT_TIMEOUT
        while self.waiting_for() and time.monotonic() < deadline:
            gevent.sleep(0.1)
        workers = []
        clients = self.runner.clients
        for node in sorted(self.taking_part):
            name = self.names.get(node, node)
            if node in self.delivered:
                workers.append({"node_id": node, "name": name, "status": "delivered"})
                continue
            if node in clients and clients[node].state == STATE_MISSING:
                reason = "missing: no heartbeat reached the master"
            elif node in clients:
                reason = f"no exact run within {COLLECT_TIMEOUT:.0f} s of the end"
            else:
                reason = "left the run before its end"
            self.log(f"worker {name} is lost: {reason}")
            workers.append(
                {
                    "node_id": node,
                    "name": name,
                    "status": "lost",
                    "reason": reason,
                    "reported_requests": self.reported.get(node),
                }
            )
        options = environment.parsed_options
        run_time = getattr(options, "run_time", None)
        lasted = time.monotonic() - self.started
        manifest = {
            "master": {
                # Ended by hand (Ctrl-C, the stop button) before its run time.
                "interrupted": bool(run_time) and lasted + 1 < run_time,
                "lasted_seconds": round(lasted, 3),
                "locust_version": __import__("locust").__version__,
                "host": environment.host,
                "users": getattr(options, "num_users", None),
                "spawn_rate": getattr(options, "spawn_rate", None),
                "run_time": getattr(options, "run_time", None),
                "scenario": options.scenario,
                "lva_args": options.lva_args,
            },
            "workers": workers,
        }
        (self.folder / "workers.json").write_text(json.dumps(manifest, indent=2))
        self.log(f"{len(self.delivered)} of {len(self.taking_part)} workers delivered their exact run")
        self.last_folder = self.folder
        self.folder = None


COLLECTOR = None


@events.init.add_listener
def on_init(environment, runner=None, **_):
    global COLLECTOR
    if not isinstance(environment.runner, MasterRunner):
        sys.exit("error: this locustfile is for a master of lva-loadtest workers: add --master")
    # First of all: the workers' hellos may already be arriving, and asking the tool below
    # lets them be read.
    COLLECTOR = Collector(environment)
    options = environment.parsed_options
    args = ["locust-classes", "--scenario", options.scenario]
    if options.tags:
        args += ["--tags", ",".join(options.tags)]
    if options.exclude_tags:
        args += ["--exclude-tags", ",".join(options.exclude_tags)]
    selection = tool(*args)
    keep = {c["name"] for c in selection["classes"] if c["selected"]}
    environment.user_classes = [c for c in environment.user_classes if c.__name__ in keep]
    if not environment.user_classes:
        sys.exit("error: the tag filter leaves no user class a task to run")


# Registered at import, before the runner's own: so it runs after the runner has quit,
# when the last test's exact runs are in.
@events.quitting.add_listener
def on_quitting(environment, **_):
    options = environment.parsed_options
    if COLLECTOR is None or COLLECTOR.last_folder is None or options.lva_no_verdict:
        return
    # The workers' plan carries the targets and the output folder of --lva-args.
    command = [TOOL, "merge", str(COLLECTOR.last_folder)]
    print(f"[lva-loadtest] the exact verdict: {shlex.join(command)}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    done = subprocess.run(command)
    environment.process_exit_code = done.returncode
