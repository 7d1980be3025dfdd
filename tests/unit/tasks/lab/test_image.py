"""Unit tests for tasks/lab/image.py: apt source parsing, argv builders, the cache, a real mkfs run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tasks.executor import Executor
from tasks.lab.image import (
    CUSTOMIZE_HOOK,
    GUEST_PACKAGES,
    SETUP_HOOK,
    AptMirrors,
    GuestImage,
    ImageRecipe,
    cached_image,
    host_apt_mirrors,
    mkfs_from_dir_argv,
    mmdebstrap_argv,
    parse_apt_sources,
    qemu_img_convert_argv,
    qemu_img_overlay_argv,
    qemu_img_raw_argv,
    stage_progress,
)

MIRROR = "http://mirror.example/debian"
SECURITY = "http://mirror.example/debian-security"
THIRD_PARTY = "https://thirdparty.example/apt"

# Shaped like this host's /etc/apt/sources.list.d/debian.sources (deb822), with placeholder hosts.
DEB822_DEBIAN = f"""\
Types: deb
# {MIRROR}-snapshot/20250520T000000Z
URIs: {MIRROR}/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# {SECURITY}-snapshot/20250520T000000Z
URIs: {SECURITY}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE_DEBIAN = f"""\
# the Debian archive
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} bookworm main contrib
deb-src {MIRROR} bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} bookworm-updates main
# deb http://commented-out.example/debian bookworm main
deb {SECURITY}/ bookworm-security main  # trailing comment
"""

THIRD_PARTY_DEB822 = f"""\
Types: deb
URIs: {THIRD_PARTY}
Suites: nodistro
Components: main
Signed-By: /usr/share/keyrings/thirdparty.gpg
"""

DISABLED_DEB822 = """\
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm bookworm-updates
Components: main
Enabled: no
"""


@pytest.mark.parametrize(
    ("deb822", "one_line", "expected"),
    [
        pytest.param([DEB822_DEBIAN], [], AptMirrors(debian=MIRROR, security=SECURITY), id="deb822"),
        pytest.param([], [ONE_LINE_DEBIAN], AptMirrors(debian=MIRROR, security=SECURITY), id="one-line"),
        pytest.param(
            [THIRD_PARTY_DEB822, DEB822_DEBIAN],
            [f"deb [signed-by=/k.gpg] {THIRD_PARTY} stable main\n"],
            AptMirrors(debian=MIRROR, security=SECURITY),
            id="third-party-first-is-skipped",
        ),
        pytest.param(
            [DISABLED_DEB822 + "\n" + DEB822_DEBIAN],
            [],
            AptMirrors(debian=MIRROR, security=SECURITY),
            id="disabled-stanza-is-skipped",
        ),
        pytest.param(
            [],
            [f"deb {MIRROR} bookworm main\n"],
            AptMirrors(debian=MIRROR, security=None),
            id="no-security-source",
        ),
    ],
)
def test_parse_apt_sources(deb822: list[str], one_line: list[str], expected: AptMirrors) -> None:
    assert parse_apt_sources(deb822, one_line) == expected


@pytest.mark.parametrize(
    ("deb822", "one_line"),
    [
        pytest.param([], [], id="empty"),
        pytest.param(
            [THIRD_PARTY_DEB822], ["# deb http://mirror.example/debian bookworm main\n"], id="third-party"
        ),
        pytest.param([DISABLED_DEB822], [], id="only-disabled"),
        pytest.param([], [f"deb-src {MIRROR} bookworm main\n"], id="only-deb-src"),
    ],
)
def test_parse_apt_sources_without_bookworm_raises(deb822: list[str], one_line: list[str]) -> None:
    with pytest.raises(ValueError, match="no Debian bookworm source"):
        parse_apt_sources(deb822, one_line)


def test_parse_apt_sources_skips_third_party_repo_with_bookworm_suite() -> None:
    third_party = f"deb [signed-by=/k.gpg] {THIRD_PARTY} bookworm stable\n"
    assert parse_apt_sources([], [third_party, f"deb {MIRROR} bookworm main\n"]).debian == MIRROR


def test_host_apt_mirrors_reads_an_etc_apt_tree(tmp_path: Path) -> None:
    etc_apt = tmp_path / "etc" / "apt"
    listd = etc_apt / "sources.list.d"
    listd.mkdir(parents=True)
    (listd / "debian.sources").write_text(DEB822_DEBIAN.replace(SECURITY, "http://ignored.example/x"))
    (listd / "aaa-thirdparty.sources").write_text(THIRD_PARTY_DEB822)
    (listd / "security.list").write_text(f"deb {SECURITY} bookworm-security main\n")
    # files apt itself ignores are ignored here too
    (listd / "other.list.disabled").write_text("deb http://disabled.example/debian bookworm main\n")
    (etc_apt / "sources.list").write_text("# empty apart from this comment\n")

    mirrors = host_apt_mirrors(etc_apt)

    # deb822 entries come first, so the .sources security URI wins over the .list one
    assert mirrors == AptMirrors(debian=MIRROR, security="http://ignored.example/x")


def test_host_apt_mirrors_with_only_sources_list(tmp_path: Path) -> None:
    etc_apt = tmp_path / "etc" / "apt"
    etc_apt.mkdir(parents=True)  # no sources.list.d at all
    (etc_apt / "sources.list").write_text(ONE_LINE_DEBIAN)
    assert host_apt_mirrors(etc_apt) == AptMirrors(debian=MIRROR, security=SECURITY)


def _option(argv: list[str], name: str) -> str:
    values = [a.removeprefix(f"{name}=") for a in argv if a.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} given {len(values)} times in {argv}"
    return values[0]


def test_mmdebstrap_argv(tmp_path: Path) -> None:
    recipe = ImageRecipe()
    rootfs = tmp_path / "rootfs"
    argv = mmdebstrap_argv(recipe, AptMirrors(debian=MIRROR, security=SECURITY), rootfs)

    assert argv[0] == "mmdebstrap"
    assert "--mode=root" in argv
    assert "--variant=minbase" in argv
    assert _option(argv, "--include").split(",") == list(GUEST_PACKAGES)
    for option, hook in (("--setup-hook", SETUP_HOOK), ("--customize-hook", CUSTOMIZE_HOOK)):
        path = Path(_option(argv, option))
        assert path == hook
        assert path.is_file()
        assert os.access(path, os.X_OK), f"{path} must be executable for mmdebstrap to run it"
    assert argv.index("bookworm") == argv.index(str(rootfs)) - 1
    assert argv[-3:] == [
        f"deb {MIRROR} bookworm main",
        f"deb {MIRROR} bookworm-updates main",
        f"deb {SECURITY} bookworm-security main",
    ]


def test_mmdebstrap_argv_without_security_mirror(tmp_path: Path) -> None:
    argv = mmdebstrap_argv(ImageRecipe(), AptMirrors(debian=MIRROR), tmp_path / "rootfs")
    assert argv[-2:] == [f"deb {MIRROR} bookworm main", f"deb {MIRROR} bookworm-updates main"]
    assert not any("security" in a for a in argv)


def test_recipe_digest_is_stable() -> None:
    first = ImageRecipe().digest()
    assert first == ImageRecipe().digest() == ImageRecipe().digest()
    assert len(first) == 16
    int(first, 16)  # hex


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(ImageRecipe(packages=(*GUEST_PACKAGES, "vim-tiny")), id="package-added"),
        pytest.param(ImageRecipe(packages=GUEST_PACKAGES[:-1]), id="package-removed"),
        pytest.param(ImageRecipe(root_size="4G"), id="root-size"),
        pytest.param(ImageRecipe(suite="trixie"), id="suite"),
    ],
)
def test_recipe_digest_changes_with_the_recipe(changed: ImageRecipe) -> None:
    assert changed.digest() != ImageRecipe().digest()


def test_cached_image_empty_cache(tmp_path: Path) -> None:
    assert cached_image(tmp_path, ImageRecipe()) is None


@pytest.mark.parametrize("missing", ["base.qcow2", "vmlinuz", "initrd.img"])
def test_cached_image_incomplete_build(tmp_path: Path, missing: str) -> None:
    directory = tmp_path / ImageRecipe().digest()
    directory.mkdir()
    for name in {"base.qcow2", "vmlinuz", "initrd.img"} - {missing}:
        (directory / name).write_bytes(b"x")
    assert cached_image(tmp_path, ImageRecipe()) is None


def test_cached_image_complete_build(tmp_path: Path) -> None:
    recipe = ImageRecipe()
    directory = tmp_path / recipe.digest()
    directory.mkdir()
    for name in ("base.qcow2", "vmlinuz", "initrd.img"):
        (directory / name).write_bytes(b"x")

    image = cached_image(tmp_path, recipe)

    assert image == GuestImage(
        directory=directory,
        base=directory / "base.qcow2",
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        digest=recipe.digest(),
    )
    # another recipe does not see this build
    assert cached_image(tmp_path, ImageRecipe(root_size="4G")) is None


MMDEBSTRAP_STAGE_LINES = [
    "I: automatically chosen format: directory",
    "I: running apt-get update...",
    "I: downloading packages with apt...",
    "I: extracting archives...",
    "I: installing essential packages...",
    "I: installing remaining packages inside the chroot...",
    "I: running --customize-hook in shell: sh -c '/x/customize.sh \"$1\"' exec /tmp/rootfs",
    "I: cleaning package lists and apt cache...",
    "I: success in 123.4567 seconds",
]


def test_stage_progress_increases_through_the_stages() -> None:
    results = [stage_progress(line) for line in MMDEBSTRAP_STAGE_LINES]
    percents = [p for p in results if p is not None]
    assert len(percents) == len(MMDEBSTRAP_STAGE_LINES)  # every stage line is recognised
    assert percents == sorted(set(percents))  # strictly increasing
    assert percents[0] > 0
    assert percents[-1] < 100  # 100 % is left for the steps after mmdebstrap


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Get:1 http://mirror.example/debian bookworm InRelease [151 kB]",
        "W: something odd",
        "  I: success indented",
        "i: success",
        "I: chroot architecture amd64 is equal to the host's architecture",
    ],
)
def test_stage_progress_ignores_other_lines(line: str) -> None:
    assert stage_progress(line) is None


needs_qemu_img = pytest.mark.skipif(
    shutil.which("qemu-img") is None, reason="qemu-img is installed by make deps"
)


def _qemu_img_info(path: Path) -> dict:
    shown = Executor().run(["qemu-img", "info", "--output=json", str(path)], read_only=True, timeout=30)
    return json.loads(shown.stdout)


@needs_qemu_img
def test_qemu_img_raw_overlay_and_convert(tmp_path: Path) -> None:
    """The three qemu-img builders as the image build and the VM files use them, judged by qemu-img info."""
    executor = Executor()
    raw, qcow2, overlay = tmp_path / "base.raw", tmp_path / "base.qcow2", tmp_path / "vm" / "root.qcow2"
    overlay.parent.mkdir()

    assert executor.run(qemu_img_raw_argv(raw, "4M"), timeout=30).stdout == ""  # quiet
    assert (_qemu_img_info(raw)["format"], _qemu_img_info(raw)["virtual-size"]) == ("raw", 4 << 20)
    content = raw.read_bytes()[:-5] + b"hello"
    raw.write_bytes(content)

    executor.run(qemu_img_convert_argv(raw, qcow2), timeout=30)
    assert _qemu_img_info(qcow2)["format"] == "qcow2"
    assert raw.read_bytes() == content  # the source is left alone

    assert executor.run(qemu_img_overlay_argv(qcow2, overlay), timeout=30).stdout == ""
    info = _qemu_img_info(overlay)
    assert info["format"] == "qcow2" and info["virtual-size"] == 4 << 20
    assert (info["backing-filename"], info["backing-filename-format"]) == (str(qcow2), "qcow2")
    back = tmp_path / "back.raw"  # the overlay reads the base's content through
    executor.run(["qemu-img", "convert", "-O", "raw", str(overlay), str(back)], timeout=30)
    assert back.read_bytes() == content
    assert "backing-filename" not in _qemu_img_info(qcow2)  # the converted base stands alone


def test_mkfs_from_dir_labels_root_and_overwrites_an_earlier_image(tmp_path: Path) -> None:
    source, image = tmp_path / "rootfs", tmp_path / "base.raw"
    source.mkdir()
    executor = Executor()
    executor.run(mkfs_from_dir_argv(source, image, "4M", label="earlier"), timeout=60)
    executor.run(mkfs_from_dir_argv(source, image, "4M"), timeout=60)
    label = executor.run(["blkid", "-o", "value", "-s", "LABEL", str(image)], timeout=30).stdout
    assert label.strip() == "root"


def test_mkfs_from_dir_really_builds_an_ext4_image(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "file").write_text("hello from the lab\n")
    image = tmp_path / "image.ext4"
    executor = Executor()

    executor.run(mkfs_from_dir_argv(source, image, "4M", label="t"), timeout=60)

    assert image.stat().st_size == 4 * 1024 * 1024
    label = executor.run(["blkid", "-o", "value", "-s", "LABEL", str(image)], timeout=30).stdout
    assert label.strip() == "t"
    content = executor.run(["debugfs", "-R", "cat /file", str(image)], timeout=30).stdout
    assert content == "hello from the lab\n"
