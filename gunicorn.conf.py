"""gunicorn settings; the platform's $PORT wins, every value can be overridden."""

import os
import sys

# All interfaces by default, as platforms need; make run binds 127.0.0.1.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"  # noqa: S104
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads per worker: enough that slow clients (a download, a CSV on a bad
# line) holding some of them leave others for the webhooks; BENCHMARKS.md.
threads = int(os.environ.get("WEB_THREADS", "16"))
# Webhook routes answer in milliseconds; only /dial waits on Twilio.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
# The app's ProxyFix reads X-Forwarded-For and -Proto as far as TRUSTED_PROXIES
# says; gunicorn itself believes forwarded headers (for the URL scheme) only
# when a proxy is in front, from whichever address it connects.
forwarded_allow_ips = "*" if int(os.environ.get("TRUSTED_PROXIES") or "1") > 0 else ""
accesslog = "-"
errorlog = "-"
# gunicorn's control socket lives in $HOME by default, shared by every
# instance on the machine; nothing here uses it.
control_socket_disable = True


def post_worker_init(worker):
    """Make the stand-in password hash before the first request, so every login costs the same.

    Only in a worker that serves callscribe (these settings also serve the
    benchmarks' bare Flask baseline, which must not load the app).
    """
    auth = sys.modules.get("app.auth")
    if auth is not None:
        auth.dummy_hash()
