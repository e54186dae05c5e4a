from order_service.app import create_app
from shared.service import serve

if __name__ == "__main__":
    serve("order_service", create_app, lambda s: s.order_service_port)
