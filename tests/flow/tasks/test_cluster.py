"""The DRBD shared secret: generated once per cluster, kept in a Prefect Secret block."""

from __future__ import annotations

from prefect import flow
from prefect.blocks.system import Secret

from tasks.cluster import drbd_resource, secret_block_name, shared_secret
from tasks.settings import load_settings


@flow
def _secret_twice(name: str) -> tuple[str, str]:
    return shared_secret(name), shared_secret(name)


def test_secret_is_generated_once_and_stored(prefect_harness: None) -> None:
    first, second = _secret_twice("test-drbd-r0")
    assert first == second
    assert len(first) >= 32
    assert Secret.load("test-drbd-r0").get() == first
    other, _ = _secret_twice("test-drbd-r1")
    assert other != first  # each cluster/resource has its own


def test_resource_from_settings_uses_the_block_secret(prefect_harness: None) -> None:
    settings = load_settings()
    name = secret_block_name(settings)
    assert name == "hsf-drbd-r0"
    resource = drbd_resource(settings, shared_secret(name))
    assert resource.shared_secret.get_secret_value() == Secret.load(name).get()
    assert [(n.name, str(n.address)) for n in resource.nodes] == [
        ("nodea", "10.77.0.11"),
        ("nodeb", "10.77.0.12"),
    ]
