"""A tf.distribute cluster of `pytest bench/` sessions on this machine, as several hosts would run one:
`python -m bench.cluster --workers 2 -- --models resnet20 --mode train` (the command is bench/cluster.py).

Each worker is `pytest bench/ <args>` with its own TF_CONFIG, as on a real cluster. The chief (worker 0) prints its
progress here and saves the run; the others write logs and save nothing. A worker that dies ends the others within
the timeout: they see it at their next collective, and what is still running past the timeout is stopped.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

from ..core.cli import ArgumentParser, UsageError
from ..engines.distribute import WORKER_TIMEOUT_S

IN_PRIVATE_NETWORK = "CNNBENCH_CLUSTER_PRIVATE_NETWORK"  # set inside the network namespace this re-runs itself in
STOP_GRACE_S = 15.0  # after the timeout: SIGTERM, then this long before SIGKILL
POLL_S = 0.2
BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the workers' `pytest bench/`, from any folder


def parse_args(argv):
    if "--" in argv:
        at = argv.index("--")
        own, pytest_args = argv[:at], argv[at + 1:]
    else:
        own, pytest_args = argv, []
    parser = ArgumentParser(
        prog="python -m bench.cluster", usage="%(prog)s --workers N [options] -- [pytest bench/ options]",
        description="Run the benchmark on N tf.distribute workers on this machine (127.0.0.1, free ports), in a "
        "private network namespace: TensorFlow's gRPC servers listen on every interface and have no setting to "
        "change that, so there they can only be reached from this machine.")
    parser.add_argument("--workers", type=int, required=True, help="worker processes, 2 or more")
    parser.add_argument("--timeout", type=float, default=WORKER_TIMEOUT_S,
                        help="seconds a worker waits for another (forming the cluster, each collective) before the "
                        "run stops; also how long the others may run on after a worker died "
                        f"(default {WORKER_TIMEOUT_S:g})")
    parser.add_argument("--log-dir", default="results/cluster",
                        help="where the workers other than the chief write their logs: <log-dir>/<run>/worker<i>.log")
    parser.add_argument("--shared-network", action="store_true",
                        help="run the workers in this machine's network, where their gRPC servers can be reached "
                        "from other hosts (for a machine without network namespaces)")
    args = parser.parse_args(own)
    if args.workers < 2:
        parser.error(f"--workers must be 2 or more, got {args.workers} (one worker is a plain pytest bench/ run)")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    return args, pytest_args


def _unshare_command() -> list[str]:
    return ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--net"]


def _in_private_network(argv) -> int:
    """Run this command again inside a new network namespace, whose only interface is its own loopback."""
    probe = subprocess.run([*_unshare_command(), "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["failed"])[-1]
        raise UsageError(f"cannot make a private network namespace ({why}); --shared-network runs the workers in "
                         "this machine's network, where their gRPC servers listen on every interface")
    child = subprocess.Popen([*_unshare_command(), sys.executable, "-m", "bench.cluster", *argv],
                             env={**os.environ, IN_PRIVATE_NETWORK: "1"})
    for name in ("SIGINT", "SIGTERM"):
        signal.signal(getattr(signal, name), lambda number, _frame: child.send_signal(number))
    return child.wait()


def _loopback_up() -> None:
    """A new network namespace starts with its loopback down (what `ip link set lo up` does, without iproute2)."""
    get_flags, set_flags, up = 0x8913, 0x8914, 0x1  # SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, get_flags, request))[1]
        fcntl.ioctl(sock, set_flags, struct.pack("16sH14s", b"lo", flags | up, b""))


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (all held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"


class Workers:
    def __init__(self, count: int, pytest_args: list[str], timeout: float, log_dir: str):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.run_name = f"{stamp}-{socket.gethostname()}-{count}workers"
        self.timeout = timeout
        self.addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
        self.log_dir = os.path.join(log_dir, self.run_name)
        os.makedirs(self.log_dir, exist_ok=True)
        command = [sys.executable, "-m", "pytest", BENCH, *pytest_args, "--run-name", self.run_name,
                   "--worker-timeout", f"{timeout:g}"]
        self.logs, self.processes = [], []
        for index in range(count):
            env = {**os.environ, "TF_CONFIG": tf_config(self.addresses, index)}
            env.pop(IN_PRIVATE_NETWORK, None)
            log = None if index == 0 else open(os.path.join(self.log_dir, f"worker{index}.log"), "w")
            self.logs.append(log)
            self.processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT
                                                   if log else None))

    def stop(self, number=signal.SIGTERM) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(number)

    def wait(self) -> list[str]:
        """Until every worker has ended; what happened, one line each. After a worker ends badly the others have
        the timeout to end (they see the loss at their next collective), then are stopped."""
        lost_at, notes = None, {}
        while any(process.poll() is None for process in self.processes):
            if lost_at is None and any(process.returncode not in (None, 0) for process in self.processes):
                lost_at = time.monotonic()
            if lost_at is not None and time.monotonic() - lost_at > self.timeout:
                for index, process in enumerate(self.processes):
                    if process.poll() is None:
                        notes[index] = f"still running {self.timeout:g} s after a worker ended: stopped"
                self.stop(signal.SIGTERM)
                try:
                    for process in self.processes:
                        process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.stop(signal.SIGKILL)
                break
            time.sleep(POLL_S)
        for process in self.processes:
            process.wait()
        for log in self.logs:
            if log:
                log.close()
        lines = []
        for index, process in enumerate(self.processes):
            role = "worker 0 (chief, saves the run)" if index == 0 else f"worker {index}"
            where = "" if index == 0 else f", log {os.path.join(self.log_dir, f'worker{index}.log')}"
            note = f" ({notes[index]})" if index in notes else ""
            lines.append(f"{role}: {_describe_exit(process.returncode)}{note}{where}")
        return lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, pytest_args = parse_args(argv)
    if not args.shared_network and os.environ.get(IN_PRIVATE_NETWORK) != "1":
        return _in_private_network(argv)
    if os.environ.get(IN_PRIVATE_NETWORK) == "1":
        _loopback_up()
    workers = Workers(args.workers, pytest_args, args.timeout, args.log_dir)
    print(f"bench.cluster: {args.workers} workers ({', '.join(workers.addresses)}), run {workers.run_name}",
          flush=True)
    for name in ("SIGINT", "SIGTERM"):  # each worker then stops after the case at hand, as a plain run does
        signal.signal(getattr(signal, name), lambda number, _frame: workers.stop(number))
    lines = workers.wait()
    for line in lines:
        print(f"bench.cluster: {line}", flush=True)
    codes = [process.returncode for process in workers.processes]
    return 0 if all(code == 0 for code in codes) else next(code for code in codes if code != 0) % 256 or 1

