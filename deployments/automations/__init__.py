"""Automations kept as files beside the deployments; see :mod:`deployments.automation`."""
