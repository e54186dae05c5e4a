"""The counter's page, `GET /staff`: static files served by the gateway, the page and its
scripts from the same origin as `POST /api/passes/scan`, under a CSP that allows nothing
else (no inline script or style, no other origin, no framing, no form posts)."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
       " media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none';"
       " form-action 'none'; frame-ancestors 'none'")
# path -> (file under gateway/static/staff, content type)
FILES = {
    "/staff": ("index.html", "text/html"),
    "/staff/staff.js": ("staff.js", "text/javascript"),
    "/staff/staff.css": ("staff.css", "text/css"),
    "/staff/vendor/jsQR.js": ("vendor/jsQR.js", "text/javascript"),
}
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def route_name(name: str) -> str:
    """`staff_index_html`, `staff_vendor_jsQR_js`, …: the route's name and operation id."""
    return "staff_" + name.replace("/", "_").replace(".", "_")


def _handler(body: bytes, content_type: str):
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8",
                            headers=HEADERS)

    return serve


def setup(app: web.Application) -> None:
    """Read once at start: the files are part of the release, not of the request."""
    folder = resources.files("gateway") / "static" / "staff"
    for path, (name, content_type) in FILES.items():
        body = (folder / name).read_bytes()
        app.router.add_route("GET", path, _handler(body, content_type), name=route_name(name))
