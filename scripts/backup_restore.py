"""Back up and restore what a gateway replica keeps on disk: its configuration,
the traffic file, the canary state and the audit chains.

scripts/backup and scripts/restore run this; `--help` on either explains the
options. The archive is a gzip'd tar with a MANIFEST.json that lists every
member with its SHA-256 and, when the chain key was given, the end of every
audit chain (instance, seq, hash) as an anchor. Restore refuses an archive
whose members do not match the manifest, never overwrites without --force
(and with it moves what was there aside instead of deleting it), and ends by
verifying the restored chains against the backup's anchors and any anchor the
operator kept elsewhere (log shipping, GET /admin/audit's lastAnchor).

Secrets stay out of the archive: the audit key and the JWT keys are backed up
wherever the deployment keeps its secrets (a Kubernetes Secret, a vault).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FORMAT = "moderation-gateway-backup/1"
LOCK_WAIT_SECONDS = 10  # as long as a replica waits for the canary state lock


class Refused(Exception):
    """A problem the operator must fix; printed without a traceback, exit 1."""


def log(text: str) -> None:
    print(f"[{Path(sys.argv[0]).name}] {text}", file=sys.stderr)


# --- where things are ---------------------------------------------------------

@dataclass
class Places:
    traffic: Path | None
    canary_state: Path | None
    audit: list[Path]


def load_config(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise Refused(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise Refused(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise Refused(f"{path} is not a gateway configuration (expected a mapping)")
    return data


def places_from(config_path: Path, config: dict | None, args: argparse.Namespace) -> Places:
    """The paths the gateway would use (relative ones resolved against the config's
    folder, as the gateway does), each replaced by its command-line override."""
    # Lexically, as the gateway does: a ConfigMap's gateway.yaml is a link into ..data/.
    base = Path(os.path.abspath(config_path)).parent

    def resolve(value) -> Path | None:
        if not isinstance(value, str) or not value:
            return None
        return Path(value) if value.startswith("/") else base / value

    config = config or {}
    traffic = config.get("traffic") or {}
    audit = config.get("audit") or {}
    configured = resolve(audit.get("path")) if audit.get("enabled") else None
    audit_dirs = [Path(a) for a in args.audit] if args.audit else [configured] if configured else []
    return Places(
        traffic=Path(args.traffic) if args.traffic else resolve(traffic.get("file")),
        canary_state=Path(args.canary_state) if args.canary_state else resolve(traffic.get("canary_state_file")),
        audit=audit_dirs,
    )


def gateway_binary(explicit: str | None) -> str | None:
    candidates = [explicit, os.environ.get("GATEWAY_BIN"), shutil.which("moderation-gateway"),
                  str(ROOT / ".build/release/moderation-gateway"), str(ROOT / ".build/debug/moderation-gateway")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    if explicit:
        raise Refused(f"--gateway {explicit} is not an executable file")
    return None


def verify_chains(binary: str, key_file: Path, anchors: list[str], directories: list[Path]) -> tuple[int, dict]:
    """`moderation-gateway audit verify --json`: its exit status and report."""
    command = [binary, "audit", "verify", "--json", "--key-file", str(key_file)]
    for anchor in anchors:
        command += ["--anchor", anchor]
    result = subprocess.run(command + [str(d) for d in directories], capture_output=True, text=True)
    if result.returncode == 64:
        raise Refused(f"audit verify refused its arguments: {result.stderr.strip() or result.stdout.strip()}")
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise Refused(f"audit verify gave no report (exit {result.returncode}): {result.stderr.strip()[-500:]}") from None
    return result.returncode, report


def describe_problems(report: dict) -> str:
    lines = []
    for chain in report.get("chains", []):
        problem = chain.get("problem")
        if problem:
            lines.append(f"  {chain.get('instance')}: {problem.get('kind')} in {problem.get('file')} line "
                         f"{problem.get('line')}: {problem.get('message')}")
    return "\n".join(lines) or json.dumps(report)[:1000]


# --- backup ---------------------------------------------------------------------

def read_locked(state: Path) -> bytes:
    """The canary state as a replica would read it: under `<file>.lock`, so the copy
    is never a half-written decision."""
    lock_path = Path(str(state) + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
    except OSError:
        return state.read_bytes()  # a read-only volume: the gateway replaces the file atomically anyway
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Refused(f"{lock_path} stayed locked for {LOCK_WAIT_SECONDS} s (a replica writing?); try again") from None
                time.sleep(0.05)
            except OSError:
                break  # no locks on this volume
        return state.read_bytes()
    finally:
        os.close(fd)


def audit_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise Refused(f"audit folder {directory} does not exist")
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.is_symlink())
    if not files:
        raise Refused(f"audit folder {directory} holds no files")
    return files


def backup(args: argparse.Namespace) -> int:
    started = time.monotonic()
    config_path = Path(args.config)
    config = load_config(config_path)
    places = places_from(config_path, config, args)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise Refused(f"{out} exists; choose another --out or pass --force")
    if places.canary_state is not None and not places.canary_state.exists():
        log(f"no canary state at {places.canary_state} yet (no canary has decided): nothing to keep there")
    key_file = Path(args.key_file) if args.key_file else None
    binary = gateway_binary(args.gateway)
    if places.audit and key_file is None:
        log("warning: no --key-file: the audit chains are copied but not verified, and the archive records no anchors")
    if key_file is not None and binary is None:
        raise Refused("verifying the audit chains needs moderation-gateway: pass --gateway PATH or build it (swift build)")

    members: list[tuple[str, bytes | Path]] = [("config/gateway.yaml", config_path.read_bytes())]
    if places.traffic is not None:
        if not places.traffic.is_file():
            raise Refused(f"traffic file {places.traffic} does not exist")
        members.append(("traffic/traffic.yaml", places.traffic.read_bytes()))
    if places.canary_state is not None and places.canary_state.exists():
        members.append(("canary/canary-state.json", read_locked(places.canary_state)))

    with tempfile.TemporaryDirectory(prefix="gateway-backup-") as scratch:
        # The audit files are copied first, then verified as copied: a writer appending
        # meanwhile can leave a torn last record in the copy, which verify reports and
        # the gateway cuts off when it starts on the restored folder.
        copies: list[Path] = []
        for index, directory in enumerate(places.audit):
            copy = Path(scratch) / f"audit-{index}"
            copy.mkdir()
            for source in audit_files(directory):
                shutil.copyfile(source, copy / source.name)
                members.append((f"audit/{index}/{source.name}", copy / source.name))
            copies.append(copy)
        chains = []
        if copies and key_file is not None:
            code, report = verify_chains(binary, key_file, args.anchor, copies)
            if code not in (0, 2):
                raise Refused("the audit chains do not verify; nothing was written:\n" + describe_problems(report))
            chains = [{"instance": c["instance"], "lastSeq": c["lastSeq"], "lastHash": c["lastHash"],
                       "records": c["records"], "status": c["status"]}
                      for c in report["chains"] if c.get("lastSeq") is not None]

        manifest = {
            "format": FORMAT,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": {"config": str(config_path), "traffic": str(places.traffic) if places.traffic else None,
                       "canary_state": str(places.canary_state) if places.canary_state else None,
                       "audit": [str(d) for d in places.audit]},
            "audit_directories": len(places.audit),
            "chains": chains,
            "operator_anchors": args.anchor,
            "files": {},
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp: mode 0600 (audit records are personal data), a fresh name, removed on failure.
        fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                for name, content in members:
                    data = content if isinstance(content, bytes) else content.read_bytes()
                    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                    add_member(archive, name, data)
                add_member(archive, "MANIFEST.json", json.dumps(manifest, indent=2).encode())
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, out)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise

    log(f"wrote {out}: {len(members)} files"
        + "".join(f"; chain {c['instance']} to seq {c['lastSeq']} ({c['status']})" for c in chains)
        + f" in {time.monotonic() - started:.2f} s")
    for chain in chains:
        print(f"anchor {chain['instance']}:{chain['lastSeq']}:{chain['lastHash']}")
    return 0


def add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    archive.addfile(info, io.BytesIO(data))


# --- restore --------------------------------------------------------------------

def read_archive(path: Path) -> tuple[dict, dict[str, bytes]]:
    """Every member of the archive, checked against its manifest: only the names
    the manifest lists, only regular files, each with its recorded SHA-256."""
    try:
        archive = tarfile.open(path, mode="r:gz")
    except (OSError, tarfile.TarError) as error:
        raise Refused(f"{path} is not a backup archive: {error}") from None
    contents: dict[str, bytes] = {}
    with archive:
        try:
            for member in archive:
                if not member.isfile():
                    raise Refused(f"{path}: member {member.name!r} is not a regular file")
                if member.name in contents:
                    raise Refused(f"{path}: member {member.name!r} appears twice")
                contents[member.name] = archive.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise Refused(f"{path} is damaged: {error}") from None
    try:
        manifest = json.loads(contents.pop("MANIFEST.json").decode("utf-8"))
    except KeyError:
        raise Refused(f"{path} has no MANIFEST.json: not made by scripts/backup") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Refused(f"{path}: MANIFEST.json is not JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Refused(f"{path}: not a {FORMAT} manifest")
    listed = manifest.get("files")
    chains = manifest.get("chains", [])
    if not isinstance(listed, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in listed.values()) \
            or not isinstance(chains, list) or not all(isinstance(c, dict) and {"instance", "lastSeq", "lastHash"} <= set(c) for c in chains) \
            or not isinstance(manifest.get("audit_directories", 0), int):
        raise Refused(f"{path}: MANIFEST.json does not have the shape scripts/backup writes")
    if set(listed) != set(contents):
        extra, missing = sorted(set(contents) - set(listed)), sorted(set(listed) - set(contents))
        raise Refused(f"{path}: members and manifest differ (not listed: {extra}, missing: {missing})")
    for name, data in contents.items():
        parts = name.split("/")
        allowed = name in ("config/gateway.yaml", "traffic/traffic.yaml", "canary/canary-state.json") or (
            len(parts) == 3 and parts[0] == "audit" and parts[1].isdigit()
            and int(parts[1]) < manifest.get("audit_directories", 0) and parts[2] not in ("", ".", ".."))
        if not allowed:
            raise Refused(f"{path}: unexpected member {name!r}")
        if hashlib.sha256(data).hexdigest() != listed[name]["sha256"]:
            raise Refused(f"{path}: {name} does not match its SHA-256 in the manifest (the archive is damaged or was changed)")
    return manifest, contents


IGNORED = {"lost+found"}  # what a fresh ext4 volume holds


def occupied(path: Path) -> bool:
    """A file, or a folder with something in it (an empty folder, or a fresh volume with
    only lost+found, is simply used)."""
    if path.is_dir() and not path.is_symlink():
        return any(entry.name not in IGNORED for entry in path.iterdir())
    return path.exists() or path.is_symlink()


def unused_name(path: Path, stamp: str) -> Path:
    """`<path>.before-restore-<stamp>`, numbered if that exists: a second restore in the
    same second never replaces what the first moved aside."""
    candidate = path.with_name(f"{path.name}.before-restore-{stamp}")
    number = 1
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = path.with_name(f"{path.name}.before-restore-{stamp}-{number}")
    return candidate


def write_atomic(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """Writes a temporary file beside `path` (mkstemp: a fresh, private name), fsyncs it,
    gives it `mode` and `owner`, and renames it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".restore", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        if owner is not None:
            os.chown(temporary, *owner)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def owner_for(target: Path) -> tuple[int, int] | None:
    """Restored files belong to whoever owns the target (or its folder), not to the root
    running the restore: the gateway runs as its own user (10001 in the images)."""
    if os.geteuid() != 0:
        return None
    for candidate in (target, target.parent):
        if candidate.exists():
            info = candidate.stat()
            return info.st_uid, info.st_gid
    return None


def restore(args: argparse.Namespace) -> int:
    started = time.monotonic()
    archive = Path(args.archive)
    manifest, contents = read_archive(archive)
    config_path = Path(args.config)
    restore_config = not config_path.exists()
    if restore_config:
        try:
            config = yaml.safe_load(contents["config/gateway.yaml"])
        except yaml.YAMLError as error:
            raise Refused(f"the archive's gateway.yaml is not valid YAML: {error}") from None
    else:
        config = load_config(config_path)
    places = places_from(config_path, config if isinstance(config, dict) else {}, args)

    backed_up_dirs = manifest.get("audit_directories", 0)
    if backed_up_dirs != len(places.audit):
        raise Refused(f"the archive holds {backed_up_dirs} audit folder(s) and {len(places.audit)} target(s) were given "
                      "(the configuration's audit.path, or one --audit per folder, in the backup's order)")
    key_file = Path(args.key_file) if args.key_file else None
    if backed_up_dirs and key_file is None:
        raise Refused("restoring audit chains needs --key-file (the chain key the gateway uses) to verify them")
    binary = gateway_binary(args.gateway)
    if backed_up_dirs and binary is None:
        raise Refused("verifying the audit chains needs moderation-gateway: pass --gateway PATH or build it (swift build)")

    targets: list[tuple[Path, str]] = []  # (target, archive member, or prefix for a folder)
    if "traffic/traffic.yaml" in contents:
        if places.traffic is None:
            raise Refused("the archive holds a traffic file but the configuration names none (traffic.file); pass --traffic")
        targets.append((places.traffic, "traffic/traffic.yaml"))
    if "canary/canary-state.json" in contents:
        if places.canary_state is None:
            raise Refused("the archive holds canary state but the configuration names no traffic.canary_state_file; "
                          "pass --canary-state")
        targets.append((places.canary_state, "canary/canary-state.json"))
    for index, directory in enumerate(places.audit):
        targets.append((directory, f"audit/{index}/"))
    busy = [str(t) for t, _ in targets if occupied(t)]
    if busy and not args.force:
        raise Refused("these already exist (a live deployment?): " + ", ".join(busy)
                      + "; stop the gateway, then pass --force to move them aside and restore")

    # The chains are verified before anything is touched: staged in a scratch folder, checked
    # against the backup's anchors and the operator's. A refusal here changes nothing.
    anchors = [f"{c['instance']}:{c['lastSeq']}:{c['lastHash']}" for c in manifest.get("chains", [])] + args.anchor
    with tempfile.TemporaryDirectory(prefix="gateway-restore-") as scratch:
        staged = []
        for index in range(backed_up_dirs):
            folder = Path(scratch) / str(index)
            folder.mkdir()
            for member, data in contents.items():
                if member.startswith(f"audit/{index}/"):
                    (folder / member.split("/")[2]).write_bytes(data)
            staged.append(folder)
        report = {"chains": []}
        if staged:
            code, report = verify_chains(binary, key_file, anchors, staged)
            if code not in (0, 2):
                raise Refused(f"the archive's audit chains do not verify against {len(anchors)} anchor(s); nothing was "
                              "changed:\n" + describe_problems(report))

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if restore_config:
        write_atomic(config_path, contents["config/gateway.yaml"], 0o640, owner_for(config_path))
    for target, name in targets:
        owner = owner_for(target)
        if not name.endswith("/"):
            if occupied(target):
                aside = unused_name(target, stamp)
                os.replace(target, aside)
                log(f"moved aside: {target} -> {aside}")
            write_atomic(target, contents[name], 0o640, owner)
            continue
        if occupied(target):
            if os.path.ismount(target):
                # A volume's mount point cannot be renamed: its entries move into a folder
                # inside it, which the gateway and `audit verify` do not read (they read the
                # folder's own *.jsonl files).
                aside = unused_name(target / "audit", stamp)
                aside.mkdir()
                for entry in list(target.iterdir()):
                    if entry.name not in IGNORED and entry != aside:
                        os.replace(entry, aside / entry.name)
            else:
                aside = unused_name(target, stamp)
                os.replace(target, aside)
            log(f"moved aside: {target} -> {aside}")
        target.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            os.chown(target, *owner)
        for member, data in sorted(contents.items()):
            if member.startswith(name):
                write_atomic(target / member[len(name):], data, 0o640, owner)

    chains_text = "".join(f"; chain {c['instance']} verifies to seq {c['lastSeq']}" for c in report["chains"])
    if places.audit:
        chains_text += f" (anchors reached: {len(anchors)})"
    log(f"restored {archive} (made {manifest.get('created')}): {len(contents)} files{chains_text} "
        f"in {time.monotonic() - started:.2f} s")
    return 0


# --- command line ---------------------------------------------------------------

def parser(command: str) -> argparse.ArgumentParser:
    if command == "backup":
        p = argparse.ArgumentParser(
            prog="scripts/backup",
            description="Write one archive of a gateway replica's configuration, traffic file, canary state and "
                        "audit chains. Paths come from the gateway configuration (relative ones against its "
                        "folder, as the gateway resolves them); each option below overrides one. Safe while the "
                        "gateway runs: the canary state is read under its lock; an audit record being written "
                        "may be cut from the copy (the gateway removes such a torn record at start).",
            epilog="Prints one line `anchor INSTANCE:SEQ:HASH` per audit chain: keep them outside the backup. "
                   "Example: scripts/backup --config /etc/moderation-gateway/gateway.yaml --key-file "
                   "/run/secrets/audit-key --out /backups/gw-0-$(date +%%F).tar.gz")
        p.add_argument("--out", required=True, help="archive to write (gzip'd tar, mode 0600); refused if it exists")
        p.add_argument("--force", action="store_true", help="replace an existing --out")
    else:
        p = argparse.ArgumentParser(
            prog="scripts/restore",
            description="Restore an archive written by scripts/backup, with the gateway stopped: checks every file "
                        "against the archive's manifest, puts the traffic file, canary state and audit folders where "
                        "the configuration says (the archive's configuration is written to --config first when that "
                        "file is missing), then verifies the audit chains against the archive's anchors and every "
                        "--anchor given.",
            epilog="Exit 0 when everything was restored and verifies; 1 with the reason otherwise. Nothing is "
                   "deleted: with --force, what was in the way is renamed <name>.before-restore-<time>.")
        p.add_argument("archive", help="the archive scripts/backup wrote")
        p.add_argument("--force", action="store_true",
                       help="restore over existing files and folders (they are moved aside, never deleted)")
    p.add_argument("--config", required=True, help="the gateway configuration (gateway.yaml)")
    p.add_argument("--key-file", help="the audit chain key (audit.key_file): verifies the chains "
                                      "(required to restore audit folders)")
    p.add_argument("--anchor", action="append", default=[], metavar="INSTANCE:SEQ:HASH",
                   help="an anchor the chains must still reach (from the `audit anchor` log line or GET /admin/audit); "
                        "repeatable")
    p.add_argument("--audit", action="append", default=[], metavar="DIR",
                   help="an audit folder instead of the configuration's audit.path; repeat for several replicas' "
                        "folders (restore expects them in the backup's order)")
    p.add_argument("--traffic", help="the traffic file instead of the configuration's traffic.file")
    p.add_argument("--canary-state", help="the canary state file instead of traffic.canary_state_file")
    p.add_argument("--gateway", help="the moderation-gateway binary that verifies the chains "
                                     "(default: $GATEWAY_BIN, PATH, then this checkout's .build)")
    return p


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("backup", "restore"):
        print("usage: backup_restore.py backup|restore [options] (--help for each)", file=sys.stderr)
        return 64
    command = sys.argv[1]
    sys.argv = [f"scripts/{command}"] + sys.argv[2:]
    args = parser(command).parse_args()
    try:
        return backup(args) if command == "backup" else restore(args)
    except Refused as error:
        log(f"error: {error}")
        return 1
    except OSError as error:
        log(f"error: {error.filename or ''}: {error.strerror or error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
