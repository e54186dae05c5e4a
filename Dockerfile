# A6 Pay: one image for every service (`python -m <service>`) and the `a6pay` ops command.
FROM python:3.11-slim

# One malloc arena per process: threads allocate while holding the GIL (ops/runner.py)
ENV PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin a6pay

WORKDIR /src
# The locked dependencies first (a layer that changes only with uv.lock): exported from
# uv.lock with their hashes, runtime only (no [dev] extras), installed by pip, which
# checks every hash. Then the project itself, without touching its dependencies.
ARG UV_VERSION=0.13.9
COPY pyproject.toml uv.lock ./
RUN pip install "uv==${UV_VERSION}" \
    && uv export --frozen --no-dev --no-emit-project --format requirements-txt -o /tmp/requirements.txt \
    && pip uninstall -y uv \
    && pip install --require-hashes -r /tmp/requirements.txt
COPY ops ./ops
COPY shared ./shared
COPY gateway ./gateway
COPY order_service ./order_service
COPY verification_service ./verification_service
COPY webhook_service ./webhook_service
COPY notifier ./notifier
COPY razorpay_sandbox ./razorpay_sandbox
# The source tree goes once installed, so what runs is the installed package (with its SQL
# migrations and sandbox templates).
RUN pip install --no-deps . && cd / && rm -rf /src /tmp/requirements.txt

WORKDIR /app
USER a6pay
EXPOSE 8080
CMD ["python", "-m", "gateway"]
