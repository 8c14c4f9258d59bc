"""``python -m pakati_core.store``: create or upgrade the database, show its revision, import old JSON files.

Run from the pack's folder. The URL comes from ``--url``, else ``PAKATI_DATABASE_URL``, else the
SQLite default under ``--user-dir`` (ComfyUI's ``user`` folder).
"""
from __future__ import annotations

import argparse
import json
import sys

from . import current_revision, get_engine, head_revision, import_legacy, migrate, open_store, redacted, resolve_url
from .errors import StoreError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pakati_core.store", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["upgrade", "current", "import-legacy"],
                    help="upgrade: migrate to the newest revision; current: print the revision; import-legacy: import <user dir>/pakati JSON files")
    ap.add_argument("--url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/pakati (default: PAKATI_DATABASE_URL or the SQLite file)")
    ap.add_argument("--user-dir", help="ComfyUI's user directory (for the SQLite default and import-legacy)")
    ap.add_argument("--user", default="default", help="whose rows import-legacy writes (default: 'default')")
    args = ap.parse_args(argv)
    try:
        url = resolve_url(args.url, args.user_dir)
        engine = get_engine(url)
        if args.command == "current":
            print(json.dumps({"url": redacted(url), "revision": current_revision(engine), "head": head_revision()}))
        elif args.command == "upgrade":
            migrate(engine)
            print(json.dumps({"url": redacted(url), "revision": current_revision(engine)}))
        else:
            if not args.user_dir:
                ap.error("import-legacy needs --user-dir")
            counts = import_legacy(open_store(url, owner=args.user), f"{args.user_dir}/pakati")
            print(json.dumps(counts))
    except StoreError as e:
        print(f"pakati store: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
