"""``skyctl``: argument parsing, backend selection and exit codes (DESIGN §7).

Where it sits: the console script ``skyctl = skyctl.main:main``. It parses the command
line, resolves the context (``skyctl.config``), opens the backend — the REST API, or
the store itself with ``--etcd ENDPOINTS``, wrapped by ``skyctl.dryrun`` under
``--dry-run=client`` — and runs the verb (``skyctl.commands``; ``get`` and
``describe`` in ``skyctl.getting``; ``patch``, ``label``, ``annotate`` and ``edit`` in
``skyctl.edits``; ``sync`` and ``diff --gitsource`` in ``skyctl.sync``). ``api-resources``,
``explain``, ``completion``, ``config`` and ``version --client`` need no server.

Exit codes scripts can trust:

* ``0`` — success; ``diff`` found no difference; ``auth can-i`` answered yes;
* ``1`` — an error (the API's Status message and its field causes go to stderr, including
  401/403 and 409 conflicts), ``diff`` found a difference, ``wait`` or ``delete --wait`` timed
  out, ``sync --wait`` timed out or ended with the GitSource not Ready, ``auth can-i`` answered
  no, ``label``/``annotate`` would change a key without ``--overwrite``, an ``edit`` that
  cannot be written, ``get -w`` gave up reconnecting;
* ``2`` — usage: unknown verb, flag or kind, a missing KIND, a malformed label or field
  selector, ``-o`` (jsonpath, custom-columns), duration, ``--for`` or ``--patch``;
* ``130`` — interrupted (Ctrl-C, e.g. ending ``get -w``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, Protocol

from controller.apply.manifests import ManifestError
from controller.labels import SelectorError
from controller.store.encryption import CipherError
from skyctl import config as configuration
from skyctl.backend import ApiError, Backend, client_version
from skyctl.commands import VERBS, Session, UsageError, report_error
from skyctl.completion import SHELLS, completion_script
from skyctl.dryrun import ClientDryRun
from skyctl.edits import VERBS as EDIT_VERBS
from skyctl.edits import EditError
from skyctl.etcd import EtcdBackend
from skyctl.explain import ExplainError, explain
from skyctl.getting import VERBS as READ_VERBS
from skyctl.http import HttpBackend
from skyctl.kinds import api_resources
from skyctl.output import FORMATS, parse_output
from skyctl.printers import render_table
from skyctl.sync import VERBS as SYNC_VERBS

__all__ = ["build_parser", "main", "parse_args"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _common(sub: argparse.ArgumentParser, defaults: bool) -> None:
    """Flags accepted before or after the verb. After it they default to SUPPRESS, so a
    value given before the verb is not overwritten by the subcommand's default."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    sub.add_argument("--context", default=default(None), help="context of the config to use")
    sub.add_argument("--server", default=default(None), help="API server URL[,URL…]")
    sub.add_argument("--token", default=default(None), help="bearer token")
    sub.add_argument("-n", "--namespace", default=default(None), help="namespace")
    sub.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        default=default(False),
        help="list across every namespace",
    )
    sub.add_argument(
        "--etcd",
        metavar="ENDPOINTS",
        default=default(None),
        help="admin mode: use these etcd endpoints directly instead of an API server",
    )
    sub.add_argument(
        "--etcd-prefix", default=default("/skybroker"), help="etcd key prefix (admin mode)"
    )
    sub.add_argument(
        "--encryption-key-file",
        default=default(None),
        help="admin mode: the API server's key file, to read and write Secrets",
    )


def _files(sub: argparse.ArgumentParser, required: bool) -> None:
    sub.add_argument(
        "-f",
        "--filename",
        action="append",
        required=required,
        default=None,
        help="manifest file, directory or - for stdin (repeatable)",
    )
    sub.add_argument("-R", "--recursive", action="store_true", help="recurse into directories")


def _kind(sub: argparse.ArgumentParser) -> None:
    # Optional for argparse: a missing KIND is reported by the verb, naming what is missing.
    sub.add_argument("kind", nargs="?", help="KIND or KIND/NAME (skyctl api-resources)")
    sub.add_argument("names", nargs="*", help="object names")


def _boolean(text: str) -> bool:
    """kubectl's boolean flag values, given as ``--flag=VALUE``."""
    folded = text.lower()
    if folded in ("true", "t", "1", "yes"):
        return True
    if folded in ("false", "f", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _dry_run_mode(text: str) -> str | None:
    if text in ("server", "client"):
        return text
    if text == "none":
        return None
    raise argparse.ArgumentTypeError(f"{text!r}: use --dry-run=server, --dry-run=client or none")


def _dry_run(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--dry-run",
        type=_dry_run_mode,
        default=None,
        metavar="server|client",
        help="server (the default of a bare --dry-run): validate and admit on the server, "
        "write nothing; client: check locally, send no write",
    )


#: Flags that may be given bare, as kubectl allows: the bare word means this.
_BARE_FLAGS = {"--dry-run": "--dry-run=server", "--wait": "--wait=true"}


class VerbParser(Protocol):
    """Adds one verb's parser, with the options every verb shares."""

    def __call__(self, name: str, help_text: str) -> argparse.ArgumentParser: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyctl", description="Drive skybroker.")
    _common(parser, defaults=True)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    common = argparse.ArgumentParser(add_help=False)
    _common(common, defaults=False)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, parents=[common], help=help_text, description=help_text)

    _manifest_verbs(verb)
    _reading_verbs(verb)
    _object_verbs(verb)
    _record_verbs(verb)
    _other_verbs(verb, common)
    _config_verbs(verbs)
    return parser


def _manifest_verbs(verb: VerbParser) -> None:
    """apply, create, diff: the verbs that read manifests."""
    apply = verb("apply", "create or update objects from manifests")
    _files(apply, required=True)
    _dry_run(apply)
    apply.add_argument("--prune", action="store_true", help="delete applied objects left out")
    apply.add_argument("-l", "--selector", help="label selector of the objects --prune considers")

    create = verb(
        "create",
        "create objects from manifests (an object that exists is an error), or an access key: "
        "create accesskey NAME --user U [--group G…] --namespace NS",
    )
    _files(create, required=False)
    _dry_run(create)
    create.add_argument(
        "kind",
        nargs="?",
        metavar="accesskey",
        help="create an AccessKey: EC2 credentials for boto3, the AWS CLI or libcloud at "
        "SERVER/ec2/, region a Pool (id and secret printed once; README)",
    )
    create.add_argument("names", nargs="*", metavar="NAME", help="the AccessKey's name")
    create.add_argument("--user", help="accesskey: the user its requests act as")
    create.add_argument(
        "--group",
        action="append",
        default=[],
        dest="groups",
        help="accesskey: a group of that user (repeatable)",
    )

    diff = verb(
        "diff", "show what apply (-f) or a GitSource's revision would change (exit 1 if anything)"
    )
    _files(diff, required=False)
    diff.add_argument("--gitsource", metavar="NAME", help="the plan of a GitSource's revision")
    diff.add_argument(
        "--revision",
        metavar="REF",
        help="with --gitsource: a branch, tags/NAME, a commit sha1 or main@sha1:… "
        "(default: the GitSource's spec.ref)",
    )
    diff.add_argument("--timeout", default="2m", help="with --gitsource (default 2m)")


def _reading_verbs(verb: VerbParser) -> None:
    """get, describe: the verbs that read objects."""
    get = verb("get", "list or show objects")
    _kind(get)
    get.add_argument("-o", "--output", type=parse_output, metavar="|".join(FORMATS))
    get.add_argument("--show-labels", action="store_true", help="a LABELS column")
    get.add_argument("-w", "--watch", action="store_true", help="stream changes after listing")
    get.add_argument(
        "--output-watch-events",
        action="store_true",
        help="with -w: print the event type (ADDED, MODIFIED, DELETED) with every object",
    )
    get.add_argument("-l", "--selector", help="label selector")
    get.add_argument(
        "--field-selector",
        help="e.g. metadata.name=x,status.phase!=Running (=, ==, != on metadata.name, "
        "metadata.namespace, status.phase, spec.<path>)",
    )

    describe = verb(
        "describe",
        "show objects with conditions, placement, events, history (KIND alone: all of it)",
    )
    _kind(describe)
    describe.add_argument("-l", "--selector", help="label selector (KIND without names)")


def _object_verbs(verb: VerbParser) -> None:
    """delete, patch, label, annotate, edit, wait, sync: the verbs that act on named objects."""
    delete = verb("delete", "delete objects by name or from manifests")
    _kind(delete)
    _files(delete, required=False)
    _wait_option(
        delete, "wait until the objects are gone (bare --wait: true; default false)", "60s"
    )
    _dry_run(delete)
    delete.add_argument("--ignore-not-found", action="store_true")

    patch = verb("patch", "change an object with a JSON merge patch or a JSON patch")
    _kind(patch)
    patch.add_argument("-p", "--patch", required=True, help="the patch (JSON)")
    patch.add_argument(
        "--type",
        choices=["merge", "json"],
        default="merge",
        help="merge (RFC 7386, a JSON object) or json (RFC 6902, a list of operations)",
    )
    _dry_run(patch)

    for name, what in (("label", "labels"), ("annotate", "annotations")):
        change = verb(name, f"set (KEY=VALUE) or remove (KEY-) {what} of objects")
        change.add_argument("kind", help="KIND or KIND/NAME")
        change.add_argument("changes", nargs="+", metavar="NAME|KEY=VALUE|KEY-")
        change.add_argument(
            "--overwrite", action="store_true", help=f"allow changing existing {what}"
        )
        _dry_run(change)

    edit = verb("edit", "edit an object in $EDITOR and write it back")
    _kind(edit)

    wait = verb("wait", "wait for a condition or a deletion")
    _kind(wait)
    wait.add_argument(
        "--for",
        dest="for_",
        required=True,
        help="delete, condition=TYPE[=STATUS] or jsonpath='{.path}'[=VALUE]",
    )
    wait.add_argument("--timeout", default="30s", help="give up after this long (default 30s)")

    sync = verb("sync", "sync a GitSource now (gitsource/NAME or gs/NAME)")
    _kind(sync)
    _wait_option(
        sync, "wait until the GitSource has synced, then exit 0 if it is Ready (bare --wait)", "5m"
    )


def _wait_option(parser: argparse.ArgumentParser, help_text: str, timeout: str) -> None:
    """``--wait[=true|false]`` and its ``--timeout``."""
    parser.add_argument(
        "--wait", type=_boolean, default=False, metavar="true|false", help=help_text
    )
    parser.add_argument("--timeout", default=timeout, help=f"for --wait (default {timeout})")


def _record_verbs(verb: VerbParser) -> None:
    """events, history: what happened to objects."""
    events = verb("events", "list events")
    events.add_argument("--for", dest="object", metavar="KIND/NAME", help="only about this object")
    events.add_argument("-o", "--output", type=parse_output, metavar="|".join(FORMATS))

    history = verb("history", "the durable history of an object")
    _kind(history)
    history.add_argument("-o", "--output", choices=["yaml", "json"])


def _other_verbs(verb: VerbParser, common: argparse.ArgumentParser) -> None:
    """explain, auth can-i, version, api-resources, completion."""
    explain_verb = verb("explain", "document a kind or field")
    explain_verb.add_argument("path", metavar="KIND[.field]")

    auth = verb("auth", "inspect authorization")
    can_i = auth.add_subparsers(dest="auth_verb", required=True, metavar="can-i")
    check = can_i.add_parser("can-i", parents=[common], help="may I VERB KIND?")
    check.add_argument("verb_to_check", metavar="VERB")
    check.add_argument("kind", metavar="KIND")

    version = verb("version", "client and server versions")
    version.add_argument("--client", action="store_true", help="the client's only (no server)")

    resources = verb("api-resources", "the kinds: plural, short names, scope")
    resources.add_argument(
        "--namespaced", type=_boolean, default=None, metavar="true|false", help="only these"
    )
    resources.add_argument("-o", "--output", choices=["name"], help="name: the plurals only")

    completion = verb("completion", "shell completion script")
    completion.add_argument("shell", choices=SHELLS)


def _config_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """config: the contexts of the skyctl config file."""
    config = verbs.add_parser("config", help="manage contexts")
    config_verbs = config.add_subparsers(dest="config_verb", required=True, metavar="SUBCOMMAND")
    config_verbs.add_parser("get-contexts", help="list contexts")
    config_verbs.add_parser("current-context", help="print the current context")
    use = config_verbs.add_parser("use-context", help="make a context current")
    use.add_argument("name")
    set_context = config_verbs.add_parser("set-context", help="create or update a context")
    set_context.add_argument("name")
    set_context.add_argument("--server")
    set_context.add_argument("--token")
    set_context.add_argument("--namespace", dest="context_namespace")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse like kubectl: words after a flag (``label KIND NAME -n NS k=v``) still belong to
    the verb's list of names or changes (argparse alone stops filling that list at a flag);
    ``--dry-run`` and ``--wait`` may be bare or take ``=VALUE``, never the next word."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args([_BARE_FLAGS.get(word, word) for word in words])
    spill = next((name for name in ("changes", "names") if hasattr(args, name)), None)
    unknown = [word for word in extras if word.startswith("-") or spill is None]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if spill is not None and extras:
        setattr(args, spill, [*getattr(args, spill), *extras])
    return args


def _config_command(args: argparse.Namespace, out: IO[str]) -> int:
    path = configuration.config_path()
    config = configuration.load_config(path)
    if args.config_verb == "get-contexts":
        current = config.get("current-context")
        rows = [["CURRENT", "NAME", "SERVER", "NAMESPACE"]]
        rows += [
            [
                "*" if c["name"] == current else "",
                c["name"],
                configuration.server_text(c.get("server"), c["name"]) or "",
                str(c.get("namespace", configuration.DEFAULT_NAMESPACE)),
            ]
            for c in config["contexts"]
        ]
        out.write("\n".join("   ".join(r).rstrip() for r in rows) + "\n")
        return EXIT_OK
    if args.config_verb == "current-context":
        current = config.get("current-context")
        if not current:
            raise configuration.ConfigError("current-context is not set")
        out.write(f"{current}\n")
        return EXIT_OK
    if args.config_verb == "use-context":
        configuration.use_context(config, args.name)
        out.write(f'Switched to context "{args.name}".\n')
    else:
        configuration.set_context(
            config,
            args.name,
            server=args.server,
            token=args.token,
            namespace=args.context_namespace,
        )
        out.write(f'Context "{args.name}" set.\n')
    configuration.save_config(path, config)
    return EXIT_OK


def _open_session(
    args: argparse.Namespace, out: IO[str], err: IO[str], stdin: IO[bytes] | None
) -> Session:
    path = configuration.config_path()
    needs_file = args.context or not (args.server or args.etcd)
    if needs_file and configuration.explicit_path() and not path.exists():
        raise configuration.ConfigError(
            f"config file {path} does not exist ($SKYCONFIG names it; skybroker up writes "
            "DIR/skyctl.yaml, skyctl config set-context creates one); or pass --server or --etcd"
        )
    context = configuration.resolve_context(
        configuration.load_config(path),
        context=args.context,
        server=args.server,
        token=args.token,
        namespace=args.namespace,
    )
    backend: Backend
    if args.etcd:
        endpoints = [e for e in args.etcd.split(",") if e]
        backend = EtcdBackend(endpoints, args.etcd_prefix, args.encryption_key_file)
    elif context.server:
        backend = HttpBackend(context.server, context.token)
    else:
        raise configuration.ConfigError(
            "no server: pass --server, set a context (skyctl config set-context), "
            "point $SKYCONFIG at a config (skybroker up writes DIR/skyctl.yaml), or use --etcd"
        )
    if getattr(args, "dry_run", None) == "client":
        backend = ClientDryRun(backend)
    return Session(backend, context.namespace, args.namespace, args.all_namespaces, out, err, stdin)


def _api_resources(args: argparse.Namespace, out: IO[str]) -> int:
    rows = api_resources(args.namespaced)
    if args.output == "name":
        out.write("".join(row[0] + "\n" for row in rows[1:]))
    else:
        out.write(render_table(rows))
    return EXIT_OK


def _run(args: argparse.Namespace, out: IO[str], err: IO[str], stdin: IO[bytes] | None) -> int:
    if args.verb == "explain":
        out.write(explain(args.path))
        return EXIT_OK
    if args.verb == "completion":
        out.write(completion_script(args.shell))
        return EXIT_OK
    if args.verb == "config":
        return _config_command(args, out)
    if args.verb == "api-resources":
        return _api_resources(args, out)
    if args.verb == "version" and args.client:
        out.write(f"Client Version: {client_version()}\n")
        return EXIT_OK
    verbs = {**VERBS, **READ_VERBS, **EDIT_VERBS, **SYNC_VERBS}
    handler = verbs["can-i" if args.verb == "auth" else args.verb]
    session = _open_session(args, out, err, stdin)
    try:
        return handler(session, args)
    finally:
        session.backend.close()


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[bytes] | None = None,
) -> int:
    """Run skyctl; returns the exit code (the console script exits with it)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse prints usage and "exits" 2 (or 0 for --help)
        return int(exc.code or 0)
    try:
        return _run(args, out, err, stdin if stdin is not None else sys.stdin.buffer)
    except ApiError as exc:
        report_error(err, exc)
        return EXIT_ERROR
    except (ManifestError, configuration.ConfigError, EditError, CipherError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_ERROR
    except (UsageError, SelectorError, ExplainError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
