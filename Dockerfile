# The code location: the platform's definitions served over gRPC to the Dagster webserver and
# daemon (Dagster's Helm chart runs them from its own images). The run launcher starts each run
# in this same image.
FROM python:3.11-slim

WORKDIR /opt/counts
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.lock
COPY counts_assets ./counts_assets
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps .

# A ranged run records one planned event per asset, not one per partition (see scripts/ui.sh).
ENV DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true
# Organization files, exports and the SFTP key come from volumes (deploy/helm/values.yaml).
ENV COUNTS_ORGS_DIR=/etc/counts/organizations \
    COUNTS_EXPORT_DIR=/var/lib/counts/exports

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "counts_assets.definitions"]
