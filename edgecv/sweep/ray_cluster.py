"""The Ray cluster a sweep runs on: connecting (or starting a throwaway one), finding out what each
node is, and where the benchmarks may go.

A node that times benchmarks offers one benchmark slot, the custom resource ``edgecv_benchmark: 1``,
so at most one benchmark runs on it at a time; a board says which device it is with the node label
``edgecv/device=<name>`` (or a custom resource of that name). ``--on <name>`` sends every benchmark
to such nodes. Ray is imported here and in :mod:`.ray_executor` only, inside functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import socket
from dataclasses import dataclass, field
from typing import Any, Iterator

from edgecv.errors import BackendUnavailableError, InvalidOptionError, UserInputError

SLOT = "edgecv_benchmark"
DEVICE_LABEL = "edgecv/device"
CONNECT_TIMEOUT_S = 10.0
SURVEY_TIMEOUT_S = 60.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("ray", "edgecv[ray]", "the Ray executor needs Ray core") from None
    return ray


def check_reachable(address: str) -> None:
    """Ray's own connect retries for minutes against a wrong address; a plain TCP connect tells
    sooner. Addresses Ray resolves itself (``auto``, ``ray://``) are left to it."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserInputError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc})") from None


@contextlib.contextmanager
def connected(address: str) -> Iterator[Any]:
    """Ray, connected to the cluster at ``address`` (``local``: a throwaway one-node cluster on this
    machine with a benchmark slot); disconnected, and a throwaway cluster shut down, at exit."""
    ray = import_ray()
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "include_dashboard": False}
    # The executor reads every task's error and records it; the ones it drops on purpose (a task
    # cancelled because its point already failed) are not for Ray to log on the user's terminal.
    ignored = os.environ.get("RAY_IGNORE_UNHANDLED_ERRORS")
    os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] = "1"
    try:
        if address == "local":
            # "local" makes Ray start a new cluster even where one is already running on this machine.
            ray.init(address="local", num_cpus=len(os.sched_getaffinity(0)), resources={SLOT: 1}, **quiet)
        else:
            check_reachable(address)
            try:
                ray.init(address=address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserInputError(f"--ray {address}: cannot connect ({str(exc).splitlines()[0]})") from None
        try:
            yield ray
        finally:
            ray.shutdown()
    finally:
        if ignored is None:
            os.environ.pop("RAY_IGNORE_UNHANDLED_ERRORS", None)


def describe_node() -> dict[str, Any]:
    """What a node is, reported from inside a task running there."""
    import ray

    from edgecv.version import __version__

    ctx = ray.get_runtime_context()
    return {
        "node_id": ctx.get_node_id(),
        "device": ctx.get_node_labels().get(DEVICE_LABEL),
        "host": socket.gethostname(),
        "edgecv": __version__,
        "python": platform.python_version(),
        "ray": ray.__version__,
        "cores": len(os.sched_getaffinity(0)),
    }


@dataclass
class Node:
    node_id: str
    labels: dict[str, str]
    resources: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)  # describe_node()'s answer

    def is_device(self, name: str) -> bool:
        return self.labels.get(DEVICE_LABEL) == name or name in self.resources

    @property
    def cpus(self) -> int:
        return int(self.resources.get("CPU", 0))


def alive_nodes(ray: Any) -> list[Node]:
    return [
        Node(n["NodeID"], dict(n.get("Labels") or {}), dict(n.get("Resources") or {}))
        for n in ray.nodes()
        if n.get("Alive")
    ]


def survey(ray: Any) -> list[Node]:
    """Every alive node, each asked what it runs; a node whose edgecv, Python or Ray differs from
    the driver's would time or build something else than asked, so it is refused."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from edgecv.version import __version__

    nodes = alive_nodes(ray)
    probe = ray.remote(describe_node)
    refs = {
        n.node_id: probe.options(
            num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)
        ).remote()
        for n in nodes
    }
    _, slow = ray.wait(list(refs.values()), num_returns=len(refs), timeout=SURVEY_TIMEOUT_S)
    want = {"edgecv": __version__, "python": platform.python_version(), "ray": ray.__version__}
    for n in nodes:
        if refs[n.node_id] in slow:
            raise UserInputError(f"Ray node {n.node_id[:12]} did not answer within {SURVEY_TIMEOUT_S:.0f} s")
        try:
            n.info = ray.get(refs[n.node_id])
        except Exception as exc:  # the task could not even start there (no edgecv installed, …)
            cause = str(exc).strip().splitlines()[-1]
            raise UserInputError(f"Ray node {n.node_id[:12]} cannot run edgecv: {cause}") from None
        wrong = [f"{k} {n.info[k]} (driver: {v})" for k, v in want.items() if n.info.get(k) != v]
        if wrong:
            where = n.info.get("host") or n.node_id[:12]
            raise UserInputError(f"Ray node {where} runs {', '.join(wrong)}; install the driver's versions there")
    return nodes


@dataclass
class Placement:
    """Where benchmarks go: the Ray options of a benchmark task, and which nodes qualify."""

    on: str | None
    by_label: bool
    num_cpus: int

    def matches(self, node: Node) -> bool:
        return node.resources.get(SLOT, 0) >= 1 and (self.on is None or node.is_device(self.on))

    def task_options(self) -> dict[str, Any]:
        resources: dict[str, float] = {SLOT: 1}
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "resources": resources}
        if self.on is not None and self.by_label:
            opts["label_selector"] = {DEVICE_LABEL: self.on}
        elif self.on is not None:
            resources[self.on] = 0.001  # a device named by a resource: placed there, never blocked by it
        return opts

    def describe(self) -> str:
        return "a benchmark slot" if self.on is None else f"--on {self.on}"


def place_benchmarks(nodes: list[Node], on: str | None, threads: tuple[int | None, ...]) -> Placement:
    """The placement of ``--on`` on this cluster, or a one-line error naming what the nodes offer."""
    if on is not None and not on.strip():
        raise InvalidOptionError("--on takes a device name (a node's edgecv/device label or custom resource)")
    devices = sorted({n.labels[DEVICE_LABEL] for n in nodes if DEVICE_LABEL in n.labels})
    hint = f"devices in the cluster: {', '.join(devices)}" if devices else "no node carries an edgecv/device label"
    by_label = on is not None and any(n.labels.get(DEVICE_LABEL) == on for n in nodes)
    trial = Placement(on, by_label, 1)
    targets = [n for n in nodes if trial.matches(n)]
    if not targets:
        if on is not None and not any(n.is_device(on) for n in nodes):
            raise UserInputError(f"--on {on}: no Ray node carries the label {DEVICE_LABEL}={on} ({hint})")
        raise UserInputError(
            f"no Ray node for {trial.describe()} offers a benchmark slot: start it with "
            f"`ray start … --resources '{{\"{SLOT}\": 1}}'`"
        )
    # Ray's CPU count reserves room, it pins nothing: the task pins its cores itself. An engine
    # left to its own thread count gets every core of its node.
    cpus = min(n.cpus if None in threads else min(max(threads), n.cpus) for n in targets)
    return Placement(on, by_label, max(1, cpus))
