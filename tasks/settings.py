"""Project settings: environment (``HSF_`` prefix, ``__`` for nesting) over an optional TOML file.

The TOML file is ``hsf.toml`` in the working directory, or the path in ``HSF_CONFIG``. Example::

    [lab]
    nodes = ["nodea", "nodeb"]
    memory_mib = 768

    HSF_LAB__MEMORY_MIB=1024 python -m flows.lab up

Bad values fail with one line per problem naming the setting (see :func:`describe_validation_error`).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import socket
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tasks.borg.rotation import Rotation
from tasks.drbd.model import (
    AfterSb0,
    BackingDisk,
    DrbdFencing,
    DrbdTuning,
    Minor,
    ResourceName,
    UpperProtocol,
    upper_name,
)
from tasks.executor import SshAccess
from tasks.fields import (
    AbsolutePath,
    HostAddress,
    Hostname,
    IpAddress,
    Port,
    check_address,
    check_hostname,
    ip_literal,
)
from tasks.ocfs2.model import ClusterName, HeartbeatThreshold, IdleTimeoutMs
from tasks.pacemaker.model import (
    SBD_AGENT,
    FenceAgentName,
    FenceParams,
    Sbd,
    ServiceIp,
    StonithDevice,
    TokenMs,
    default_stonith_timeout_s,
    stonith_devices,
    stonith_timeout_problem,
)

EMBEDDED = "embedded"


class LabSettings(BaseModel):
    """The embedded lab: VMs on a private libvirt inside a network namespace of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        "hsf",
        pattern=r"^[a-z][a-z0-9]{0,7}$",
        description="Lab name: prefix of every libvirt object, namespace and bridge the lab creates.",
    )
    nodes: tuple[str, ...] = Field(
        ("nodea", "nodeb"),
        min_length=1,
        max_length=8,
        description="Guest hostnames, in order; the first gets the lowest address.",
    )
    backup_server: str | None = Field(
        "backup",
        description=(
            "Hostname of a dedicated backup-server VM (the Borg repository host) booted beside the "
            "storage nodes; None boots no backup server."
        ),
    )
    third_node: str | None = Field(
        None,
        description=(
            "A third storage VM, booted after the backup server so no address moves: set from "
            "drbd.third_node when drbd.topology = 'stacked'; None boots none."
        ),
    )
    memory_mib: int = Field(512, ge=256, le=65536, description="Memory per VM in MiB.")
    vcpus: int = Field(1, ge=1, le=16, description="Virtual CPUs per VM.")
    data_disk_gib: int = Field(1, ge=1, le=1024, description="Size of each VM's extra (DRBD backing) disk.")
    data_disks: int = Field(
        2,
        ge=1,
        le=8,
        description=(
            "Data disks per lab VM, the guest's /dev/vdb, /dev/vdc, …: one per replicated volume "
            "(drbd.disk and each of drbd.volumes); blank ones cost nothing but a sparse file."
        ),
    )
    libvirt_uri: str = Field(
        EMBEDDED,
        description=(
            "'embedded' starts a private libvirtd inside the lab's own network namespace (or reuses one "
            "already answering on qemu:///system); any other value is a libvirt URI used as it is."
        ),
    )
    subnet: ipaddress.IPv4Network = Field(
        ipaddress.IPv4Network("10.77.0.0/24"),
        description="Isolated lab network (no forwarding); .1 is the bridge, nodes start at .11.",
    )
    accel: Literal["auto", "kvm", "tcg"] = Field(
        "auto", description="'auto' uses KVM only when a probe boot proves it works, else TCG."
    )
    tcg_tb_cache_mib: int = Field(
        128, ge=32, le=2048, description="TCG translation cache per VM; halves qemu's memory vs the default."
    )
    image_cache_dir: Path = Field(
        Path("/var/cache/ha-storage-flows/images"),
        description="Built guest images, one directory per recipe hash (kept across labs).",
    )
    state_dir: Path = Field(
        Path("/var/lib/ha-storage-flows/lab"),
        description="Per-lab files: disks, keys, known_hosts, console logs (removed by 'down').",
    )
    boot_timeout_s: float = Field(600.0, gt=0, description="How long to wait for every VM to answer SSH.")

    @field_validator("nodes")
    @classmethod
    def _valid_nodes(cls, nodes: tuple[str, ...]) -> tuple[str, ...]:
        for node in nodes:  # checked as a whole: one clear line per bad setting
            check_hostname(node)
        duplicates = sorted({n for n in nodes if nodes.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate node names: {', '.join(duplicates)}")
        return nodes

    @field_validator("backup_server", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value  # TOML and the environment have no null

    @model_validator(mode="after")
    def _backup_server_apart(self) -> LabSettings:
        if self.backup_server is not None:
            check_hostname(self.backup_server)
            if self.backup_server in self.nodes:
                raise ValueError(f"backup_server {self.backup_server!r} is also a storage node")
        if self.third_node is not None:
            check_hostname(self.third_node)
            if self.third_node in (*self.nodes, self.backup_server):
                raise ValueError(
                    f"the third node {self.third_node!r} is a lab VM already: name a VM of its own "
                    "(e.g. nodec)"
                )
        return self

    @field_validator("subnet")
    @classmethod
    def _room_for_nodes(cls, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if subnet.prefixlen > 26:
            raise ValueError(f"{subnet} is too small: use a /26 or larger")
        return subnet

    @field_validator("libvirt_uri")
    @classmethod
    def _uri_shape(cls, uri: str) -> str:
        if uri != EMBEDDED and "://" not in uri:
            raise ValueError(f"{uri!r} is neither 'embedded' nor a libvirt URI such as qemu:///system")
        return uri

    @property
    def embedded(self) -> bool:
        return self.libvirt_uri == EMBEDDED

    @property
    def bridge_address(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 1

    @property
    def machines(self) -> tuple[str, ...]:
        """Every VM of the lab: the storage nodes, then the backup server, then a third storage node."""
        extra = (self.backup_server, self.third_node)
        return self.nodes + tuple(machine for machine in extra if machine)

    @property
    def data_disk_devices(self) -> tuple[str, ...]:
        """The data disks as every storage VM names them: virtio disks in PCI slot order after the root
        disk (the shared SBD disk sits in the last slot, after them)."""
        return tuple(f"/dev/vd{chr(ord('b') + index)}" for index in range(self.data_disks))

    def address_of(self, machine: str) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 11 + self.index_of(machine)

    def index_of(self, machine: str) -> int:
        try:
            return self.machines.index(machine)
        except ValueError:
            raise UnknownNodeError(machine, self.machines) from None


def resolve_address(address: str) -> IpAddress:
    """The IP address DRBD and o2cb are given for ``address``: an IP literal as it is (no lookup at all),
    a DNS name resolved now, once (IPv4 preferred when the name has both families).

    Raises ValueError (shape) or OSError (the name does not resolve).
    """
    check_address(address)
    literal = ip_literal(address)
    if literal is not None:
        return literal
    found = [
        ipaddress.ip_address(sockaddr[0])
        for _family, _type, _proto, _canonname, sockaddr in socket.getaddrinfo(
            address, None, type=socket.SOCK_STREAM
        )
    ]
    if not found:
        raise OSError(f"no address for {address!r}")
    return min(found, key=lambda ip: ip.version)  # stable: the resolver's order within a family


class InventoryHost(SshAccess):
    """A real host of the user's cluster, reached over SSH (the fields of :class:`SshAccess`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Hostname = Field(description="The host's hostname (DRBD and OCFS2 match nodes by it).")
    replication_address: HostAddress | None = Field(
        None,
        description=(
            "Address DRBD and o2cb replicate over (an IPv4/IPv6 address, or a DNS name resolved once when "
            "the settings load); None: the SSH address."
        ),
    )
    replication_port: Port | None = Field(
        None, description="DRBD replication TCP port of this host; None: drbd.port."
    )

    _replication_ip: IpAddress | None = PrivateAttr(None)

    @field_validator("key_file", "known_hosts")
    @classmethod
    def _file_exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        """Checked when the settings load, not when the first connection fails (and is retried)."""
        if path is not None and not path.is_file():
            raise ValueError(f"{info.field_name} {path} does not exist (or is not a file)")
        return path

    @model_validator(mode="after")
    def _resolve_replication_address(self) -> InventoryHost:
        """Resolved here, once: a name that does not resolve is one line now, not a traceback later."""
        if self.replication_address is not None:
            field, address, hint = "replication address", self.replication_address, "give an IP address"
        else:
            field, address = "address", self.address
            hint = "give an IP address, or set replication_address"
        try:
            self._replication_ip = resolve_address(address)
        except ValueError as exc:
            raise ValueError(f"inventory host {self.name}: {field} {exc}") from None
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(
                f"inventory host {self.name}: {field} {address!r} does not resolve ({reason}): {hint}"
            ) from None
        return self

    @property
    def replication_ip(self) -> IpAddress:
        """The IP address DRBD and o2cb use for this host (``replication_address``, else ``address``,
        resolved when the settings loaded)."""
        assert self._replication_ip is not None  # set by the model validator
        return self._replication_ip


class VolumeSettings(BaseModel):
    """One more replicated volume on the same two nodes: a DRBD resource of its own (name, minor, port,
    backing disk), replicating and drilled like the first, with the ``[drbd]`` tuning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: ResourceName = Field(description="DRBD resource name.")
    port: Port = Field(description="Replication TCP port on every node.")
    disk: BackingDisk = Field(description="Backing disk (or partition) on every node.")
    minor: Minor = Field(description="The volume is /dev/drbd<minor>.")
    mountpoint: AbsolutePath = Field(description="Where the primary mounts it.")


VOLUME_FIELDS = tuple(VolumeSettings.model_fields)


class DrbdSettings(DrbdTuning):
    """The replicated volume the setup and failover flows build (and how it replicates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: ResourceName = Field("r0", description="DRBD resource name.")
    port: Port = Field(7789, description="Replication TCP port on every node.")
    disk: BackingDisk = Field("/dev/vdb", description="Backing disk on every node.")
    minor: Minor = Field(0, description="The volume is /dev/drbd<minor>.")
    fstype: Literal["ext4", "xfs"] = Field("ext4", description="Filesystem made on the replicated volume.")
    mountpoint: AbsolutePath = Field("/mnt/r0", description="Where the primary mounts the volume.")
    initial_sync: Literal["full", "skip"] = Field(
        "full",
        description=(
            "'full' copies the whole disk to the peer; 'skip' declares blank disks identical "
            "(new-current-uuid --clear-bitmap) and is only allowed on disks with no data."
        ),
    )
    force_create_md: bool = Field(
        False, description="Write DRBD metadata even over a disk that holds a filesystem (destroys it)."
    )
    adopt_existing: bool = Field(
        False,
        description=(
            "Replace a resource file (or running resource) that differs from ours: the old file is kept as "
            "<file>.hsf-<time>, and a live resource changes only when Connected and UpToDate on every node."
        ),
    )
    install_packages: bool = Field(
        False,
        description=(
            "Install missing tools (drbd-utils, xfsprogs) with apt-get on the nodes; otherwise a missing "
            "tool stops the setup before it changes anything."
        ),
    )
    connect_timeout_s: float = Field(120.0, gt=0, description="How long to wait for the peers to connect.")
    sync_timeout_s: float = Field(1800.0, gt=0, description="How long to wait for a (re)sync to finish.")
    topology: Literal["two-node", "stacked"] = Field(
        "two-node",
        description=(
            "'two-node': the volume on two nodes. 'stacked': a third copy on drbd.third_node through an "
            "upper resource (<resource>-u) stacked on the two-node one, which holds the filesystem."
        ),
    )
    third_node: Hostname = Field(
        "nodec",
        description=(
            "topology 'stacked': the third node (in the lab a VM of that name, booted after the backup "
            "server; on real hosts an inventory host, which is then not a node of the two-node resource)."
        ),
    )
    upper_protocol: UpperProtocol = Field(
        "A",
        description=(
            "topology 'stacked': A lets the lower Primary go on without waiting for the third node (a "
            "distant site; writes in flight can be lost with the site); C waits for it (nothing acknowledged "
            "is lost)."
        ),
    )
    stacked_address: ipaddress.IPv4Interface | ipaddress.IPv6Interface | None = Field(
        None,
        description=(
            "topology 'stacked': the upper resource's address with its prefix length (e.g. 192.0.2.10/24), "
            "added by setup on the lower Primary and moved with that role; no host may have it. None: in the "
            "lab the subnet's .10; on real hosts it must be set."
        ),
    )
    stacked_port: Port = Field(7790, description="topology 'stacked': the upper resource's TCP port.")
    upper_minor: Minor = Field(
        10, description="topology 'stacked': the upper device is /dev/drbd<upper_minor> (the filesystem's)."
    )
    volumes: tuple[VolumeSettings, ...] = Field(
        (),
        max_length=15,
        description=(
            "More volumes beside the one above ([[drbd.volumes]]: resource, port, disk, minor, mountpoint), "
            "each a DRBD resource of its own on the same two nodes with the same tuning: set up "
            "concurrently, failed over together by the drill (a lost node loses all of them)."
        ),
    )

    @model_validator(mode="after")
    def _room_for_the_upper_name(self) -> DrbdSettings:
        if self.topology == "stacked" and len(self.upper_resource) > 32:
            raise ValueError(
                f"resource {self.resource!r} is too long for a stacked volume: its upper resource "
                f"{self.upper_resource!r} must fit DRBD's 32 characters"
            )
        return self

    @model_validator(mode="after")
    def _volumes_apart(self) -> DrbdSettings:
        if self.volumes and self.topology == "stacked":
            raise ValueError("drbd.volumes: a stacked volume is built alone; set topology 'two-node'")
        every = [self.volume, *self.volumes]
        for field in VOLUME_FIELDS:
            seen: dict[object, str] = {}
            for volume in every:
                value = getattr(volume, field)
                if value in seen and field == "resource":
                    raise ValueError(f"drbd.volumes: resource {value} is named twice")
                if value in seen:
                    raise ValueError(
                        f"drbd.volumes: {volume.resource} has the {field} of {seen[value]} ({value}): "
                        "each volume needs its own"
                    )
                seen[value] = volume.resource
        return self

    @property
    def volume(self) -> VolumeSettings:
        """The first volume's own fields."""
        return VolumeSettings(**{field: getattr(self, field) for field in VOLUME_FIELDS})

    @property
    def upper_resource(self) -> str:
        """The upper resource's name (topology 'stacked')."""
        return upper_name(self.resource)


class HaSettings(BaseModel):
    """Dual-primary DRBD with OCFS2 on top (the high-availability mode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster_name: ClusterName = Field("hsfcl", description="o2cb cluster name.")
    o2cb_port: Port = Field(7777, description="o2net interconnect TCP port.")
    heartbeat_threshold: HeartbeatThreshold = Field(
        7, description="o2cb disk heartbeat iterations (2 s each); default 31 stalls ~67 s on node loss."
    )
    idle_timeout_ms: IdleTimeoutMs = Field(
        10000, description="o2net idle timeout; default 30000. Lower = shorter stall, more false alarms."
    )
    after_sb_0pri: AfterSb0 = Field(
        "discard-zero-changes", description="Split-brain auto-recovery when neither node is primary."
    )
    after_sb_1pri: Literal["disconnect", "consensus", "discard-secondary"] = Field(
        "discard-secondary", description="Split-brain auto-recovery when one node is primary."
    )
    after_sb_2pri: Literal["disconnect"] = Field(
        "disconnect", description="Both primary: never resolved automatically (data on both sides)."
    )
    staging_dir: AbsolutePath = Field(
        "/var/lib/hsf/upgrade-staging",
        description="Where the primary keeps the ext4 volume's files while the volume becomes OCFS2.",
    )


class SplitBrainSettings(BaseModel):
    """The split-brain drill and how it is resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    victim: str | None = Field(
        None,
        description=(
            "Node whose changes are discarded (after they are saved aside); default: the node that was "
            "secondary before the split, i.e. the one promoted while the link was down."
        ),
    )
    rescue_dir: AbsolutePath = Field(
        "/var/lib/hsf/split-brain",
        description="Where the victim's diverged files are saved before DRBD discards them.",
    )
    detect_timeout_s: float = Field(
        120.0, gt=0, description="How long to wait for DRBD to report the split-brain."
    )


BlockName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")]  # Prefect's block slugs


class BackupHooks(BaseModel):
    """Commands around a backup and a restore drill (``[backup.hooks]``): each stage names a prefect-shell
    ShellOperation block, run on the backup client (``tasks/borg/hooks.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    before_backup: BlockName | None = Field(
        None, description="Runs before borg create (a database dump); its failure stops the backup."
    )
    after_backup: BlockName | None = Field(None, description="Runs after the archive is stored and checked.")
    on_error: BlockName | None = Field(
        None, description="Runs when a backup or a restore drill fails, whatever failed (a hook too)."
    )
    before_restore: BlockName | None = Field(None, description="Runs before a restore drill.")
    after_restore: BlockName | None = Field(None, description="Runs after a restore drill that passed.")
    secret_env: dict[str, BlockName] = Field(
        default_factory=dict,
        description="Environment of every hook from Prefect Secret blocks (name → block), masked in logs.",
    )
    timeout_s: float = Field(3600.0, gt=0, le=86400, description="How long one hook may run.")

    @field_validator("secret_env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return env


PgIdentifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")]


class PostgresDump(BaseModel):
    """PostgreSQL databases dumped into the sources before each backup (``[backup.postgresql]``), on the
    backup client, and restored into a scratch database by every restore drill (``tasks/postgres.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    databases: tuple[PgIdentifier, ...] = Field((), description="Databases to dump; none: no dump.")
    dump_dir: AbsolutePath | None = Field(
        None,
        description="Where the dumps are written (mode 0700), inside the sources; default "
        "<first source>/.hsf-postgresql. They exist only while a backup or a drill archives them.",
    )
    host: str = Field("127.0.0.1", min_length=1, description="Server address, or its socket directory.")
    port: int = Field(5432, ge=1, le=65535)
    user: PgIdentifier = Field(
        "postgres", description="Role that dumps, and restores into scratch databases."
    )
    password_block: BlockName | None = Field(
        None, description="Prefect Secret block with the role's password (none: peer or trust auth)."
    )


class BackupSettings(BaseModel):
    """The Borg repository and what goes into it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client: str = Field(
        "local",
        description=(
            "Where borg runs and the sources live: 'local' (this machine) or a host of the cluster "
            "(a lab VM or an inventory host), reached over SSH."
        ),
    )
    server: str | None = Field(
        None,
        description=(
            "Backup server holding the repository (the lab's backup VM or an inventory host). The client "
            "reaches it with a key of its own restricted to 'borg serve --restrict-to-path <repository>' "
            "(append-only unless append_only is false). None: the repository is a path on the client."
        ),
    )
    server_user: str = Field(
        "borg",
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="Account on the server that owns the repository.",
    )
    append_only: bool = Field(
        True,
        description=(
            "The client's key may add archives but never remove data; pruning and compaction then run on "
            "the server itself."
        ),
    )
    client_key: AbsolutePath = Field(
        "/root/.ssh/hsf-borg",
        description="The client's SSH key for the server (generated on the client if absent).",
    )
    repository: AbsolutePath = Field(
        "/var/backups/hsf-borg",
        description="Path of the Borg repository: on the server when one is set, else on the client.",
    )
    sources: tuple[str, ...] = Field(("/home",), min_length=1, description="Paths backed up.")
    archive_prefix: str = Field("home", pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="Archive name prefix.")
    encryption: Literal["repokey-blake2", "repokey", "keyfile-blake2", "none"] = Field(
        "repokey-blake2", description="Repository encryption mode (authenticated, BLAKE2b)."
    )
    passphrase_block: str | None = Field(
        None, description="Prefect Secret block holding the passphrase; default '<cluster>-borg-passphrase'."
    )
    key_export_path: AbsolutePath = Field(
        "/var/backups/hsf-borg.key", description="Where `borg key export` writes the key."
    )
    rotation: Rotation = Field(
        default_factory=Rotation, description="What rotate keeps (preview shows) of this project's archives."
    )
    restore_drill: Literal["scratch", "in-place"] = Field(
        "scratch",
        description=(
            "'scratch' restores into scratch_dir and compares with the sources, which it never touches; "
            "'in-place' damages the sources and restores over them — only after the same archive was "
            "restored into scratch_dir intact, and with a safety copy in safety_dir until it is verified."
        ),
    )
    scratch_dir: AbsolutePath = Field(
        "/var/tmp/hsf-restore-drill", description="Where the restore drill extracts (on the client)."
    )
    safety_dir: AbsolutePath = Field(
        "/var/tmp/hsf-restore-safety",
        description="In-place drill: copy of the sources kept until the restore is verified (on the client).",
    )
    spot_check_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description=(
            "Spot check: the share of the source files read back from the newest archive and compared by "
            "content (at least one file)."
        ),
    )
    spot_check_count_tolerance_pct: float = Field(
        5.0,
        ge=0,
        le=100,
        description=(
            "Spot check: how far apart the archive's and the sources' file counts may be (% of the sources')."
        ),
    )
    lock_wait_s: int = Field(
        600, ge=1, le=86400, description="How long borg waits for the repository lock held by another run."
    )
    hooks: BackupHooks = Field(default_factory=BackupHooks, description="Commands around backups and drills.")
    postgresql: PostgresDump = Field(
        default_factory=PostgresDump, description="Databases dumped into the sources before each backup."
    )

    @model_validator(mode="after")
    def _dumps_inside_the_sources(self) -> BackupSettings:
        directory = self.postgresql.dump_dir
        if directory is not None and not any(
            directory.rstrip("/").startswith(source.rstrip("/") + "/") for source in self.sources
        ):
            raise ValueError(
                f"postgresql.dump_dir {directory} is not inside the sources ({', '.join(self.sources)})"
            )
        return self

    @property
    def dump_dir(self) -> str:
        """Where the PostgreSQL dumps go: inside the first source unless set."""
        return self.postgresql.dump_dir or f"{self.sources[0].rstrip('/')}/.hsf-postgresql"


class FencingSettings(FenceParams):
    """Node fencing (STONITH) of the Pacemaker cluster (``[cluster.fencing]``).

    The lab fences with SBD (fence_sbd on a shared disk plus each VM's watchdog). Real hosts name their
    fence agent, with parameters shared by every node (``params``, ``secret_params``) and per node
    (``[cluster.fencing.nodes.<name>]``, e.g. each BMC's ``ip``)::

        [cluster.fencing]
        agent = "fence_ipmilan"
        params = { username = "admin", lanplus = "1" }
        [cluster.fencing.nodes.store1]
        params = { ip = "10.0.9.101" }
        secret_params = { password = "..." }
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stonith: bool = Field(
        True,
        description=(
            "false DISABLES NODE FENCING (stonith-enabled=false; DRBD then fences with resource-only): a "
            "node that is cut off but still running can keep writing while the other is promoted, which "
            "means split-brain and lost writes. Every run that builds the cluster warns about it. Only for "
            "a test cluster that has no fence device at all."
        ),
    )
    agent: FenceAgentName | None = Field(
        None,
        description=(
            "The fence agent that powers a node off, e.g. 'fence_ipmilan' (fence-agents), with its "
            "parameters in params / secret_params (every node) and nodes (per node). None: 'fence_sbd' "
            "on the sbd disk — the lab's default; real hosts (target 'inventory') must name one."
        ),
    )
    nodes: dict[Hostname, FenceParams] = Field(
        default_factory=dict,
        description=(
            "Per-node agent parameters over the shared ones (fence_ipmilan: each node's BMC ip, and its "
            "username/password when they differ): one fence device per node, never run on the node it "
            "fences. Empty: one device fences every node (fence_sbd; an agent given the node as plug)."
        ),
    )
    sbd: Sbd = Field(
        default_factory=Sbd,
        description="SBD, for the agent fence_sbd: the shared disk, the watchdog and the msgwait timeouts.",
    )
    stonith_timeout_s: int | None = Field(
        None,
        ge=10,
        le=3600,
        description=(
            "pacemaker's stonith-timeout: how long one fencing may take before it is retried. None: 60 s "
            "(as measured), or with fence_sbd twice (msgwait + 4 s + priority-fencing-delay 5 s) when that "
            "is longer. With fence_sbd a set value must exceed msgwait + 4 s + 5 s (fence_sbd measured "
            "msgwait + ~3 s)."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> FencingSettings:
        if not self.stonith and (self.agent or self.nodes or self.params or self.secret_params):
            raise ValueError(
                "stonith is false but a fence agent or its parameters are set: remove one or the other"
            )
        if self.nodes and self.effective_agent == SBD_AGENT:
            raise ValueError(
                "nodes (per-node fence parameters) need an agent that fences one node per device, e.g. "
                "agent = 'fence_ipmilan'; fence_sbd fences every node from the shared disk"
            )
        if self.stonith_timeout_s is not None and self.effective_agent == SBD_AGENT:
            problem = stonith_timeout_problem(self.stonith_timeout_s, self.sbd.fence_duration_s)
            if problem:
                raise ValueError(f"{problem} (sbd.msgwait_s is {self.sbd.msgwait_s})")
        return self

    @property
    def effective_agent(self) -> str:
        """The fence agent in effect: the one named, else fence_sbd."""
        return self.agent or SBD_AGENT

    @property
    def timeout_s(self) -> int:
        """The stonith-timeout in effect (``stonith_timeout_s`` or its computed default)."""
        if self.stonith_timeout_s is not None:
            return self.stonith_timeout_s
        sbd = self.effective_agent == SBD_AGENT
        return default_stonith_timeout_s(self.sbd.fence_duration_s if sbd else None)

    def devices(self, nodes: tuple[str, ...]) -> tuple[StonithDevice, ...]:
        """The fence devices for ``nodes`` (none when STONITH is opted out)."""
        if not self.stonith:
            return ()
        return stonith_devices(self.effective_agent, nodes, self, self.nodes, self.sbd)


class ClusterSettings(BaseModel):
    """How flows share the cluster, and the cluster manager that fails over by itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: BlockName | None = Field(
        None,
        description=(
            "The cluster's name on a Prefect server many clusters share: its saved blocks "
            "(hsf-cluster/<name>…), its secrets (<name>-drbd-r0, <name>-borg-passphrase) and its events "
            "(hsf.cluster.<name>). None: the lab's name, or 'inventory'."
        ),
    )
    lock_timeout_s: float = Field(
        3600.0,
        ge=0,
        description=(
            "How long a state-changing flow waits for another one on the same cluster to finish before "
            "it gives up (they never act on the same nodes at once)."
        ),
    )
    lock_dir: Path = Field(
        Path("/run/lock/ha-storage-flows"),
        description="Where the cluster's lock file lives on the control host (released if a run dies).",
    )
    manager: Literal["none", "pacemaker"] = Field(
        "none",
        description=(
            "'pacemaker': flows.setup also builds a Pacemaker + Corosync cluster that fences a lost node "
            "and promotes and mounts the survivor by itself (DRBD fencing resource-and-stonith); 'none': "
            "DRBD alone, and the failover drill promotes the survivor itself."
        ),
    )
    token_ms: TokenMs = Field(
        3000,
        description=(
            "Corosync totem token in ms: a node silent this long is declared lost (a new membership forms "
            "1.2 x token later). 3000, corosync 3's default, was measured on the TCG lab: lost at +3.0 s, "
            "new membership at +6.1-6.6 s, VM freezes of up to 4.5 s survived without fencing. 1000 "
            "fenced a node frozen for 2.5 s there (a false fencing): do not lower it on slow or busy hosts."
        ),
    )
    start_timeout_s: float = Field(
        300.0,
        gt=0,
        description=(
            "With manager 'pacemaker': how long setup waits for the nodes to join and for Pacemaker to "
            "promote and mount the volume (measured on the TCG lab: 44-70 s from a cold start)."
        ),
    )
    service_ip: ServiceIp | None = Field(
        None,
        description=(
            "With manager 'pacemaker': an address the cluster brings up on the node that has the volume "
            "mounted (IPaddr2), with its prefix length, e.g. '10.0.0.50/24'; None: no service IP."
        ),
    )
    fencing: FencingSettings = Field(
        default_factory=FencingSettings,
        description="Node fencing (STONITH) of the Pacemaker cluster: SBD in the lab, your agent elsewhere.",
    )

    @field_validator("service_ip", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value  # TOML and the environment have no null

    @model_validator(mode="after")
    def _service_ip_needs_a_manager(self) -> ClusterSettings:
        if self.service_ip is not None and self.manager != "pacemaker":
            raise ValueError(
                "service_ip is set but manager is 'none': only the cluster manager moves a service IP "
                "(set manager = 'pacemaker', or leave service_ip unset)"
            )
        return self

    @property
    def drbd_fencing(self) -> DrbdFencing | None:
        """DRBD's fencing policy under the cluster manager: resource-and-stonith (I/O freezes until the
        peer is fenced or outdated; resource-only measured a split-brain in a full partition), or
        resource-only when STONITH was opted out (nothing would ever confirm a fencing); None without one.
        """
        if self.manager != "pacemaker":
            return None
        return "resource-and-stonith" if self.fencing.stonith else "resource-only"

    @property
    def stonith_warning(self) -> str | None:
        """The line every run that builds the cluster logs loudly when STONITH was opted out."""
        if self.manager != "pacemaker" or self.fencing.stonith:
            return None
        return (
            "STONITH IS DISABLED (cluster.fencing.stonith = false): no node is fenced; a node that is cut "
            "off but still running can keep writing while the other is promoted (split-brain, lost writes)"
        )


# ``{node}`` / ``{address}`` in a power command's arguments; ``${VAR}`` and ``{}`` are the program's own.
POWER_PLACEHOLDER = re.compile(r"(?<!\$)\{(\w+)\}")
POWER_FIELDS = ("node", "address")


def _check_power_command(argv: tuple[str, ...]) -> tuple[str, ...]:
    """Placeholders checked when the settings load: a typo in power_on_command must not surface only
    after the node was powered off."""
    unknown = sorted({name for part in argv for name in POWER_PLACEHOLDER.findall(part)} - set(POWER_FIELDS))
    if unknown:
        names = ", ".join(f"{{{name}}}" for name in unknown)
        raise ValueError(f"unknown placeholder {names} in {list(argv)} (use {{node}}, {{address}})")
    return argv


# An argv run on this machine, with {node} and {address} filled in per element (never a shell line).
PowerCommand = Annotated[tuple[str, ...], AfterValidator(_check_power_command)]


class FailoverSettings(BaseModel):
    """The failover drill."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fault: Literal["auto", "none", "destroy", "sysrq-poweroff", "sysrq-crash", "command"] = Field(
        "auto",
        description=(
            "How the primary is killed: 'destroy' pulls the plug on a lab VM (libvirt destroy); "
            "'sysrq-poweroff' powers off a real host at once, 'sysrq-crash' panics its kernel; 'command' "
            "runs power_off_command on this machine (ipmitool, a hypervisor CLI); 'none' refuses to run "
            "the drill; 'auto' = 'destroy' in the lab and 'none' for real hosts (opt in explicitly)."
        ),
    )
    power_off_command: PowerCommand = Field(
        (),
        description=(
            "fault 'command': the argv run on this machine to cut the primary's power; {node} and "
            "{address} are replaced by the killed node's name and SSH address."
        ),
    )
    power_on_command: PowerCommand = Field(
        (),
        description=(
            "Real hosts: the argv run on this machine to power the killed node on again ({node}, "
            "{address} as above); empty = wait for someone to power it on."
        ),
    )
    dataset_files: int = Field(5, ge=1, le=1000, description="Files written before the fault.")
    file_mib: int = Field(20, ge=1, le=4096, description="Size of each file in MiB.")
    boot_timeout_s: float = Field(600.0, gt=0, description="How long to wait for the killed node to return.")

    @model_validator(mode="after")
    def _commands_fit_the_fault(self) -> FailoverSettings:
        if self.fault == "command" and not self.power_off_command:
            raise ValueError("failover.fault is 'command' but failover.power_off_command is empty")
        return self


class WriteSettings(BaseModel):
    """The acknowledged-writes workload every drill runs through its fault (``tasks/writes.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payload_bytes: int = Field(
        512,
        ge=16,
        le=1 << 20,
        description="Random bytes in each record (written as hex: twice that on disk).",
    )
    interval_s: float = Field(0.05, ge=0, le=60, description="Pause between two records.")
    first_acks: int = Field(
        20,
        ge=1,
        le=100000,
        description="Records acknowledged before the fault is fired (the workload is on).",
    )
    after_s: float = Field(
        5.0, gt=0, le=3600, description="How long the writer restarted on the survivor writes after failover."
    )
    reports_dir: Path = Field(
        Path("/var/lib/ha-storage-flows/reports"),
        description="Where the drills' pictures (acknowledged writes over time) are saved.",
    )


class LinkCutSettings(BaseModel):
    """The link cut: the Pacemaker drill (``python -m flows.link_cut``) and the fault-tolerant fault."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hold_s: float = Field(
        20.0, gt=0, le=3600, description="How long the link stays cut after DRBD fenced the peer."
    )
    timeout_s: float = Field(
        300.0, gt=0, description="How long each stage (fencing the peer, resync after the heal) may take."
    )


class FaultSettings(BaseModel):
    """The storage faults of the fault matrix (``python -m flows.storage_faults``, ``flows.faults``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    away_mib: int = Field(
        64,
        ge=1,
        le=1 << 20,
        description="long-outage: MiB the primary writes while its peer is away (the resync must copy about "
        "that much, not the whole disk).",
    )
    timeout_s: float = Field(
        300.0, gt=0, description="How long each stage (the peer lost, the disk detached, a resync) may take."
    )


class SiteLossSettings(BaseModel):
    """The site-loss drill of a stacked volume (``python -m flows.site_loss``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    traffic_mib: int = Field(
        256,
        ge=0,
        le=1 << 20,
        description=(
            "MiB written in the background (unacknowledged, direct I/O) while the site dies, so the link to "
            "the third node is busy as in production: with drbd.upper_protocol 'A' that is what leaves "
            "acknowledged writes in flight. 0: only the acknowledged writer."
        ),
    )


CRON_RE = re.compile(r"^\S+( \S+){4}$")


def _check_cron(value: str) -> str:
    """Five cron fields, parsed by the same croniter Prefect's scheduler uses."""
    from prefect._vendor.croniter import croniter

    if not CRON_RE.match(value) or not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a cron expression of five fields (minute hour day month weekday)")
    return value


# A five-field cron expression, checked when the settings load rather than when Prefect first schedules.
Cron = Annotated[str, AfterValidator(_check_cron)]


QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]  # a work queue


class DeploymentSettings(BaseModel):
    """The scheduled deployments (``python -m deployments``, ``prefect.yaml``): when, where, with what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(
        "UTC",
        description="IANA time zone the crons below are read in (e.g. 'Europe/Berlin'), never the host's.",
    )
    work_pool: str = Field(
        "hsf-process",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="Process work pool that 'prefect deploy' targets (prefect.yaml).",
    )
    nightly_backup_cron: Cron = Field(
        "0 2 * * *", description="Nightly borg backup, then a check of the repository and the new archive."
    )
    nightly_backup_verify_data: bool = Field(
        False, description="Also read back every chunk of the new archive in the nightly check (slower)."
    )
    daily_spot_check_cron: Cron = Field(
        "0 7 * * *",
        description=(
            "Daily spot check: a share of the source files compared with the newest archive, and the file "
            "counts (after the nightly backup)."
        ),
    )
    weekly_verify_cron: Cron = Field(
        "0 4 * * 0", description="Weekly deep check: the repository and every archive with --verify-data."
    )
    monthly_restore_drill_cron: Cron = Field(
        "0 5 1 * *",
        description=(
            "Monthly restore drill: archive the sources, restore that archive and compare every entry "
            "(into backup.scratch_dir unless backup.restore_drill = 'in-place')."
        ),
    )
    restore_drill_damage: Literal["remove", "encrypt"] = Field(
        "remove", description="In-place restore drills only: what is done to the sources before the restore."
    )
    weekly_failover_drill_cron: Cron = Field(
        "0 3 * * 6", description="Weekly failover drill on the replicated volume (kills the primary)."
    )
    backup_verified_within_s: int = Field(
        26 * 3600,
        ge=10,  # Prefect's own floor for a proactive trigger's window
        le=31 * 86400,
        description=(
            "The backup-overdue automation notifies when a repository had no hsf.backup.verified event for "
            "this long (seconds; default 26 h: the nightly backup and two hours of slack)."
        ),
    )
    clusters: dict[BlockName, QueueName] = Field(
        default_factory=dict,
        description=(
            "One server, many clusters: cluster (the name of its saved blocks) → its site (the work queue "
            "its runs wait in, served by a worker on that site). Every deployment is then made once per "
            "cluster, named '<deployment>-<cluster>', with the cluster as its parameter. Empty: one of each, "
            "the settings read from the worker's environment / hsf.toml."
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as 'UTC' or 'Europe/Berlin'") from None
        return value


MetricsProbe = Literal["backup", "drills", "drbd", "pacemaker"]
METRICS_PROBES: tuple[MetricsProbe, ...] = ("backup", "drills", "drbd", "pacemaker")


class MetricsSettings(BaseModel):
    """The Prometheus exporter (``python -m deployments metrics``): where it listens or writes, and what
    every scrape probes afresh (``tasks/metrics.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: IpAddress = Field(
        ipaddress.IPv4Address("127.0.0.1"),
        description="Address /metrics is served on: this machine only by default (0.0.0.0: every interface).",
    )
    port: Port = Field(9851, description="TCP port /metrics is served on.")
    textfile: Path | None = Field(
        None,
        description=(
            "Write the metrics once into this node_exporter textfile (a *.prom file in the directory its "
            "--collector.textfile.directory reads; written atomically) instead of serving them."
        ),
    )
    probes: tuple[MetricsProbe, ...] = Field(
        METRICS_PROBES,
        min_length=1,
        description=(
            "What a scrape probes: 'backup' (borg list and info of the repository), 'drills' (the drills' "
            "and checks' recorded results: the latest hsf.* events on the Prefect server), 'drbd' "
            "(/proc/drbd on every node over SSH), 'pacemaker' (crm_mon on every node; only with "
            "cluster.manager 'pacemaker')."
        ),
    )
    probe_timeout_s: float = Field(
        30.0, gt=0, le=600, description="How long one command of a probe (borg, an SSH probe) may take."
    )
    borg_lock_wait_s: int = Field(
        5,
        ge=0,
        le=600,
        description=(
            "How long borg list/info wait for the repository's lock: a backup holds it, and a scrape during "
            "one reports the backup probe failed rather than hang."
        ),
    )
    events_days: int = Field(
        400, ge=1, le=3650, description="How far back the drills' and checks' recorded results are read."
    )

    @field_validator("address", mode="before")
    @classmethod
    def _an_ip_address(cls, value: object) -> object:
        if isinstance(value, str) and ip_literal(value) is None:
            raise ValueError(
                f"{value!r} is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
            )
        return value

    @field_validator("textfile")
    @classmethod
    def _a_prom_file_in_a_directory(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        if path.suffix != ".prom":
            raise ValueError(
                f"{path} does not end in .prom (node_exporter's textfile collector reads only those)"
            )
        if not path.parent.is_dir():
            raise ValueError(f"the directory of {path} does not exist")
        return path

    @field_validator("probes")
    @classmethod
    def _each_once(cls, probes: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({p for p in probes if probes.count(p) > 1})
        if duplicates:
            raise ValueError(f"probes listed twice: {', '.join(duplicates)}")
        return probes


class Settings(BaseSettings):
    """Everything the flows read from the environment or ``hsf.toml``."""

    model_config = SettingsConfigDict(
        env_prefix="HSF_", env_nested_delimiter="__", extra="forbid", frozen=True, validate_default=True
    )

    target: Literal["lab", "inventory"] = Field(
        "lab", description="Run against the embedded lab, or against the hosts listed in 'inventory'."
    )
    lab: LabSettings = Field(default_factory=LabSettings, description="The embedded lab.")
    inventory: tuple[InventoryHost, ...] = Field(
        (), description="Real hosts, used when target = 'inventory'."
    )
    primary_node: str | None = Field(
        None, description="Node that starts as DRBD primary; default: the first node."
    )
    cluster: ClusterSettings = Field(default_factory=ClusterSettings, description="Sharing the cluster.")
    drbd: DrbdSettings = Field(default_factory=DrbdSettings, description="The replicated volume.")
    failover: FailoverSettings = Field(default_factory=FailoverSettings, description="The failover drill.")
    link_cut: LinkCutSettings = Field(default_factory=LinkCutSettings, description="The link-cut drill.")
    faults: FaultSettings = Field(default_factory=FaultSettings, description="The storage faults.")
    site_loss: SiteLossSettings = Field(
        default_factory=SiteLossSettings, description="The site-loss drill of a stacked volume."
    )
    writes: WriteSettings = Field(
        default_factory=WriteSettings, description="The acknowledged writes run through every drill's fault."
    )
    ha: HaSettings = Field(default_factory=HaSettings, description="Dual-primary DRBD + OCFS2.")
    split_brain: SplitBrainSettings = Field(
        default_factory=SplitBrainSettings, description="Split-brain drill."
    )
    backup: BackupSettings = Field(default_factory=BackupSettings, description="Borg backups.")
    deployments: DeploymentSettings = Field(
        default_factory=DeploymentSettings, description="Schedules of the deployed flows."
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="The Prometheus exporter and what it probes."
    )
    dry_run: bool = Field(False, description="Log every command that would change a host, run none of them.")

    @model_validator(mode="before")
    @classmethod
    def _lab_boots_the_third_node(cls, data: object) -> object:
        """A stacked volume in the lab needs its third VM: ``lab.third_node`` follows ``drbd.third_node``."""
        if not isinstance(data, dict) or data.get("target", "lab") != "lab":
            return data
        drbd = data.get("drbd") or {}
        fields = drbd.model_dump() if isinstance(drbd, BaseModel) else drbd
        if not isinstance(fields, dict) or fields.get("topology") != "stacked":
            return data
        lab = data.get("lab") or {}
        third = fields.get("third_node", DrbdSettings.model_fields["third_node"].default)
        if isinstance(lab, LabSettings):
            lab = lab.model_dump()
        if isinstance(lab, dict):
            data = {**data, "lab": {**lab, "third_node": third}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.target == "inventory" and len(self.inventory) < 1:
            raise ValueError("target is 'inventory' but no inventory hosts are listed")
        names = [h.name for h in self.inventory]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"inventory: duplicate host names: {', '.join(duplicates)}")
        if self.primary_node is not None and self.primary_node not in self.node_names:
            raise UnknownNodeError(self.primary_node, self.node_names, setting="primary_node")
        if self.target == "inventory":
            _one_replication_network(self.inventory)
        if self.target == "inventory" and self.failover.fault == "destroy":
            raise ValueError(
                "failover.fault 'destroy' only applies to lab VMs: "
                "use 'sysrq-poweroff', 'sysrq-crash', 'command' or 'none'"
            )
        victim = self.split_brain.victim
        if victim is not None and victim not in self.node_names:
            raise UnknownNodeError(victim, self.node_names, setting="split_brain.victim")
        hosts = self.host_names
        if self.backup.client != "local" and self.backup.client not in hosts:
            raise UnknownNodeError(self.backup.client, ("local", *hosts), setting="backup.client")
        if self.backup.server is not None:
            if self.backup.server not in hosts:
                raise UnknownNodeError(self.backup.server, hosts, setting="backup.server")
            if self.backup.server == self.backup.client:
                raise ValueError("backup.server is the backup client itself: leave server unset instead")
            if self.target == "lab" and self.backup.client == "local":
                raise ValueError(
                    "backup.client: in the lab the client must be a lab VM (this machine has no route into "
                    "the lab network)"
                )
        if self.target == "lab" and self.failover.fault in ("sysrq-poweroff", "sysrq-crash", "command"):
            raise ValueError(
                f"failover.fault {self.failover.fault!r} is for real hosts; the lab uses 'destroy'"
            )
        if self.cluster.manager == "pacemaker":
            self._pacemaker_consistent()
        if self.drbd.topology == "stacked":
            self._stacked_consistent()
        if self.drbd.volumes:
            self._volumes_consistent()
        return self

    def _volumes_consistent(self) -> None:
        if self.cluster.manager == "pacemaker":
            raise ValueError(
                "drbd.volumes: Pacemaker runs one volume here (its CIB holds drbd.resource): set "
                "cluster.manager = 'none' for several volumes"
            )
        if self.target == "lab":
            disks = self.lab.data_disk_devices
            for volume in (self.drbd.volume, *self.drbd.volumes):
                if volume.disk not in disks:
                    raise ValueError(
                        f"drbd.volumes: {volume.resource}'s disk {volume.disk} is not one of the lab's data "
                        f"disks ({', '.join(disks)}): set lab.data_disks = {len(self.drbd.volumes) + 1} "
                        "and the disks /dev/vdb, /dev/vdc, …"
                    )

    def each_volume(self) -> tuple[Settings, ...]:
        """These settings once per volume: the first as it is, then each of ``drbd.volumes`` in its place
        (and no further volumes), so every single-volume step and flow serves each. An inventory host's
        ``replication_port`` is the first volume's; another volume uses its own port on every host."""
        first = self.model_copy(update={"drbd": self.drbd.model_copy(update={"volumes": ()})})
        hosts = tuple(host.model_copy(update={"replication_port": None}) for host in self.inventory)
        others = [
            self.model_copy(
                update={
                    "drbd": self.drbd.model_copy(update={**volume.model_dump(), "volumes": ()}),
                    "inventory": hosts,
                }
            )
            for volume in self.drbd.volumes
        ]
        return (first, *others)

    def _stacked_consistent(self) -> None:
        drbd = self.drbd
        if self.target == "inventory":
            names = [host.name for host in self.inventory]
            if drbd.third_node not in names:
                raise UnknownNodeError(drbd.third_node, tuple(names), setting="drbd.third_node")
            if len(names) < 3:
                raise ValueError(
                    f"drbd.third_node {drbd.third_node} is one of the inventory's {len(names)} hosts: a "
                    "stacked volume needs two more hosts for the two-node resource below it"
                )
            if drbd.stacked_address is None:
                raise ValueError(
                    "drbd.stacked_address is not set: a stacked volume on real hosts needs an address no "
                    "host has, with its prefix length (e.g. 192.0.2.10/24), for the lower Primary to hold"
                )
        if len(self.node_names) != 2:
            raise ValueError(
                "topology 'stacked' stacks on a two-node resource, and the nodes are "
                + ", ".join(self.node_names)
            )
        if self.cluster.manager == "pacemaker":
            raise ValueError(
                "topology 'stacked' is run by the flows (the drbdupper sequence), not by Pacemaker yet: "
                "set cluster.manager = 'none'"
            )
        if drbd.upper_minor == drbd.minor:
            raise ValueError(
                f"drbd.upper_minor {drbd.upper_minor} is drbd.minor: the upper device needs its own"
            )
        if self.backup.client == drbd.third_node or self.backup.server == drbd.third_node:
            raise ValueError(
                f"the third node {drbd.third_node} is the backup client or server: it holds a DRBD copy only"
            )

    def _pacemaker_consistent(self) -> None:
        fencing = self.cluster.fencing
        if self.target == "inventory" and fencing.stonith and fencing.agent is None:
            raise ValueError(
                "cluster.fencing.agent [HSF_CLUSTER__FENCING__AGENT] is not set: with cluster.manager "
                "'pacemaker' on real hosts name the fence agent that powers a node off (e.g. "
                "'fence_ipmilan', its parameters in cluster.fencing.params / secret_params / nodes), or "
                "opt out of node fencing with cluster.fencing.stonith = false (unsafe)"
            )
        for node in fencing.nodes:
            if node not in self.node_names:
                raise UnknownNodeError(node, self.node_names, setting="cluster.fencing.nodes")
        missing = [node for node in self.node_names if fencing.nodes and node not in fencing.nodes]
        if missing:
            raise ValueError(
                f"cluster.fencing.nodes has no entry for {', '.join(missing)}: with per-node fence "
                "parameters every node needs its own (each gets its own fence device)"
            )
        service_ip = self.cluster.service_ip
        if service_ip is not None:
            addresses: dict[str, IpAddress]
            if self.target == "lab":
                addresses = {node: self.lab.address_of(node) for node in self.lab.machines}
            else:
                addresses = {host.name: host.replication_ip for host in self.inventory}
            taken = [name for name, address in addresses.items() if address == service_ip.ip]
            if taken:
                raise ValueError(
                    f"cluster.service_ip {service_ip.ip} is {taken[0]}'s own address: the service IP "
                    "must be one no host has"
                )

    @property
    def fault(self) -> str:
        """The failover fault in effect ('auto' resolved)."""
        if self.failover.fault != "auto":
            return self.failover.fault
        return "destroy" if self.target == "lab" else "none"

    @property
    def cluster_name(self) -> str:
        """Name of the cluster the flows act on: cluster.name, else the lab's name, or 'inventory'."""
        if self.cluster.name is not None:
            return self.cluster.name
        return self.lab.name if self.target == "lab" else "inventory"

    @property
    def primary(self) -> str:
        return self.primary_node or self.node_names[0]

    @property
    def node_names(self) -> tuple[str, ...]:
        """The two-node resource's nodes (a stacked volume's third node is not one of them)."""
        if self.target == "lab":
            return self.lab.nodes
        third = self.drbd.third_node if self.drbd.topology == "stacked" else None
        return tuple(h.name for h in self.inventory if h.name != third)

    @property
    def third_node(self) -> str | None:
        """The stacked volume's third node (None with topology 'two-node')."""
        return self.drbd.third_node if self.drbd.topology == "stacked" else None

    @property
    def host_names(self) -> tuple[str, ...]:
        """Every host the flows may reach: the storage nodes and, in the lab, the backup server."""
        return self.lab.machines if self.target == "lab" else tuple(h.name for h in self.inventory)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get(CONFIG_VARIABLE, "hsf.toml"))
        if path.suffix == ".json":  # what write_settings_file hands to a flow process it starts
            return (init_settings, env_settings, JsonConfigSettingsSource(settings_cls, json_file=path))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path))


def _one_replication_network(hosts: tuple[InventoryHost, ...]) -> None:
    """The nodes replicate within one address family, each from an address of its own."""
    ips = [(host.name, host.replication_ip) for host in hosts]
    if len({ip.version for _, ip in ips}) > 1:
        listed = ", ".join(f"{name} {ip}" for name, ip in ips)
        raise ValueError(
            f"inventory: replication addresses mix IPv4 and IPv6 ({listed}): DRBD replicates within one "
            "address family, so give every host a replication_address of the same family"
        )
    for index, (name, ip) in enumerate(ips):
        for other, other_ip in ips[index + 1 :]:
            if ip == other_ip:
                raise ValueError(
                    f"inventory: hosts {name} and {other} have the same replication address {ip}: "
                    "each node needs its own"
                )


class UnknownNodeError(ValueError):
    """A node name that is not part of the configured cluster."""

    def __init__(self, node: str, known: tuple[str, ...], setting: str | None = None) -> None:
        where = f"{setting}: " if setting else ""
        super().__init__(f"{where}unknown node {node!r} (known: {', '.join(known) or 'none'})")


class SettingsError(Exception):
    """Settings failed validation; the message has one line per problem."""


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: the setting's dotted name, the environment variable, what is wrong."""
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        env_name = "HSF_" + "__".join(str(p).upper() for p in error["loc"]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        got = f" (got {error['input']!r})" if error["type"] not in {"value_error", "missing"} else ""
        where = f"setting {loc} [{env_name}]: " if loc else "settings: "
        lines.append(f"{where}{message}{got}")
    return "\n".join(lines)


ENV_PREFIX = "HSF_"
CONFIG_VARIABLE = "HSF_CONFIG"


def setting_variables(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> set[str]:
    """Every environment variable that names a setting (``HSF_LAB__MEMORY_MIB``, …)."""
    names = set()
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        names.add(variable)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= setting_variables(field.annotation, f"{variable}__")
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per ``HSF_`` variable that names no setting: a typo must never run the real thing."""
    known = setting_variables() | {CONFIG_VARIABLE}
    lines = []
    for variable in sorted(v for v in environ if v.upper().startswith(ENV_PREFIX)):
        if variable.upper() not in known:
            close = difflib.get_close_matches(variable.upper(), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            lines.append(f"environment variable {variable} names no setting{hint}")
    return lines


def config_file_problem(environ: Mapping[str, str]) -> str | None:
    """The file named by HSF_CONFIG must exist; any settings file must parse (TOML, or JSON when its name
    ends in .json)."""
    path = Path(environ.get(CONFIG_VARIABLE, "hsf.toml"))
    if not path.exists():
        return f"{CONFIG_VARIABLE} names {path}, which does not exist" if CONFIG_VARIABLE in environ else None
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        return f"settings file {path} is not valid TOML: {exc}"
    except json.JSONDecodeError as exc:
        return f"settings file {path} is not valid JSON: {exc}"
    except OSError as exc:
        return f"settings file {path} cannot be read: {exc.strerror}"
    return None


def write_settings_file(settings: Settings, path: Path) -> Path:
    """``settings`` as a JSON settings file (mode 0600) that ``HSF_CONFIG`` can name: how a flow hands its
    exact settings to a flow process it starts, whatever they were loaded from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(settings.model_dump_json(exclude_defaults=True))
    return path


def load_settings(**overrides: object) -> Settings:
    """Settings from init overrides, environment and TOML; raise :class:`SettingsError` if invalid.

    Before any value is read: the settings file named by HSF_CONFIG exists and every settings file is
    valid TOML, and every ``HSF_`` variable names a setting — each problem is one line naming it.
    """
    problems = [p for p in (config_file_problem(os.environ),) if p] + unknown_variables(os.environ)
    if problems:
        raise SettingsError("\n".join(problems))
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
