from shared.service import serve
from webhook_service.app import create_app

if __name__ == "__main__":
    serve("webhook_service", create_app, lambda s: s.webhook_service_port)
