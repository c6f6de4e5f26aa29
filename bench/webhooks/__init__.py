"""Webhook acknowledgement under load (issue 10): wrk against the service and a bare Flask app."""
