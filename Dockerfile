# The project image for the team server's worker (docker-compose.yml): Debian 12 like the hosts the
# flows are written for, with the tools the flows drive locally (borg, ssh, drbd-utils for parsing).
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv python3-dev gcc pkg-config libvirt-dev \
      borgbackup openssh-client drbd-utils iproute2 procps ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/hsf
COPY pyproject.toml README.md ./
COPY flows flows
COPY tasks tasks
COPY blocks blocks
COPY deployments deployments
COPY benchmarks benchmarks
COPY prefect.yaml prefect.yaml
RUN python3 -m venv /opt/hsf/.venv \
 && /opt/hsf/.venv/bin/pip install --no-cache-dir -q . \
 && /opt/hsf/.venv/bin/prefect version
ENV PATH=/opt/hsf/.venv/bin:$PATH
# The flows read an optional hsf.toml in their working directory: the one in the "config" volume when
# it is there (docker-compose.yml), else the defaults.
RUN ln -s /etc/hsf/hsf.toml /opt/hsf/hsf.toml

# `prefect deploy` run here records /opt/hsf as the directory each flow run starts in.
CMD ["prefect", "worker", "start", "--pool", "hsf-process", "--type", "process", "--with-healthcheck"]
