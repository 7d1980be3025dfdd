"""The link-cut drill: ``python -m flows.link_cut`` (cluster.manager = "pacemaker").

While the primary writes — each record acknowledged only after fsync — the replication link is cut
inside the secondary (nftables drops DRBD's TCP port; corosync's knet keeps the membership). DRBD's
fencing (``resource-and-stonith`` with crm-fence-peer.sh) must place a constraint that keeps the
outdated secondary from ever being promoted, writes go on, and the secondary never becomes Primary.
Then the link heals and the cluster returns to clean by itself: reconnected, resynced, the constraint
removed by crm-unfence-peer.sh, no split-brain. Every acknowledged record is read back on the primary
(the flow never switches roles behind the cluster), and the write outage the cut caused is measured
from the acknowledgements. Exits 1 if an acknowledged record was lost.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.setup import setup
from tasks.cli import run_cli
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.context import refuse_dry_run, run_context
from tasks.drbd import steps
from tasks.drbd.plan import Refused
from tasks.events import DATA_LOST, LINK_CUT_COMPLETED, cluster_resource, emit
from tasks.lab.host import wait_until
from tasks.network import cut_link, heal_link
from tasks.pacemaker import steps as pm_steps
from tasks.pictures import ack_timeline_png, save_picture
from tasks.settings import Settings, load_settings
from tasks.writes import AckedWrites, AckLog, Writer, acked_writes, check_writers


class LinkCutReport(BaseModel):
    resource: str
    primary: str
    secondary: str = Field(description="The node whose replication link was cut (inside it).")
    started_at: str
    detected_s: float = Field(description="Cut → the primary's DRBD lost the connection.")
    constraint_s: float = Field(description="Cut → crm-fence-peer.sh's constraint in the CIB.")
    outdated_s: float = Field(description="Cut → the primary sees the peer's disk Outdated.")
    held_s: float = Field(description="How long the link stayed cut.")
    acked_during_cut: int = Field(description="Records acknowledged while the link was cut.")
    max_write_s: float = Field(description="The slowest acknowledged write (write + fsync).")
    secondary_roles: list[str] = Field(description="Every role the secondary's DRBD reported meanwhile.")
    fencings: int = Field(description="Nodes fenced (STONITH) during the drill: the membership held.")
    resynced_s: float = Field(description="Heal → Connected and both disks UpToDate.")
    unfenced_s: float = Field(description="Heal → the constraint removed (crm-unfence-peer.sh).")
    writes: AckedWrites = Field(description="The primary's acknowledged records, read back (fault: the cut).")
    picture: str = Field("", description="The acknowledged records over time (PNG).")
    cluster_after: str

    @property
    def two_primaries(self) -> bool:
        return "Primary" in self.secondary_roles

    def answers(self) -> tuple[str, str]:
        w = self.writes
        nodes = " and ".join(sorted({c.node for c in w.checks}))
        lost = (
            f"No. All {w.acked} acknowledged writes ({self.acked_during_cut} of them while the link was "
            f"cut) read back intact on {nodes}."
            if not w.lost
            else f"YES: {w.lost} acknowledged writes ({w.lost_bytes:,} bytes) lost: "
            + "; ".join(c.summary() for c in w.checks if c.lost)
        )
        primaries = (
            f"No. {self.secondary} stayed {'/'.join(sorted(set(self.secondary_roles)))} throughout: DRBD "
            f"fenced it {self.constraint_s:.1f} s after the cut (constraint placed, its disk Outdated), "
            "no split-brain."
            if not self.two_primaries
            else f"YES: {self.secondary} became Primary while cut off."
        )
        return lost, primaries

    def render(self) -> str:
        lost, primaries = self.answers()
        rows = [
            ("cut", f"DRBD's link inside {self.secondary} at {self.started_at}"),
            ("detected by the primary", f"{self.detected_s:.1f} s"),
            ("fence constraint placed", f"{self.constraint_s:.1f} s"),
            ("peer disk Outdated", f"{self.outdated_s:.1f} s"),
            ("link held cut", f"{self.held_s:.1f} s"),
            ("writes acknowledged during the cut", str(self.acked_during_cut)),
            ("slowest acknowledged write", f"{self.max_write_s:.2f} s"),
            ("write outage", self.writes.outage.describe() if self.writes.outage else "not measured"),
            ("nodes fenced", str(self.fencings)),
            ("healed → resynced", f"{self.resynced_s:.1f} s"),
            ("healed → constraint removed", f"{self.unfenced_s:.1f} s"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(
            [
                f"Link-cut drill (Pacemaker), DRBD {self.resource}: {self.primary} writes, "
                f"{self.secondary} cut off",
                *(f"  {k:<{width}}  {v}" for k, v in rows),
                *(f"  {c.summary()}" for c in self.writes.checks),
                f"Cluster after: {self.cluster_after}",
                *([f"Picture: {self.picture}"] if self.picture else []),
                "",
                f"Was any acknowledged write lost?  {lost}",
                f"Were there ever two primaries?  {primaries}",
            ]
        )


@flow(name="link-cut-drill")
def link_cut_drill(settings: Settings | None = None) -> LinkCutReport:
    settings = settings or load_settings()
    refuse_dry_run(settings, "the link-cut drill", "its proof is a real cut of the replication link")
    if settings.cluster.manager != "pacemaker":
        raise Refused(
            "the link-cut drill proves the cluster manager's fencing: set cluster.manager = 'pacemaker' "
            "(without it a cut link leaves two disconnected nodes that nothing fences)"
        )
    with run_context(settings, changes_state=True):
        return _drill(settings)


def _drill(settings: Settings) -> LinkCutReport:
    log = get_run_logger()
    built = setup(settings)
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    cut = settings.link_cut
    primary = built.primary
    secondary = resource.peer_of(primary).name
    ports = [node.port for node in resource.nodes]  # each end's listening port
    minor = resource.node(primary).minor
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    directory = f"{settings.drbd.mountpoint}/linkcut-{started_at.replace(':', '')}"
    roles: set[str] = set()

    def watch_secondary() -> None:
        roles.add(steps.drbd_state(targets[secondary], minor).role)

    # Phase 1: in sync, then the writer starts and is seen acknowledging.
    steps.wait_synced(targets[primary], resource, settings.drbd.sync_timeout_s)
    fencings_before = {n: len(pm_steps.fencings_of(targets[primary], n)) for n in targets}
    acks = AckLog()
    max_s = 2 * cut.timeout_s + cut.hold_s + 60
    writer = Writer(targets[primary], directory, f"{primary}-1", acks, settings.writes, max_s)
    writer.start(settings.writes.first_acks, 120)
    try:
        # Phase 2: the cut; the primary's DRBD must fence the secondary and keep writing.
        acked_before_cut = len(acks)
        cut_at = time.monotonic()
        cut_link(targets[secondary], ports)
        seen: dict[str, float] = {}

        def fenced() -> bool:
            watch_secondary()
            state = steps.drbd_state(targets[primary], minor)
            at = round(time.monotonic() - cut_at, 2)
            if state.connection != "Connected":
                seen.setdefault("detected", at)
            if state.peer_disk == "Outdated":
                seen.setdefault("outdated", at)
            if (
                "detected" in seen
                and "constraint" not in seen
                and pm_steps.fence_constraints_on(targets[primary])
            ):
                seen["constraint"] = at
            return {"detected", "outdated", "constraint"} <= set(seen)

        wait_until(fenced, cut.timeout_s, f"DRBD on {primary} to fence {secondary}", interval_s=0.5)
        hold_until = time.monotonic() + cut.hold_s

        def held() -> bool:
            watch_secondary()
            return time.monotonic() >= hold_until

        wait_until(held, cut.hold_s + 30, "the end of the cut", interval_s=0.5)
        acked_during_cut = len(acks) - acked_before_cut
        held_s = round(time.monotonic() - cut_at, 1)
        log.info("%s fenced %s; %d writes acknowledged during the cut", primary, secondary, acked_during_cut)
    finally:
        heal_link(targets[secondary])  # never leave the link cut
    healed_at = time.monotonic()

    # Phase 3: the cluster returns to clean by itself.
    back: dict[str, float] = {}

    def clean() -> bool:
        watch_secondary()
        state = steps.drbd_state(targets[primary], minor)
        if state.connection == "StandAlone":
            raise pm_steps.SplitBrain(f"{primary}'s DRBD is StandAlone after the heal: {state.summary()}")
        at = round(time.monotonic() - healed_at, 2)
        if state.healthy:
            back.setdefault("resynced", at)
        if "resynced" in back and not pm_steps.fence_constraints_on(targets[primary]):
            back["unfenced"] = at
        return "unfenced" in back

    try:
        wait_until(
            clean, cut.timeout_s, "the link to heal: resync and the constraint removed", interval_s=1.0
        )
    finally:
        writer.stop()
    ended_at = time.monotonic()
    checks = check_writers(targets[primary], directory, acks, [writer.name], settings.writes.payload_bytes)
    writes = acked_writes(acks, checks, cut_at, ended_at)
    fencings = sum(
        len(pm_steps.fencings_of(targets[primary], n)) - before for n, before in fencings_before.items()
    )
    after = pm_steps.cluster_status(targets[primary])
    report = LinkCutReport(
        resource=resource.name,
        primary=primary,
        secondary=secondary,
        started_at=started_at,
        detected_s=seen["detected"],
        constraint_s=seen["constraint"],
        outdated_s=seen["outdated"],
        held_s=held_s,
        acked_during_cut=acked_during_cut,
        max_write_s=max((a.took_s for a in acks.acks()), default=0.0),
        secondary_roles=sorted(roles),
        fencings=fencings,
        resynced_s=back["resynced"],
        unfenced_s=back["unfenced"],
        writes=writes,
        cluster_after=after.summary() if after else "pacemaker does not answer",
    )
    png = ack_timeline_png(writes, f"Link cut: {primary} writes, {secondary} cut off", "link cut")
    picture = save_picture(png, settings.writes.reports_dir, f"link-cut-{resource.name}-{started_at}")
    report = report.model_copy(update={"picture": str(picture)})
    _publish(report, settings.cluster_name)
    return report


def _publish(report: LinkCutReport, cluster: str) -> None:
    lost, primaries = report.answers()
    create_markdown_artifact(
        key=f"link-cut-{report.resource}",
        markdown="\n\n".join(
            (
                f"# Link-cut drill: {report.primary} writes, {report.secondary} cut off",
                f"**Was any acknowledged write lost?** {lost}",
                f"**Were there ever two primaries?** {primaries}",
                *([f"Picture of the acknowledged writes: `{report.picture}`"] if report.picture else []),
                f"```\n{report.render()}\n```",
            )
        ),
        description=f"{report.writes.lost} acknowledged writes lost, "
        f"{'two primaries' if report.two_primaries else 'one primary'}",
    )
    create_table_artifact(
        key=f"link-cut-{report.resource}-verification",
        table=[check.row() for check in report.writes.checks],
        description="Acknowledged records read back on the primary",
    )
    summary = {
        "resource": report.resource,
        "primary": report.primary,
        "secondary": report.secondary,
        "acked": report.writes.acked,
        "acked_lost": report.writes.lost,
        "write_outage_s": report.writes.outage.gap_s if report.writes.outage else None,
        "two_primaries": report.two_primaries,
        "resynced_s": report.resynced_s,
    }
    emit(LINK_CUT_COMPLETED, resource=cluster_resource(cluster), payload=summary)
    if report.writes.lost:
        emit(
            DATA_LOST,
            resource=cluster_resource(cluster),
            payload={**summary, "drill": "link-cut", "lost_records": report.writes.lost_records()},
        )


def _run_drill(settings: Settings) -> int:
    report = link_cut_drill(settings)
    print(report.render())
    return 1 if report.writes.lost or report.two_primaries else 0


def main() -> int:
    return run_cli(_run_drill)


if __name__ == "__main__":
    sys.exit(main())
