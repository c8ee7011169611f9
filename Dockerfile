# referral-router: the daemon, as a non-root user, with its state on a volume.
# The install is the README's `pip install .` then `referral-router serve`; the image's own
# Python is not the system's, so it needs no virtual environment (PEP 668 does not apply).
FROM python:3.11-slim

RUN useradd --system --uid 10001 --home-dir /var/lib/referral-router --create-home router

WORKDIR /app
COPY pyproject.toml README.md ./
COPY router ./router
COPY rules ./rules
RUN pip install --no-cache-dir . && referral-router rules check /app/rules

ENV ROUTER_STATE_DIR=/var/lib/referral-router \
    ROUTER_RULES_DIR=/app/rules \
    ROUTER_INBOX=smtp://0.0.0.0:2525 \
    ROUTER_HTTP=0.0.0.0:9181

USER 10001
VOLUME ["/var/lib/referral-router"]
EXPOSE 2525 9181
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9181/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["referral-router", "serve"]
