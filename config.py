"""Configuration classes, read from the environment (and `.env`, loaded by python-dotenv)."""

import os
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env")


def _env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{BASE_DIR / 'instance' / 'localboxs.sqlite3'}"
    # SQLAlchemy needs the driver named; operators paste the libpq form.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY")
    # Earlier keys, comma-separated: old sessions and shared-account contact identifiers still count.
    SECRET_KEY_FALLBACKS: ClassVar[list] = [k for k in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if k]
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_ENGINE_OPTIONS: ClassVar[dict] = {"pool_pre_ping": True}

    # Read by crm.crypto when the app starts; never logged, never rendered.
    INTEGRATION_ENCRYPTION_KEY = os.environ.get("INTEGRATION_ENCRYPTION_KEY")
    INTEGRATION_ENCRYPTION_OLD_KEYS = os.environ.get("INTEGRATION_ENCRYPTION_OLD_KEYS", "")

    # OWASP's scrypt table: N=2^15 needs p=3 (werkzeug's default p=1 is below it).
    PASSWORD_HASH_METHOD = os.environ.get("PASSWORD_HASH_METHOD", "scrypt:32768:8:3")

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    # Contacts: the most one user may keep, and the largest CSV file an import accepts (the one figure
    # the form, the CLI and the request limit share: the whole upload may be the file plus 64 KiB).
    CONTACTS_MAX_PER_USER = int(os.environ.get("CONTACTS_MAX_PER_USER", "100000"))
    CONTACTS_IMPORT_MAX_BYTES = int(os.environ.get("CONTACTS_IMPORT_MAX_BYTES", str(5 * 1024 * 1024)))
    MAX_CONTENT_LENGTH = CONTACTS_IMPORT_MAX_BYTES + 64 * 1024

    # The operator's platform-wide Chatwoot, used when a user has no integration of their own.
    CHATWOOT_BASE_URL = os.environ.get("CHATWOOT_BASE_URL", "")
    CHATWOOT_ACCOUNT_ID = os.environ.get("CHATWOOT_ACCOUNT_ID", "")
    CHATWOOT_API_KEY = os.environ.get("CHATWOOT_API_KEY", "")

    # Where the platform is reached from outside (OAuth redirect URI, webhook addresses), no trailing /.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    # Providers' API addresses: change them only for a vendor sandbox, a proxy or a local test server.
    HUBSPOT_API_URL = os.environ.get("HUBSPOT_API_URL", "https://api.hubapi.com")
    PIPEDRIVE_API_URL = os.environ.get("PIPEDRIVE_API_URL", "https://{companyDomain}.pipedrive.com")
    # Salesforce: a login host for every user (empty: Production, Sandbox or their My Domain), API version.
    SALESFORCE_LOGIN_URL = os.environ.get("SALESFORCE_LOGIN_URL", "")
    SALESFORCE_API_VERSION = os.environ.get("SALESFORCE_API_VERSION", "62.0")
    # Zoho: an accounts server for every user (empty: the one of the data center they pick).
    ZOHO_ACCOUNTS_URL = os.environ.get("ZOHO_ACCOUNTS_URL", "")
    # The platform's OAuth apps ("Connect with ..."): redirect URI {PUBLIC_BASE_URL}/integrations/oauth/callback.
    SALESFORCE_CLIENT_ID = os.environ.get("SALESFORCE_CLIENT_ID", "")
    SALESFORCE_CLIENT_SECRET = os.environ.get("SALESFORCE_CLIENT_SECRET", "")
    ZOHO_CLIENT_ID = os.environ.get("ZOHO_CLIENT_ID", "")
    ZOHO_CLIENT_SECRET = os.environ.get("ZOHO_CLIENT_SECRET", "")
    HUBSPOT_CLIENT_ID = os.environ.get("HUBSPOT_CLIENT_ID", "")
    HUBSPOT_CLIENT_SECRET = os.environ.get("HUBSPOT_CLIENT_SECRET", "")
    PIPEDRIVE_CLIENT_ID = os.environ.get("PIPEDRIVE_CLIENT_ID", "")
    PIPEDRIVE_CLIENT_SECRET = os.environ.get("PIPEDRIVE_CLIENT_SECRET", "")
    # Inbound webhooks: days their payloads are kept (`flask crm webhooks purge` deletes older ones).
    WEBHOOK_RETENTION_DAYS = int(os.environ.get("WEBHOOK_RETENTION_DAYS", "7"))

    # Outbound CRM calls (crm.net).
    CRM_ALLOW_INSECURE_HTTP = _env_flag("CRM_ALLOW_INSECURE_HTTP")
    CRM_ALLOW_PRIVATE_HOSTS = os.environ.get("CRM_ALLOW_PRIVATE_HOSTS", "")
    CRM_CA_BUNDLE = os.environ.get("CRM_CA_BUNDLE", "")
    CRM_CONNECT_TIMEOUT = float(os.environ.get("CRM_CONNECT_TIMEOUT", "3"))
    CRM_TOTAL_TIMEOUT = float(os.environ.get("CRM_TOTAL_TIMEOUT", "10"))
    CRM_MAX_RESPONSE_BYTES = int(os.environ.get("CRM_MAX_RESPONSE_BYTES", str(1024 * 1024)))
    CRM_MAX_INFLIGHT_PER_HOST = int(os.environ.get("CRM_MAX_INFLIGHT_PER_HOST", "8"))
    CRM_SYNC_CONCURRENCY = int(os.environ.get("CRM_SYNC_CONCURRENCY", "8"))
    CRM_RETRY_BASE_SECONDS = float(os.environ.get("CRM_RETRY_BASE_SECONDS", "1"))
    # Analytics (crm/analytics): the operators' /metrics answers only this bearer token (404 while unset);
    # recorded operations are written in batches this often (0: at job end and before a read only).
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
    ANALYTICS_FLUSH_SECONDS = float(os.environ.get("ANALYTICS_FLUSH_SECONDS", "5"))
    # Ports user-entered CRM addresses may use besides 443 (and 80 with CRM_ALLOW_INSECURE_HTTP).
    CRM_ALLOWED_PORTS = os.environ.get("CRM_ALLOWED_PORTS", "")
    # CRM work a web request waits for (provisioning on save, a message) ends within this (≤ 15 s).
    CRM_WEB_DEADLINE = float(os.environ.get("CRM_WEB_DEADLINE", "15"))
    # CRM calls in flight on web request threads, per process: the other threads stay free for
    # pages however slow a CRM is. Half of gunicorn's threads by default.
    CRM_WEB_CALL_SLOTS = int(
        os.environ.get("CRM_WEB_CALL_SLOTS") or max(1, int(os.environ.get("GUNICORN_THREADS") or 4) // 2)
    )

    # Background jobs: RQ on this Redis when set, else a thread of the web process.
    REDIS_URL = os.environ.get("REDIS_URL", "")
    CRM_QUEUE_NAME = os.environ.get("CRM_QUEUE_NAME", "crm")

    # Schedules and health checks (crm.schedules): `flask crm scheduler`, or a thread of the web
    # process when SCHEDULER_EMBEDDED is on (`make run` turns it on). Several instances are safe.
    SCHEDULER_EMBEDDED = _env_flag("SCHEDULER_EMBEDDED")
    SCHEDULER_TICK_SECONDS = float(os.environ.get("SCHEDULER_TICK_SECONDS", "60"))
    CRM_HEALTH_CHECK_INTERVAL = int(os.environ.get("CRM_HEALTH_CHECK_INTERVAL", str(24 * 3600)))
    # Scheduled connection checks per provider per tick (one minute): stays inside vendors' limits.
    CRM_HEALTH_CHECKS_PER_MINUTE = int(os.environ.get("CRM_HEALTH_CHECKS_PER_MINUTE", "30"))
    CRM_HEALTH_CHECK_CONCURRENCY = int(os.environ.get("CRM_HEALTH_CHECK_CONCURRENCY", "4"))
    # Health emails (stdlib smtplib; plain SMTP on localhost, STARTTLS when the server offers it).
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "25"))
    MAIL_FROM = os.environ.get("MAIL_FROM", "localboxs@localhost")

    # Rate limits hold across processes only with shared storage.
    RATELIMIT_STORAGE_URI = REDIS_URL or "memory://"
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "localboxs")
    # Processes serving the app (0: detect under gunicorn); memory counters with more than one are
    # refused in production (crm.limits.check_storage).
    WEB_WORKERS = int(os.environ.get("GUNICORN_WORKERS") or 0)
    LOGIN_LIMIT = os.environ.get("LOGIN_LIMIT", "10 per minute;100 per hour")
    LOGIN_FAILURE_LIMIT = os.environ.get("LOGIN_FAILURE_LIMIT", "5 per minute;20 per hour")
    REGISTER_LIMIT = os.environ.get("REGISTER_LIMIT", "5 per minute;30 per hour")
    TEST_CONNECTION_LIMIT = os.environ.get("TEST_CONNECTION_LIMIT", "10 per minute;100 per day")
    # API_WRITE_LIMIT is its former name (it covered the API only).
    WRITE_LIMIT = os.environ.get("WRITE_LIMIT") or os.environ.get("API_WRITE_LIMIT", "60 per minute;600 per hour")
    CONTACTS_IMPORT_LIMIT = os.environ.get("CONTACTS_IMPORT_LIMIT", "5 per minute;30 per hour")
    CONTACTS_SYNC_LIMIT = os.environ.get("CONTACTS_SYNC_LIMIT", "5 per minute;30 per hour")
    SEND_MESSAGE_LIMIT = os.environ.get("SEND_MESSAGE_LIMIT", "20 per minute;200 per hour")
    # How many proxies in front of the app set X-Forwarded-For/-Proto (0: none; trust no such header).
    PROXY_COUNT = int(os.environ.get("PROXY_COUNT", "0"))
    HSTS = False


class DevelopmentConfig(Config):
    APP_ENV = "development"
    DEBUG = False  # the Werkzeug debugger can run code: opt in with `flask run --debug`


class ProductionConfig(Config):
    APP_ENV = "production"
    HSTS = True
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-session"
    REMEMBER_COOKIE_SECURE = True
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_DURATION = timedelta(days=30)
    PREFERRED_URL_SCHEME = "https"


class TestConfig(Config):
    APP_ENV = "testing"
    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105 - tests only
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    # A cheap hash keeps the suite fast; test_auth proves the production default separately.
    PASSWORD_HASH_METHOD = "scrypt:1024:8:1"  # noqa: S105 - a method name, not a password
    CHATWOOT_BASE_URL = ""
    CHATWOOT_ACCOUNT_ID = ""
    CHATWOOT_API_KEY = ""
    REDIS_URL = ""
    RATELIMIT_STORAGE_URI = "memory://"
    SCHEDULER_EMBEDDED = False  # a test starts a scheduler itself, with its own clock
    MAIL_SERVER = ""
    CRM_RETRY_BASE_SECONDS = 0.01
    ANALYTICS_FLUSH_SECONDS = 0  # tests flush explicitly: no thread writing into a dropped database


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestConfig,
}


def config_from_env() -> type[Config]:
    name = os.environ.get("APP_ENV", "development").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"APP_ENV must be one of {', '.join(CONFIGS)}; got {name!r}") from None
