"""`python -m gateway`: read settings once, log as JSON, serve (the access middleware logs
one scrubbed JSON line per request, so aiohttp's own access log is off)."""

from gateway.app import create_app
from shared.service import serve

if __name__ == "__main__":
    serve("gateway", create_app, lambda s: s.gateway_port)
