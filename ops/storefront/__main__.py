"""`python -m ops.storefront`: the demo storefront on STOREFRONT_PORT (`make run` starts it)."""

from ops.storefront.app import create_app
from shared.service import serve

if __name__ == "__main__":
    serve("storefront", create_app, lambda s: s.storefront_port)
