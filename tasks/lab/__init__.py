"""The embedded lab: guest image, private libvirt in a network namespace, VMs."""
