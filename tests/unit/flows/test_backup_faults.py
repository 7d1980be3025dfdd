"""flows/backup_faults.py: the filesystem restore-disk-full fills is sized from what the restore writes."""

from __future__ import annotations

import pytest

from flows.backup_faults import full_filesystem_kib
from tasks.drbd.plan import Refused


@pytest.mark.parametrize(
    ("restored", "kib"),
    [
        (4 << 20, 1024),  # the lab's /home: a 4 MiB file; never more than 1 MiB of the client's memory
        (2 << 20, 1024),
        (100 << 10, 50),  # half: the restore runs out of space midway
        (32 << 10, 16),
    ],
)
def test_the_full_filesystem_is_half_the_restore_and_at_most_one_mib(restored: int, kib: int) -> None:
    assert full_filesystem_kib(restored) == kib


@pytest.mark.parametrize("restored", [0, 4096, (32 << 10) - 1])
def test_sources_too_small_to_fill_a_filesystem_are_refused_in_one_line(restored: int) -> None:
    with pytest.raises(
        Refused, match=r"^the sources hold [\d,]+ bytes, too little to fill a filesystem: "
    ) as refused:
        full_filesystem_kib(restored)
    assert "\n" not in str(refused.value) and str(refused.value).endswith("nothing was mounted")
