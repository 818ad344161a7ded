"""Create .env with fresh development secrets when it is missing (used by `make run`)."""

import secrets
import sys
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"

TEMPLATE = """\
# Created by `make run` on first start. Never commit this file.
APP_ENV=development
SECRET_KEY={secret_key}
# 32 random bytes as 64 hex characters; losing it makes stored CRM credentials unreadable.
INTEGRATION_ENCRYPTION_KEY={encryption_key}
# DATABASE_URL=postgresql://user@127.0.0.1:5432/localboxs
# CHATWOOT_BASE_URL=https://app.chatwoot.com
# CHATWOOT_ACCOUNT_ID=1
# CHATWOOT_API_KEY=
"""


def main() -> int:
    if ENV_FILE.exists():
        return 0
    ENV_FILE.write_text(TEMPLATE.format(secret_key=secrets.token_hex(32), encryption_key=secrets.token_hex(32)))
    ENV_FILE.chmod(0o600)
    print(f"Created {ENV_FILE.name} with a fresh SECRET_KEY and INTEGRATION_ENCRYPTION_KEY; never commit it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
