"""End-to-end tests: the service as deployed (Procfile), fake providers on 127.0.0.1."""
