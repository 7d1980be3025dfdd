"""DRBD: resource model, command builders, state probes, and the Prefect tasks that drive them."""
