# The one image of every Airflow component (API server, scheduler, DAG processor, triggerer, workers):
# the official Apache Airflow image of the locked Airflow version on Python 3.11, plus the locked
# runtime dependencies and the kubecost_etl package, DAGs and plugins. The test/demo cluster simulator
# (simulator/, packaged apart) is not in it: see the `dev-tools` target for that.
#
#   docker build -t kubecost-etl-airflow:latest .
#
# AIRFLOW_VERSION must equal the apache-airflow pin in requirements.txt (a test checks it).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------- build
# Builds the product wheel. pyproject.toml finds packages under include/ only, so the wheel holds
# kubecost_etl and nothing else; this stage (pip's build env, setuptools) is thrown away.
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS build
COPY --chown=airflow:0 pyproject.toml README.md /src/
COPY --chown=airflow:0 include/ /src/include/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels /src \
    && python -c "import sys, zipfile, glob; names = zipfile.ZipFile(glob.glob('/tmp/wheels/*.whl')[0]).namelist(); \
bad = [n for n in names if not (n.startswith('kubecost_etl/') or '.dist-info/' in n)]; \
sys.exit(f'the wheel holds more than kubecost_etl: {bad}' if bad else 0)"

# ---------------------------------------------------------------------------------- image
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS image
ARG AIRFLOW_VERSION
USER airflow
# The runtime part of requirements.in (everything above "# test tools"), every version pinned by the
# lock (-c requirements.txt), and Airflow itself pinned so pip never moves it. No pip cache is kept.
COPY --chown=airflow:0 requirements.in requirements.txt /tmp/requirements/
RUN sed '/^# test tools/,$d' /tmp/requirements/requirements.in > /tmp/requirements/runtime.in \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /tmp/requirements/runtime.in -c /tmp/requirements/requirements.txt \
    && rm -rf /tmp/requirements
COPY --from=build --chown=airflow:0 /tmp/wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && python -c "import importlib.util as u, sys; sys.exit('kubecost_sim must not be in the image' \
if u.find_spec('kubecost_sim') else 0); import kubecost_etl"
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
ENV KUBECOST_ETL_CONFIG=/opt/airflow/config/kubecost-etl.yaml \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
USER airflow

# ------------------------------------------------------------------------------ dev-tools
# For `docker compose --profile local` only: the image plus the whole lock (moto's S3 server, the
# test tools) and the cluster simulator. Never deploy it.
FROM image AS dev-tools
COPY --chown=airflow:0 requirements.txt /tmp/requirements.txt
COPY --chown=airflow:0 simulator/ /tmp/simulator/
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
    && pip install --no-cache-dir --no-deps /tmp/simulator \
    && rm -rf /tmp/requirements.txt /tmp/simulator
USER airflow

# The default target is the product image (last stage built by `docker build` without --target).
FROM image
