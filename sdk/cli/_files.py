"""What a command may write and which model files it may trust, decided before the work starts; and reports
written so that one that cannot be written never loses the others or the results."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

from edgekit.errors import EdgekitError


class OutputError(EdgekitError):
    default_hint = "give the option a path you can write to"


def _exists(p: Path, flag: str) -> bool:
    try:
        os.stat(p)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except ValueError:  # an embedded NUL byte
        raise OutputError(f"{flag} {str(p)!r} is not a valid path") from None
    except OSError as e:
        what = "a name in the path is too long" if e.errno == errno.ENAMETOOLONG else (e.strerror or str(e))
        raise OutputError(f"{flag} {p}: {what}") from None


def check_output(path, flag: str, folder: bool = False) -> Path:
    """Refuse an output path that cannot be written: an existing folder where a file goes (or the reverse), a
    parent that is a file, a place without write permission, a name too long. Nothing is created."""
    p = Path(path).expanduser()
    kind = "folder" if folder else "file"
    hint = f"give {flag} a {kind} path you can write to"
    if _exists(p, flag):
        if p.is_dir() != folder:
            raise OutputError(f"{flag} {p} is {'a file, not a folder' if folder else 'a folder, not a file'}", hint)
        if not os.access(p, os.W_OK | (os.X_OK if folder else 0)):
            raise OutputError(f"{flag} {p} is not writable", hint)
        return p
    anc = p.parent
    while not _exists(anc, flag):
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"{flag} {p}: {anc} is a file, so no {kind} can be made under it", hint)
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {p}: no permission to create files in {anc}", hint)
    return p


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def model_files(path) -> list[Path]:
    """The files a model consists of (IR .xml and .bin, ONNX external data, a folder's files); never raises."""
    from edgekit.formats import detect

    p = Path(path).expanduser()
    try:
        src = detect(p)  # its files include an IR's .bin and an ONNX model's external data
    except EdgekitError:
        return [p]
    return [p, src.path, *src.files]


def refuse_overwrite(outputs: dict[str, Path | None], protected: list[tuple[str, Path]]) -> None:
    """Refuse an output that would overwrite one of the command's own input files (`protected`: (what, path)),
    and two outputs with the same path."""
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        for what, f in protected:
            if f is not None and _same(Path(path), Path(f)):
                raise OutputError(f"{flag} {path} is {what}: writing there would overwrite it",
                                  f"write {flag} to another path")
        for other, flag2 in seen.items():
            if _same(Path(path), other):
                raise OutputError(f"{flag2} and {flag} both write {path}", "give each output its own path")
        seen[Path(path)] = flag


def write_outputs(items: list[tuple[str, Path | None, Callable[[], str | bytes]]]) -> list[str]:
    """Write every (flag, path, make) whose path is set; one that fails does not stop the others. Returns
    'FLAG PATH (why)' for each that failed. A bug in `make` is raised after the others are written."""
    failed, bug = [], None
    for flag, path, make in items:
        if path is None:
            continue
        path = Path(path)
        tmp = path.with_name(f".edgekit-{os.getpid()}.tmp")
        try:
            data = make()
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
                f.write(data)
            os.replace(tmp, path)  # a report is whole or absent, never half-written
        except EdgekitError as e:
            failed.append(f"{flag} {path} ({e.message})")
        except OSError as e:
            failed.append(f"{flag} {path} ({e.strerror or e})")
        except Exception as e:  # noqa: BLE001  (kept for after the other reports)
            bug = bug or e
        finally:
            if tmp.exists():
                tmp.unlink()
    if bug is not None:
        raise bug
    return failed


def report_failure(failed: list[str]) -> None:
    """Raise the user error for reports that could not be written (after the results were shown)."""
    if failed:
        raise OutputError(f"could not write {'; '.join(failed)}",
                          "the results above and any other reports were kept; fix the path and run again")


# ------------------------------------------------------------------------------------ trust, per file

TRUST_HELP = ("Trust this model file to run code when loaded (.pt2, TorchScript, pickled PyTorch, a SavedModel "
              "with file or Python ops); repeatable, one file each: trust is per file.")
TRUST_CODE_HELP = ("Trust the one model on the line that can run code when loaded; refused when several can "
                   "(name each with --trust PATH).")


def resolve_trust(models: list[Path], trusted: list[Path] | None, trust_code: bool) -> bool:
    """Decide trust per file for a command that loads several models, before anything loads. Returns the
    trust_code to pass on, which is True only when every model that can run code was trusted by name (or is
    the only one such model, with --trust-code): the others cannot run code whatever the flag says."""
    from edgekit.formats import detect
    from edgekit.trust import needs_trust

    needs: list[Path] = []
    for m in models:
        try:
            src = detect(m)
        except EdgekitError:
            continue  # the command reports a model it cannot read in its own way
        if needs_trust(src) and not any(_same(src.path, n) for n in needs):
            needs.append(src.path)
    trusted = list(trusted or [])
    for t in trusted:
        if not any(_same(Path(t).expanduser(), Path(m).expanduser()) for m in models):
            raise EdgekitError(f"--trust {t} names no model on this command line",
                               "pass --trust with the exact path of a model you give the command")
    if trust_code and trusted:
        raise EdgekitError("give either --trust-code or --trust PATH, not both",
                           "name each file you trust with --trust PATH")
    if trust_code:
        if len(needs) > 1:
            raise EdgekitError(f"--trust-code would trust {len(needs)} files that can run code when loaded "
                               f"({', '.join(p.name for p in needs)})",
                               "trust is per file: name each file you trust with --trust PATH")
        return True
    untrusted = [p for p in needs if not any(_same(p, Path(t).expanduser()) for t in trusted)]
    if untrusted:
        raise EdgekitError(f"{', '.join(p.name for p in untrusted)} can run code when loaded and "
                           f"{'is' if len(untrusted) == 1 else 'are'} not trusted",
                           f"pass --trust {untrusted[0]} (one --trust per file) only if you trust where it came from")
    return bool(needs)
