"""``python -m pakati_core.store``: create or upgrade the database, show its revision, import old JSON files.

The URL comes from ``--url``, else ``PAKATI_DATABASE_URL``, else ``<user dir>/pakati/database.json``,
else the SQLite file ``<user dir>/pakati/pakati.db``. The user dir is ``--user-dir`` (ComfyUI's
``user`` folder for the nodes' database), else the plain-Python default the client uses
(``PAKATI_USER_DIR``, else the platform's data directory, e.g. ``~/.local/share``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import (
    current_revision,
    default_user_dir,
    get_engine,
    head_revision,
    import_context_dir,
    import_legacy,
    migrate,
    open_store,
    redacted,
    resolve_url,
)
from .errors import StoreError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pakati_core.store", description=__doc__.splitlines()[0])
    ap.add_argument(
        "command",
        choices=["upgrade", "current", "import-legacy"],
        help="upgrade: migrate to the newest revision; current: print the revision; import-legacy: import the JSON files "
        "earlier builds wrote under <user dir>/pakati, and each --context-dir",
    )
    ap.add_argument(
        "--url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/pakati (default: PAKATI_DATABASE_URL or the SQLite file)"
    )
    ap.add_argument("--user-dir", help=f"ComfyUI's user directory, or where the client keeps its data (default: {default_user_dir()})")
    ap.add_argument("--user", default="default", help="whose rows import-legacy writes (default: 'default')")
    ap.add_argument(
        "--context-dir",
        action="append",
        default=[],
        help="import-legacy: a JSON-lines context directory of an earlier client (run-goal --context DIR); repeatable. "
        "Each file is imported once: running it again adds nothing",
    )
    args = ap.parse_args(argv)
    user_dir = args.user_dir or default_user_dir()
    try:
        url = resolve_url(args.url, user_dir)
        engine = get_engine(url)
        if args.command == "current":
            print(json.dumps({"url": redacted(url), "revision": current_revision(engine), "head": head_revision()}))
        elif args.command == "upgrade":
            migrate(engine)
            print(json.dumps({"url": redacted(url), "revision": current_revision(engine)}))
        else:
            store = open_store(url, owner=args.user)
            counts = import_legacy(store, f"{user_dir}/pakati")
            for directory in args.context_dir:
                if not Path(directory).is_dir():
                    raise StoreError(f"{directory} is not a directory", "context-dir")
                counts["context"] += import_context_dir(store, directory)
            print(json.dumps({"url": redacted(url), **counts}))
    except StoreError as e:
        print(f"pakati store: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
