"""The lab's guest image: a Debian bookworm minbase with DRBD, OCFS2 and Borg, built once per recipe.

The image is built with mmdebstrap from the host's own apt mirror (read from its apt configuration,
never written down here), turned into an ext4 filesystem (``mkfs.ext4 -d``) and a qcow2 that every VM
uses as a read-only backing file. The kernel and initrd are copied out for direct kernel boot.
Images are cached under ``<cache>/<recipe hash>/``: any change to the package list, the initramfs
setup or the customize hook gives a new hash and a new build.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tasks.executor import Executor

GUEST_DIR = Path(__file__).parent / "guest"
SETUP_HOOK = GUEST_DIR / "setup.sh"
CUSTOMIZE_HOOK = GUEST_DIR / "customize.sh"
RECIPE_VERSION = 1  # bump when the build procedure changes in a way the recipe fields do not show

GUEST_PACKAGES: tuple[str, ...] = (
    "systemd-sysv",
    "udev",
    "kmod",
    "dbus",
    "openssh-server",
    "linux-image-amd64",
    "initramfs-tools",
    "zstd",
    "drbd-utils",
    "ocfs2-tools",
    "borgbackup",
    "e2fsprogs",
    "xfsprogs",
    "iproute2",
    "iputils-ping",
    "iputils-arping",  # a stacked volume's moving address is announced when it moves
    "procps",
    "less",
    "netbase",
    "nftables",
    "rsync",
    "psmisc",
    # The cluster manager (cluster.manager = "pacemaker"): corosync, pacemaker with the crm shell, the
    # resource agents (ocf:linbit:drbd comes with drbd-utils), and SBD fencing over the shared disk.
    "pacemaker",
    "corosync",
    "crmsh",
    "resource-agents",
    "fence-agents",
    "sbd",
)


class AptMirrors(BaseModel):
    """Where the host's apt gets Debian from."""

    model_config = ConfigDict(frozen=True)

    debian: str = Field(description="Main archive URI (for bookworm and bookworm-updates).")
    security: str | None = Field(None, description="Security archive URI, if the host has one.")


class ImageRecipe(BaseModel):
    """Everything that determines the image's content; its hash names the cache entry."""

    model_config = ConfigDict(frozen=True)

    suite: str = Field("bookworm", description="Debian release.")
    variant: str = Field("minbase", description="mmdebstrap variant.")
    packages: tuple[str, ...] = Field(GUEST_PACKAGES, description="Packages installed in the guest.")
    root_size: str = Field("3G", description="Size of the root filesystem (sparse).")

    def digest(self) -> str:
        """Hash of the recipe and the hooks' text: equal hashes mean equal images."""
        hooks = {hook.name: hook.read_text() for hook in (SETUP_HOOK, CUSTOMIZE_HOOK)}
        payload = json.dumps(
            {"recipe": self.model_dump(), "hooks": hooks, "version": RECIPE_VERSION}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class GuestImage(BaseModel):
    """A built image in the cache."""

    directory: Path
    base: Path = Field(description="qcow2 used as the backing file of every VM's overlay.")
    kernel: Path
    initrd: Path
    digest: str


def parse_apt_sources(deb822_texts: list[str], one_line_texts: list[str]) -> AptMirrors:
    """Find the Debian archive and security URIs in apt configuration text.

    Accepts deb822 ``.sources`` stanzas and classic ``sources.list`` lines. A source counts as Debian
    when it carries the bookworm suites (``bookworm``/``bookworm-security``) with component main.
    """
    entries: list[tuple[str, list[str]]] = []  # (uri, suites) of sources that carry component main
    for text in deb822_texts:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            if "main" not in fields.get("components", "").split():
                continue
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split()))
    for text in one_line_texts:
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 4 and words[0] == "deb" and "main" in words[3:]:
                entries.append((words[1], [words[2]]))
    debian = next(
        (u for u, suites in entries if any(s in ("bookworm", "bookworm-updates") for s in suites)), None
    )
    security = next((u for u, suites in entries if "bookworm-security" in suites), None)
    if debian is None:
        raise ValueError("no Debian bookworm source found in the host's apt configuration")
    return AptMirrors(debian=debian.rstrip("/"), security=security.rstrip("/") if security else None)


def host_apt_mirrors(etc_apt: Path = Path("/etc/apt")) -> AptMirrors:
    deb822 = [p.read_text() for p in sorted((etc_apt / "sources.list.d").glob("*.sources"))]
    one_line = [
        p.read_text()
        for p in [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
        if p.exists()
    ]
    return parse_apt_sources(deb822, one_line)


def mmdebstrap_argv(recipe: ImageRecipe, mirrors: AptMirrors, rootfs: Path) -> list[str]:
    """Build the root filesystem into ``rootfs`` with the customize hook applied."""
    return [
        "mmdebstrap",
        "--mode=root",
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        # an executable hook file is run by mmdebstrap with the root filesystem as its argument
        f"--setup-hook={SETUP_HOOK}",
        f"--customize-hook={CUSTOMIZE_HOOK}",
        recipe.suite,
        str(rootfs),
        f"deb {mirrors.debian} {recipe.suite} main",
        f"deb {mirrors.debian} {recipe.suite}-updates main",
        *([f"deb {mirrors.security} {recipe.suite}-security main"] if mirrors.security else []),
    ]


def mkfs_from_dir_argv(source: Path, image: Path, size: str, label: str = "root") -> list[str]:
    """An ext4 filesystem image holding a copy of ``source`` (no mount, no loop device)."""
    return ["mkfs.ext4", "-q", "-F", "-L", label, "-d", str(source), str(image), size]


def qemu_img_convert_argv(source: Path, dest: Path) -> list[str]:
    return ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(source), str(dest)]


def qemu_img_overlay_argv(backing: Path, overlay: Path) -> list[str]:
    return ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing), str(overlay)]


def qemu_img_raw_argv(path: Path, size: str) -> list[str]:
    return ["qemu-img", "create", "-q", "-f", "raw", str(path), size]


def cached_image(cache_dir: Path, recipe: ImageRecipe) -> GuestImage | None:
    """The cached image for ``recipe``, if a complete build exists."""
    digest = recipe.digest()
    image = _image_at(cache_dir / digest, digest)
    complete = all(p.exists() for p in (image.base, image.kernel, image.initrd))
    return image if complete else None


def planned_image(cache_dir: Path, recipe: ImageRecipe) -> GuestImage:
    """Where the image for ``recipe`` is (or would be) kept, built or not."""
    return _image_at(cache_dir / recipe.digest(), recipe.digest())


def _image_at(directory: Path, digest: str) -> GuestImage:
    return GuestImage(
        directory=directory,
        base=directory / "base.qcow2",
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        digest=digest,
    )


# mmdebstrap's own progress lines ("I: ...") mapped to coarse stages for a progress bar.
_STAGES: tuple[tuple[str, float], ...] = (
    ("I: automatically chosen", 2.0),
    ("I: running apt-get update", 5.0),
    ("I: downloading packages", 10.0),
    ("I: extracting archives", 30.0),
    ("I: installing essential packages", 40.0),
    ("I: installing remaining packages", 55.0),
    ("I: running --customize-hook", 80.0),
    ("I: cleaning package lists", 85.0),
    ("I: success", 88.0),
)


def stage_progress(line: str) -> float | None:
    """Percent done for an mmdebstrap progress line, or None if the line marks no stage."""
    for prefix, percent in _STAGES:
        if line.startswith(prefix):
            return percent
    return None


def build_image(
    recipe: ImageRecipe,
    cache_dir: Path,
    executor: Executor,
    *,
    mirrors: AptMirrors | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    timeout_s: float = 1800,
) -> GuestImage:
    """Build the image into the cache (atomically: a half-built image is never used)."""
    digest = recipe.digest()
    mirrors = mirrors or host_apt_mirrors()
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.chmod(0o755)  # qemu runs as libvirt-qemu and must traverse to the backing file
    work = cache_dir / f".build-{digest}"
    shutil.rmtree(work, ignore_errors=True)  # leftovers of a killed build
    work.mkdir(mode=0o755)
    rootfs = work / "rootfs"
    progress = on_progress or (lambda percent, text: None)
    started = time.monotonic()

    def on_line(line: str) -> None:
        percent = stage_progress(line)
        if percent is not None:
            progress(percent, line.removeprefix("I: "))

    try:
        progress(0.0, f"building guest image {digest} from {mirrors.debian}")
        executor.run(mmdebstrap_argv(recipe, mirrors, rootfs), timeout=timeout_s, on_line=on_line)
        image = _image_at(work, digest)
        shutil.copyfile(rootfs / "vmlinuz", image.kernel)
        shutil.copyfile(rootfs / "initrd.img", image.initrd)
        progress(90.0, "making the root filesystem")
        raw = work / "base.raw"
        executor.run(mkfs_from_dir_argv(rootfs, raw, recipe.root_size), timeout=timeout_s)
        shutil.rmtree(rootfs)
        progress(95.0, "converting to qcow2")
        executor.run(qemu_img_convert_argv(raw, image.base), timeout=timeout_s)
        raw.unlink()
        for path in (image.base, image.kernel, image.initrd):
            path.chmod(0o644)
        final = cache_dir / digest
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
        progress(100.0, f"guest image {digest} built in {time.monotonic() - started:.0f} s")
        return _image_at(final, digest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
