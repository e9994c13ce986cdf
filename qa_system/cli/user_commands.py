"""``qa-system users add|list|remove|password|key``: the workspace's named maintainer accounts
(``qa_system.maintain.accounts``). Passwords are asked on the terminal (typed twice, never echoed)
or read from ``QA_NEW_USER_PASSWORD`` for scripts; never from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qa_system.cli import emit_json


def _store(settings: Any) -> Any:
    from qa_system.maintain.accounts import AccountStore

    return AccountStore(settings.workspace)


def _add(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.maintain.accounts import check_name, check_role, new_password_from_env_or_prompt

    name, role = check_name(args.name), check_role(args.role)
    store = _store(settings)
    if store.get(name) is not None:  # before asking for a password
        from qa_system.errors import InputError

        raise InputError(f"an account named {name!r} already exists (remove it first to change it)")
    account = store.add(name, role, new_password_from_env_or_prompt(name))
    if args.json:
        emit_json(account.public())
    else:
        print(f"added {account.name} ({account.role}) to {store.path}")
    return 0


def _list(args: argparse.Namespace, settings: Any) -> int:
    store = _store(settings)
    accounts = [a.public() for a in store.list()]
    if args.json:
        emit_json({"accounts": accounts, "file": str(store.path)})
        return 0
    if not accounts:
        print("no accounts: `qa-system serve` prints a generated maintainer password for each run "
              "(add one with `qa-system users add NAME --role curator`)")
        return 0
    for a in accounts:
        print(f"{a['name']:<24} {a['role']:<9} created {a['created_at'][:19]}  api keys: {a['api_keys']}")
    return 0


def _remove(args: argparse.Namespace, settings: Any) -> int:
    account = _store(settings).remove(args.name)
    if args.json:
        emit_json({"removed": account.name, "role": account.role})
    else:
        print(f"removed {account.name} ({account.role}); their API keys no longer work")
    return 0


def _password(args: argparse.Namespace, settings: Any) -> int:
    from qa_system.errors import InputError
    from qa_system.maintain.accounts import new_password_from_env_or_prompt

    store = _store(settings)
    if store.get(args.name) is None:
        raise InputError(f"no account named {args.name!r} (see `qa-system users list`)")
    store.set_password(args.name, new_password_from_env_or_prompt(args.name))
    print(f"password of {args.name} changed")
    return 0


def _key(args: argparse.Namespace, settings: Any) -> int:
    store = _store(settings)
    if args.revoke:
        count = store.revoke_keys(args.name)
        print(f"revoked {count} API key(s) of {args.name}")
        return 0
    key = store.new_key(args.name)
    if args.json:
        emit_json({"name": args.name, "api_key": key})
    else:
        print(key)
        print(f"(the API key of {args.name}; shown once, only its digest is kept: send it as "
              "'Authorization: Bearer KEY' or 'X-API-Key: KEY')", file=sys.stderr)
    return 0


def register(commands: Any, train: Any, evaluate: Any) -> None:
    from qa_system.maintain.accounts import ROLES

    users = commands.add_parser("users", help="named maintainer accounts (roles: reviewer, curator)")
    sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    p = sub.add_parser("add", help="add an account; asks for its password (or reads $QA_NEW_USER_PASSWORD)")
    p.add_argument("name", metavar="NAME", help="the account's login name, recorded with every action it takes")
    p.add_argument("--role", required=True, choices=ROLES,
                   help="reviewer: decide proposed facts (undo their own decisions); curator: everything (forget, merge, undo, ingest)")
    p.add_argument("--json", action="store_true", help="print the new account as JSON")
    p.set_defaults(func=_add)
    p = sub.add_parser("list", help="list the accounts (never their passwords)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_list)
    p = sub.add_parser("remove", help="remove an account and its API keys")
    p.add_argument("name", metavar="NAME", help="the account to remove")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_remove)
    p = sub.add_parser("password", help="change an account's password (asked, or $QA_NEW_USER_PASSWORD)")
    p.add_argument("name", metavar="NAME", help="the account whose password changes")
    p.set_defaults(func=_password)
    p = sub.add_parser("key", help="make an API key tied to an account (printed once); its actions are recorded under NAME")
    p.add_argument("name", metavar="NAME", help="the account the key acts as")
    p.add_argument("--revoke", action="store_true", help="revoke every API key of the account instead")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_key)
