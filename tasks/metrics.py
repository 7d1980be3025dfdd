"""Prometheus metrics of the volume, the backups and the drills: probe → typed model → metric families.

Every scrape probes afresh (:class:`HsfCollector`): nothing is cached between scrapes, so a figure is
never older than the scrape that shows it.

- **backup** — the repository itself, through the project's borg steps on the backup client:
  ``borg list`` (archives, checkpoints, the newest archive this project made: the last backup that
  completed) and ``borg info`` (what the repository stores).
- **drills** — the drills' and checks' recorded results: the latest ``hsf.*`` events on the Prefect
  server (``tasks/events.py``). The server is the record every flow run already writes — a drill emits
  its event with its figures (RTO, bytes and acknowledged writes lost) whoever started it (CLI,
  deployment, worker) and wherever it ran, and a reader elsewhere sees the same record; a file on the
  machine that ran the drill would be neither.
- **drbd** — ``/proc/drbd`` on every node over SSH (``tasks/drbd/steps.py``), and the kernel log of a
  node whose device is StandAlone, for a split-brain DRBD dropped the connection for.
- **pacemaker** — ``crm_mon`` on every node (``tasks/pacemaker/steps.py``) when ``cluster.manager`` is
  pacemaker.

A probe that fails yields ``hsf_probe_success{probe=…,target=…} 0`` and one log line; the scrape goes
on with the others. The mapping from models to metric families (:func:`families`) is pure.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from tasks.drbd.probes import DrbdState
from tasks.events import (
    BACKUP_FAILED,
    BACKUP_VERIFIED,
    DATA_LOST,
    FAILOVER_COMPLETED,
    HA_NODE_LOSS_COMPLETED,
    LINK_CUT_COMPLETED,
    RESTORE_FAILED,
    RESTORE_VERIFIED,
    SITE_LOSS_COMPLETED,
    SPLIT_BRAIN_RESOLVED,
    STACKED_FAILOVER_COMPLETED,
    backup_resource,
    cluster_resource,
)
from tasks.pacemaker.probes import ClusterStatus
from tasks.settings import DrbdSettings, Settings

LOG = logging.getLogger("hsf.metrics")
T = TypeVar("T")

Check = Literal["backup", "verify-data", "spot"]
DrillKind = str

# -- models ------------------------------------------------------------------------------------------


class ProbeOutcome(BaseModel):
    """One probe of one scrape: what was asked of which host, and whether it answered."""

    probe: str = Field(description="backup, drills, drbd, pacemaker.")
    target: str = Field(description="The repository, the Prefect API, or the node probed.")
    success: bool
    seconds: float = Field(description="How long the probe took.")
    error: str | None = Field(None, description="Its failure, one line.")


class RepositoryState(BaseModel):
    """The repository as borg lists it."""

    repository: str = Field(description="As the backup client names it (a path or ssh:// URL).")
    archives: int = Field(description="Archives, checkpoints left out.")
    checkpoints: int = Field(description="Checkpoint archives an interrupted backup left.")
    ours: int = Field(description="Archives named like this project's (the ones rotation manages).")
    newest_ours: datetime | None = Field(None, description="Time of the newest archive this project made.")
    oldest_ours: datetime | None = Field(
        None, description="Time of the oldest one: how long the repository has held data to verify."
    )
    stored_bytes: int = Field(description="What the repository stores: deduplicated, compressed.")
    original_bytes: int = Field(description="The archives' original size, all added up.")


class RecordedEvent(BaseModel):
    """An ``hsf.*`` event as the Prefect server recorded it."""

    name: str
    occurred: datetime
    payload: dict[str, Any] = Field(default_factory=dict)
    flow_run: str | None = Field(None, description="The flow run that emitted it (prefect.flow-run.<id>).")


class BackupCheck(BaseModel):
    """The latest result of one kind of backup check of one repository."""

    repository: str
    check: Check = Field(
        description="backup: the check after each backup (repository + new archive); verify-data: every "
        "archive's data read back (weekly); spot: a share of the files compared (daily)."
    )
    at: datetime = Field(description="When the latest check of this kind ended.")
    passed: bool
    last_passed: datetime | None = Field(None, description="When a check of this kind last passed.")


class DrillResult(BaseModel):
    """The latest run of one drill, as its events recorded it."""

    drill: DrillKind
    at: datetime
    passed: bool
    data_lost: bool | None = Field(None, description="None: the drill does not measure it (restore).")
    rto_s: float | None = None
    bytes_lost: int | None = None
    acked_lost: int | None = Field(None, description="Writes acknowledged after fsync that were lost.")
    write_outage_s: float | None = None


class DrbdDevice(BaseModel):
    """One DRBD device as one node sees it."""

    node: str
    resource: str
    state: DrbdState
    split_brain: bool = Field(False, description="StandAlone after a split-brain DRBD did not resolve.")


class PacemakerView(BaseModel):
    """The cluster as one node's crm_mon sees it (None: Pacemaker does not answer there)."""

    node: str
    status: ClusterStatus | None


class Snapshot(BaseModel):
    """Everything one scrape found."""

    probes: list[ProbeOutcome] = Field(default_factory=list)
    repositories: list[RepositoryState] = Field(default_factory=list)
    checks: list[BackupCheck] = Field(default_factory=list)
    drills: list[DrillResult] = Field(default_factory=list)
    drbd: list[DrbdDevice] = Field(default_factory=list)
    pacemaker: list[PacemakerView] = Field(default_factory=list)


# -- recorded results (pure) -------------------------------------------------------------------------


def parse_borg_info(text: str) -> tuple[int, int]:
    """``borg info --json REPO``: (bytes the repository stores, the archives' original bytes)."""
    stats = json.loads(text)["cache"]["stats"]
    return int(stats["unique_csize"]), int(stats["total_size"])


def check_kind(payload: dict[str, Any]) -> Check:
    """Which check an ``hsf.backup.verified|failed`` event is about, by the payload its flow gives it."""
    if payload.get("check") == "spot":
        return "spot"
    if payload.get("check") == "verify-data":
        return "verify-data"
    checked = payload.get("checked") or []
    if "archive" not in payload and any("every archive" in str(c) for c in checked):
        return (
            "verify-data"  # the weekly verify: {"checked": ["repository", "every archive (data verified)"]}
        )
    return "backup"


def backup_checks(repository: str, events: Iterable[RecordedEvent]) -> list[BackupCheck]:
    """The latest result of each kind of check of ``repository``, from its verified/failed events."""
    latest: dict[Check, RecordedEvent] = {}
    passed: dict[Check, datetime] = {}
    for event in events:
        if event.name not in (BACKUP_VERIFIED, BACKUP_FAILED):
            continue
        kind = check_kind(event.payload)
        if kind not in latest or event.occurred > latest[kind].occurred:
            latest[kind] = event
        if event.name == BACKUP_VERIFIED and (kind not in passed or event.occurred > passed[kind]):
            passed[kind] = event.occurred
    return [
        BackupCheck(
            repository=repository,
            check=kind,
            at=event.occurred,
            passed=event.name == BACKUP_VERIFIED,
            last_passed=passed.get(kind),
        )
        for kind, event in sorted(latest.items())
    ]


def _number(payload: dict[str, Any], key: str) -> float | None:
    value = payload.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(payload: dict[str, Any], key: str) -> int | None:
    value = _number(payload, key)
    return None if value is None else int(value)


def _failover(at: datetime, p: dict[str, Any]) -> DrillResult:
    lost = bool(_count(p, "bytes_lost") or _count(p, "acked_lost"))
    return DrillResult(
        drill="failover", at=at, passed=not lost, data_lost=lost, rto_s=_number(p, "rto_s"),
        bytes_lost=_count(p, "bytes_lost"), acked_lost=_count(p, "acked_lost"),
        write_outage_s=_number(p, "write_outage_s"),
    )  # fmt: skip


def _link_cut(at: datetime, p: dict[str, Any]) -> DrillResult:
    lost = bool(_count(p, "acked_lost"))
    return DrillResult(
        drill="link-cut", at=at, passed=not lost and not p.get("two_primaries"), data_lost=lost,
        acked_lost=_count(p, "acked_lost"), write_outage_s=_number(p, "write_outage_s"),
    )  # fmt: skip


def _ha_node_loss(at: datetime, p: dict[str, Any]) -> DrillResult:
    intact = bool(p.get("intact"))
    return DrillResult(
        drill="ha-node-loss", at=at, passed=intact, data_lost=not intact, acked_lost=_count(p, "acked_lost"),
        bytes_lost=_count(p, "lost_bytes"), write_outage_s=_number(p, "write_outage_s"),
    )  # fmt: skip


def _split_brain(at: datetime, p: dict[str, Any]) -> DrillResult:
    # discarding the victim's writes is what resolving a split-brain does: lost are only those gone for
    # good (the survivor's own, and discarded ones that were not saved aside) — the drill's acked_gone
    gone = (_count(p, "survivor_acked_lost") or 0) + (_count(p, "discarded_acked") or 0)
    gone -= _count(p, "rescued_acked") or 0
    lost = gone > 0 or not p.get("nodes_agree", False)
    return DrillResult(drill="split-brain", at=at, passed=not lost, data_lost=lost, acked_lost=gone)


def _site_loss(at: datetime, p: dict[str, Any]) -> DrillResult:
    lost = bool(_count(p, "rpo_records") or _count(p, "rpo_bytes") or p.get("failed"))
    return DrillResult(
        drill="site-loss", at=at, passed=not p.get("failed"), data_lost=lost, rto_s=_number(p, "service_s"),
        bytes_lost=_count(p, "rpo_bytes"), acked_lost=_count(p, "rpo_records"),
    )  # fmt: skip


def _lower_tier(at: datetime, p: dict[str, Any]) -> DrillResult:
    lost = bool(_count(p, "acked_lost"))
    return DrillResult(
        drill="lower-tier-failover", at=at, passed=not lost, data_lost=lost, rto_s=_number(p, "service_s"),
        acked_lost=_count(p, "acked_lost"),
    )  # fmt: skip


def _restore(at: datetime, p: dict[str, Any], passed: bool) -> DrillResult:
    return DrillResult(drill="restore", at=at, passed=passed)


# The event each drill emits when it ends (with its figures), and how they read. ``hsf.data.lost`` names
# its drill in the payload; the restore drill's two events are its verdict.
DRILL_EVENTS: dict[str, tuple[DrillKind, Callable[[datetime, dict[str, Any]], DrillResult]]] = {
    FAILOVER_COMPLETED: ("failover", _failover),
    LINK_CUT_COMPLETED: ("link-cut", _link_cut),
    HA_NODE_LOSS_COMPLETED: ("ha-node-loss", _ha_node_loss),
    SPLIT_BRAIN_RESOLVED: ("split-brain", _split_brain),
    SITE_LOSS_COMPLETED: ("site-loss", _site_loss),
    STACKED_FAILOVER_COMPLETED: ("lower-tier-failover", _lower_tier),
    RESTORE_VERIFIED: ("restore", lambda at, p: _restore(at, p, True)),
    RESTORE_FAILED: ("restore", lambda at, p: _restore(at, p, False)),
}
CLUSTER_DRILL_EVENTS = tuple(name for name, (kind, _) in DRILL_EVENTS.items() if kind != "restore")


def drill_results(events: Iterable[RecordedEvent]) -> list[DrillResult]:
    """The latest result of each drill. A drill whose latest run also emitted ``hsf.data.lost`` (from the
    same flow run, or later: the split-brain drill whose nodes disagree emits only that) lost data."""
    completed: dict[DrillKind, RecordedEvent] = {}
    lost: dict[DrillKind, RecordedEvent] = {}
    for event in events:
        if event.name == DATA_LOST:
            kind = str(event.payload.get("drill") or "unknown")
            if kind not in lost or event.occurred > lost[kind].occurred:
                lost[kind] = event
        elif event.name in DRILL_EVENTS:
            kind = DRILL_EVENTS[event.name][0]
            if kind not in completed or event.occurred > completed[kind].occurred:
                completed[kind] = event
    results = []
    for kind in sorted(set(completed) | set(lost)):
        done, lost_event = completed.get(kind), lost.get(kind)
        if done is not None:
            result = DRILL_EVENTS[done.name][1](done.occurred, done.payload)
        else:
            assert lost_event is not None
            reader = next((read for k, read in DRILL_EVENTS.values() if k == kind), None)
            result = (
                reader(lost_event.occurred, lost_event.payload)
                if reader
                else DrillResult(drill=kind, at=lost_event.occurred, passed=False)
            )
        if lost_event is not None and (
            done is None
            or lost_event.occurred >= done.occurred
            or (done.flow_run is not None and lost_event.flow_run == done.flow_run)
        ):
            result = result.model_copy(
                update={"passed": False, "data_lost": True, "at": max(result.at, lost_event.occurred)}
            )
        results.append(result)
    return results


# -- metric families (pure) --------------------------------------------------------------------------

PREFIX = "hsf"


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=list(labels))


def _stamp(at: datetime) -> float:
    return at.timestamp()


def families(snapshot: Snapshot) -> list[Metric]:
    """Every metric family of one scrape, from what it found (families without a sample are left out)."""
    found = [
        *_probe_families(snapshot.probes),
        *_repository_families(snapshot.repositories),
        *_check_families(snapshot.checks),
        *_drill_families(snapshot.drills),
        *_drbd_families(snapshot.drbd),
        *_pacemaker_families(snapshot.pacemaker),
    ]
    return [family for family in found if family.samples]


def _probe_families(probes: list[ProbeOutcome]) -> list[Metric]:
    success = _gauge(
        "probe_success", "Whether the probe answered in this scrape (1) or failed (0).", ["probe", "target"]
    )
    seconds = _gauge("probe_duration_seconds", "How long the probe took in this scrape.", ["probe", "target"])
    for p in probes:
        success.add_metric([p.probe, p.target], 1.0 if p.success else 0.0)
        seconds.add_metric([p.probe, p.target], p.seconds)
    return [success, seconds]


def _repository_families(repositories: list[RepositoryState]) -> list[Metric]:
    labels = ["repository"]
    last = _gauge(
        "backup_last_archive_timestamp_seconds",
        "Time of the newest archive this project made in the repository (borg list): the last backup that "
        "completed.",
        labels,
    )
    first = _gauge(
        "backup_first_archive_timestamp_seconds",
        "Time of the oldest archive this project made in the repository (borg list): since when it has "
        "held data that a verification must read back.",
        labels,
    )
    archives = _gauge(
        "backup_archives", "Archives in the repository (borg list; checkpoints left out).", labels
    )
    ours = _gauge("backup_project_archives", "Archives in the repository named like this project's.", labels)
    checkpoints = _gauge(
        "backup_checkpoint_archives",
        "Checkpoint archives in the repository: backups that were interrupted.",
        labels,
    )
    stored = _gauge(
        "backup_repository_size_bytes",
        "What the repository stores, deduplicated and compressed (borg info).",
        labels,
    )
    original = _gauge(
        "backup_original_size_bytes",
        "The original size of every archive in the repository, added up (borg info).",
        labels,
    )
    for r in repositories:
        if r.newest_ours is not None:
            last.add_metric([r.repository], _stamp(r.newest_ours))
        if r.oldest_ours is not None:
            first.add_metric([r.repository], _stamp(r.oldest_ours))
        archives.add_metric([r.repository], r.archives)
        ours.add_metric([r.repository], r.ours)
        checkpoints.add_metric([r.repository], r.checkpoints)
        stored.add_metric([r.repository], r.stored_bytes)
        original.add_metric([r.repository], r.original_bytes)
    return [last, first, archives, ours, checkpoints, stored, original]


def _check_families(checks: list[BackupCheck]) -> list[Metric]:
    labels = ["repository", "check"]
    verified = _gauge(
        "backup_last_verified_timestamp_seconds",
        "When a check of the repository last passed (hsf.backup.verified): check=backup after each backup, "
        "verify-data every archive's data read back, spot a share of the files compared.",
        labels,
    )
    last = _gauge(
        "backup_check_last_timestamp_seconds",
        "When the latest check of this kind ended, passed or not.",
        labels,
    )
    success = _gauge(
        "backup_check_last_success", "Whether the latest check of this kind passed (1) or failed (0).", labels
    )
    for c in checks:
        if c.last_passed is not None:
            verified.add_metric([c.repository, c.check], _stamp(c.last_passed))
        last.add_metric([c.repository, c.check], _stamp(c.at))
        success.add_metric([c.repository, c.check], 1.0 if c.passed else 0.0)
    return [verified, last, success]


def _drill_families(drills: list[DrillResult]) -> list[Metric]:
    labels = ["drill"]
    at = _gauge("drill_last_timestamp_seconds", "When the drill last ended (its recorded event).", labels)
    success = _gauge("drill_last_success", "Whether the drill's latest run passed (1) or failed (0).", labels)
    lost = _gauge(
        "drill_data_lost",
        "Whether the drill's latest run lost data (1: bytes or acknowledged writes gone).",
        labels,
    )
    rto = _gauge(
        "drill_rto_seconds", "The drill's latest recovery time: from the fault to service again.", labels
    )
    lost_bytes = _gauge("drill_lost_bytes", "Bytes the drill's latest run lost.", labels)
    acked = _gauge(
        "drill_acknowledged_writes_lost",
        "Writes acknowledged after fsync that the drill's latest run lost.",
        labels,
    )
    outage = _gauge(
        "drill_write_outage_seconds",
        "The longest time the application could not write in the drill's latest run.",
        labels,
    )
    for d in drills:
        at.add_metric([d.drill], _stamp(d.at))
        success.add_metric([d.drill], 1.0 if d.passed else 0.0)
        if d.data_lost is not None:
            lost.add_metric([d.drill], 1.0 if d.data_lost else 0.0)
        for family, value in (
            (rto, d.rto_s),
            (lost_bytes, d.bytes_lost),
            (acked, d.acked_lost),
            (outage, d.write_outage_s),
        ):
            if value is not None:
                family.add_metric([d.drill], float(value))
    return [at, success, lost, rto, lost_bytes, acked, outage]


def _drbd_families(devices: list[DrbdDevice]) -> list[Metric]:
    labels = ["node", "resource"]
    connection = _gauge(
        "drbd_connection_state",
        "The device's connection state as the node sees it (cs; 1 for the current one).",
        [*labels, "state"],
    )
    role = _gauge(
        "drbd_role", "The node's role for the resource (ro; 1 for the current one).", [*labels, "role"]
    )
    disk = _gauge(
        "drbd_disk_state", "The node's own disk state (ds; 1 for the current one).", [*labels, "state"]
    )
    peer_disk = _gauge(
        "drbd_peer_disk_state",
        "The peer's disk state as the node knows it (1 for the current one).",
        [*labels, "state"],
    )
    healthy = _gauge(
        "drbd_healthy", "Connected with both disks UpToDate (1): the data is on both nodes.", labels
    )
    out_of_sync = _gauge(
        "drbd_out_of_sync_bytes", "Data the node still has to resync to its peer (oos).", labels
    )
    progress = _gauge("drbd_resync_progress_ratio", "How far a running resync is (0 to 1).", labels)
    split = _gauge(
        "drbd_split_brain",
        "A split-brain DRBD detected and did not resolve: StandAlone until an operator does (1).",
        labels,
    )
    for d in devices:
        key, s = [d.node, d.resource], d.state
        connection.add_metric([*key, s.connection], 1.0)
        role.add_metric([*key, s.role], 1.0)
        disk.add_metric([*key, s.disk], 1.0)
        peer_disk.add_metric([*key, s.peer_disk], 1.0)
        healthy.add_metric(key, 1.0 if s.healthy else 0.0)
        if s.out_of_sync_kib is not None:
            out_of_sync.add_metric(key, s.out_of_sync_kib * 1024.0)
        if s.sync_percent is not None:
            progress.add_metric(key, s.sync_percent / 100)
        split.add_metric(key, 1.0 if d.split_brain else 0.0)
    return [connection, role, disk, peer_disk, healthy, out_of_sync, progress, split]


def _pacemaker_families(views: list[PacemakerView]) -> list[Metric]:
    up = _gauge("pacemaker_up", "Whether Pacemaker answered crm_mon on the node (1).", ["node"])
    quorate = _gauge("pacemaker_quorate", "Whether the node's partition has quorum (1).", ["node"])
    online = _gauge(
        "pacemaker_member_online",
        "Whether the node sees the member online and clean (1).",
        ["node", "member"],
    )
    failed = _gauge("pacemaker_failed_actions", "Failed resource actions the node's crm_mon lists.", ["node"])
    role = _gauge(
        "pacemaker_resource_role",
        "Where the node sees each resource run, in which role (1).",
        ["node", "resource", "member", "role"],
    )
    for v in views:
        up.add_metric([v.node], 0.0 if v.status is None else 1.0)
        if v.status is None:
            continue
        quorate.add_metric([v.node], 1.0 if v.status.quorate else 0.0)
        members = set(v.status.online())
        for member in v.status.nodes:
            online.add_metric([v.node, member], 1.0 if member in members else 0.0)
        failed.add_metric([v.node], float(len(v.status.failures)))
        for r in v.status.resources:
            if r.node:
                role.add_metric([v.node, r.id, r.node, r.role], 1.0)
    return [up, quorate, online, failed, role]


# -- probes ------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def probe_repository(settings: Settings) -> RepositoryState:
    """``borg list`` and ``borg info`` of the repository, run by the backup client (the flows' own steps)."""
    from tasks.borg import commands as borg
    from tasks.borg.remote import client_access
    from tasks.borg.rotation import is_checkpoint, is_ours
    from tasks.borg.steps import list_archives, passphrase, run_on

    metrics, access = settings.metrics, client_access(settings)
    secret = passphrase(settings)
    listed = list_archives.fn(
        access, secret, checkpoints=True, lock_wait=metrics.borg_lock_wait_s, timeout=metrics.probe_timeout_s
    )
    info_argv = borg.info_argv(access.url, lock_wait=metrics.borg_lock_wait_s)
    info = run_on(access, info_argv, secret, read_only=True, timeout=metrics.probe_timeout_s)
    stored, original = parse_borg_info(info.stdout)
    whole = [a for a in listed if not is_checkpoint(a.name)]
    ours = [a for a in whole if is_ours(settings.backup.archive_prefix, a.name)]
    return RepositoryState(
        repository=access.url,
        archives=len(whole),
        checkpoints=len(listed) - len(whole),
        ours=len(ours),
        newest_ours=max((a.time for a in ours), default=None),
        oldest_ours=min((a.time for a in ours), default=None),
        stored_bytes=stored,
        original_bytes=original,
    )


def _received(event: Any) -> RecordedEvent:
    flow_run = next((r.id for r in event.related if r.id.startswith("prefect.flow-run.")), None)
    occurred = event.occurred if event.occurred.tzinfo else event.occurred.replace(tzinfo=UTC)
    return RecordedEvent(name=event.event, occurred=occurred, payload=dict(event.payload), flow_run=flow_run)


# How many of an event's latest are read: one is the latest; the checks and data.lost are per kind.
PER_KIND_LIMIT = 50


def read_recorded_events(settings: Settings, repository: str) -> list[RecordedEvent]:
    """The latest recorded results: each drill's event about this cluster, the restore drill's and the
    checks' about the repository, from the Prefect server (``PREFECT_API_URL``, or the local one)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventOrder,
        EventResourceFilter,
    )

    since = datetime.now(UTC) - timedelta(days=settings.metrics.events_days)
    cluster, backups = cluster_resource(settings.cluster_name), backup_resource(repository)
    queries = [
        *((name, cluster, 1) for name in CLUSTER_DRILL_EVENTS),
        (DATA_LOST, cluster, PER_KIND_LIMIT),
        (RESTORE_VERIFIED, backups, 1),
        (RESTORE_FAILED, backups, 1),
        (BACKUP_VERIFIED, backups, PER_KIND_LIMIT),
        (BACKUP_FAILED, backups, PER_KIND_LIMIT),
    ]
    found: list[RecordedEvent] = []
    with get_client(sync_client=True) as client:
        for name, resource, limit in queries:
            page = client.read_events(
                EventFilter(
                    occurred=EventOccurredFilter(since=since, until=datetime.now(UTC)),
                    event=EventNameFilter(name=[name]),
                    resource=EventResourceFilter(id=[resource]),
                    order=EventOrder.DESC,
                ),
                limit=limit,
            )
            found += [_received(event) for event in page.events]
    return found


def resource_names(drbd: DrbdSettings) -> dict[int, str]:
    """The resource each of this project's minors belongs to: every volume's, and a stacked upper one."""
    names = {volume.minor: volume.resource for volume in (drbd.volume, *drbd.volumes)}
    if drbd.topology == "stacked":
        names[drbd.upper_minor] = drbd.upper_resource
    return names


def probe_drbd_node(settings: Settings, node: str, target: Any) -> list[DrbdDevice]:
    """Every device of this project's resources in the node's /proc/drbd; the kernel log only when one is
    StandAlone (a split-brain, or an operator's disconnect)."""
    from tasks.drbd import commands as cmd
    from tasks.drbd.probes import split_brain_unresolved
    from tasks.drbd.steps import drbd_states, run

    names, timeout = resource_names(settings.drbd), settings.metrics.probe_timeout_s
    states = drbd_states(target, timeout=timeout)
    kernel_log = None
    devices = []
    for minor, state in sorted(states.items()):
        resource = names.get(minor, f"drbd{minor}")
        split = False
        if state.connection == "StandAlone":
            if kernel_log is None:
                kernel_log = run(
                    target, cmd.kernel_log_argv(), read_only=True, quiet=True, timeout=timeout
                ).stdout
            split = split_brain_unresolved(kernel_log, resource)
        devices.append(DrbdDevice(node=node, resource=resource, state=state, split_brain=split))
    return devices


def probe_pacemaker_node(settings: Settings, node: str, target: Any) -> PacemakerView:
    from tasks.pacemaker.steps import cluster_status

    return PacemakerView(node=node, status=cluster_status(target, timeout=settings.metrics.probe_timeout_s))


def _timed(probe: str, target: str, work: Callable[[], T]) -> tuple[ProbeOutcome, T | None]:
    started = time.monotonic()
    try:
        value = work()
    except Exception as exc:  # a failed probe is a figure of the scrape, never a failed scrape
        error = _one_line(exc)
        LOG.warning("metrics: probe %s of %s failed: %s", probe, target, error)
        return ProbeOutcome(
            probe=probe, target=target, success=False, seconds=time.monotonic() - started, error=error
        ), None
    return ProbeOutcome(probe=probe, target=target, success=True, seconds=time.monotonic() - started), value


def take_snapshot(settings: Settings) -> Snapshot:
    """Probe everything ``metrics.probes`` names, at once (one thread per probe and node), under a
    read-only run context of its own: one executor, its SSH connections closed afterwards."""
    from tasks.borg.remote import client_access
    from tasks.cluster import host_targets
    from tasks.context import run_context

    wanted = set(settings.metrics.probes)
    snapshot = Snapshot()
    with run_context(settings, changes_state=False):
        repository = client_access(settings).url
        jobs: list[tuple[str, str, Callable[[], Any]]] = []
        if "backup" in wanted:
            jobs.append(("backup", repository, lambda: probe_repository(settings)))
        if "drills" in wanted:
            jobs.append(("drills", "prefect-api", lambda: read_recorded_events(settings, repository)))
        if "drbd" in wanted or ("pacemaker" in wanted and settings.cluster.manager == "pacemaker"):
            hosts = host_targets(settings)
            nodes = [*settings.node_names, *([settings.third_node] if settings.third_node else [])]
            for node in nodes:
                target = hosts[node]
                if "drbd" in wanted:
                    jobs.append(("drbd", node, partial(probe_drbd_node, settings, node, target)))
                if (
                    "pacemaker" in wanted
                    and settings.cluster.manager == "pacemaker"
                    and node in settings.node_names
                ):
                    jobs.append(("pacemaker", node, partial(probe_pacemaker_node, settings, node, target)))
        with ThreadPoolExecutor(max_workers=max(len(jobs), 1), thread_name_prefix="hsf-probe") as pool:
            futures = [
                (probe, pool.submit(contextvars.copy_context().run, _timed, probe, target, work))
                for probe, target, work in jobs
            ]
            for probe, future in futures:
                outcome, value = future.result()
                snapshot.probes.append(outcome)
                if value is None:
                    continue
                if probe == "backup":
                    snapshot.repositories.append(value)
                elif probe == "drills":
                    snapshot.checks += backup_checks(repository, value)
                    snapshot.drills += drill_results(value)
                elif probe == "drbd":
                    snapshot.drbd += value
                else:
                    snapshot.pacemaker.append(value)
    return snapshot


class HsfCollector(Collector):
    """Probes afresh on every scrape (``collect``); registered without a probe (``describe``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        yield from families(take_snapshot(self.settings))
