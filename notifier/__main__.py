from notifier.app import create_app
from shared.service import serve

if __name__ == "__main__":
    serve("notifier", create_app, lambda s: s.notifier_port)
