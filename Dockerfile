# A6 Pay: one image for every service (`python -m <service>`) and the `a6pay` ops command.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin a6pay

WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY gateway ./gateway
COPY order_service ./order_service
COPY verification_service ./verification_service
COPY webhook_service ./webhook_service
COPY notifier ./notifier
COPY razorpay_sandbox ./razorpay_sandbox
# Runtime dependencies only: no [dev] extras. The source tree goes once installed, so what
# runs is the installed package (with its SQL migrations and sandbox templates).
RUN pip install . && cd / && rm -rf /src

WORKDIR /app
USER a6pay
EXPOSE 8080
CMD ["python", "-m", "gateway"]
