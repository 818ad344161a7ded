"""Gunicorn settings for a 2-core machine (`make serve`). Workers and threads were chosen by
measurement: bench/serve.py, whose figures the README quotes. Override any of them with the
environment, e.g. GUNICORN_WORKERS=4."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"  # threads overlap the waits on CRM calls and the database
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# With gthread, `timeout` does NOT protect request threads: the worker's main loop keeps notifying the
# arbiter while its threads are stuck, so a hung request is never killed. What bounds them is the
# app: every CRM call ends by its deadline (crm/net.py: ≤ 10 s a call, ≤ 15 s for a web request's
# work), and at most CRM_WEB_CALL_SLOTS (default: half of `threads`) of a worker's threads wait on
# CRMs at once, so pages keep threads however slow a CRM is (bench/drip_login.py measures it).
timeout = 30  # only catches a worker whose main loop is stuck (e.g. a blocking import at boot)
graceful_timeout = 20
keepalive = 5
max_requests = 2000  # recycle workers now and then (bounded memory growth)
max_requests_jitter = 200
accesslog = "-"
# The access log line carries the path only: our URLs never hold a secret, and no query string is logged.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
