"""OCFS2 on dual-primary DRBD: o2cb cluster config, filesystem and mounts."""
