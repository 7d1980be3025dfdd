"""Pacemaker + Corosync (+ SBD): the cluster manager that fences a lost node and promotes DRBD by itself."""
