from shared.service import serve
from verification_service.app import create_app

if __name__ == "__main__":
    serve("verification_service", create_app, lambda s: s.verification_service_port)
