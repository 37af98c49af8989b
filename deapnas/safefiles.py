"""The files of a run directory, opened so that nothing is read, written or deleted through a
symbolic link, and named so that no name read from the directory leads out of it.

A run directory may come from someone else, so everything in it is untrusted, names included:

- a symbolic link inside it is refused, never followed (:func:`open_file` opens with
  ``O_NOFOLLOW``; :func:`write_atomic` refuses a link where its file goes; :func:`folder` and
  :func:`files` refuse a linked folder), with a :class:`RunDirectoryError` naming the link;
- a name that becomes a path (a model id, a weights entry, a file named in a checkpoint) must
  match :data:`NAME`: letters, digits, ``.``, ``_`` and ``-``, no ``..``, no leading dot
  (:func:`child`);
- temporary files are created new (``O_CREAT | O_EXCL``) under a fresh name, so that no file
  waiting there is ever written; those a failed write or a kill left behind are removed when
  the run is next opened (:func:`remove_leftovers`).

The run directory itself may sit anywhere, behind links of the user's own.
"""
from __future__ import annotations

import errno
import fnmatch
import os
import re
import secrets
from pathlib import Path
from typing import IO

#: A file or folder name a run directory may use.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Temporary files of :func:`write_atomic` (and of deapnas versions before it).
LEFTOVER = re.compile(r"\..+\.tmp")


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as it is; the message says why and what to do."""


class SearchFailed(RuntimeError):
    """The search cannot produce a result (every candidate so far failed); the message says why
    (raised by :class:`deapnas.journal.Journal`; declared here, with the run directory's other
    error, where the command line catches it without importing torch)."""


def check_name(name: str, what: str) -> str:
    """``name``, when it may name a file of a run directory (:data:`NAME`, no ``..``); a
    :class:`RunDirectoryError` saying ``what`` it names otherwise."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise RunDirectoryError(
            f"{what} {name!r} is not a file name deapnas writes (letters, digits, '.', '_' and "
            "'-', no '..'): the run directory was altered; restore it, or start a new run")
    return name


def child(directory: str | os.PathLike, name: str, what: str = "the file name") -> Path:
    """``directory / name``, once ``name`` is checked by :func:`check_name`."""
    return Path(directory) / check_name(name, what)


def refuse_link(path: str | os.PathLike) -> Path:
    """``path``, unless it is a symbolic link (a :class:`RunDirectoryError` then)."""
    path = Path(path)
    if path.is_symlink():
        raise _link_error(path)
    return path


def open_file(path: str | os.PathLike, mode: str = "rb") -> IO:
    """``open(path, mode)``, refusing a symbolic link at ``path`` (even a dangling one) instead
    of following it."""
    def no_follow(name: str, flags: int) -> int:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)

    try:
        return open(path, mode, opener=no_follow)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _link_error(Path(path)) from None
        raise


def read_bytes(path: str | os.PathLike) -> bytes:
    """The content of ``path`` (not through a link); ``FileNotFoundError`` when it is missing."""
    with open_file(path, "rb") as handle:
        return handle.read()


def write_atomic(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` so that ``path`` holds either its old or its new content, never a part:
    into a new temporary file beside it, made durable, then renamed over ``path``. A link at
    ``path`` is refused; a full disk is a :class:`RunDirectoryError` that says so."""
    path = refuse_link(path)
    handle, tmp = _new_temporary(path)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise disk_error(path, error) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temporary(path: Path) -> tuple[IO, Path]:
    """A file created new beside ``path`` (``.NAME.RANDOM.tmp``), open for writing."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return open_file(tmp, "xb"), tmp
        except FileExistsError:
            continue
        except OSError as error:
            raise disk_error(path, error) from None


def folder(root: str | os.PathLike, *names: str) -> Path:
    """The folder ``root/names...`` of a run directory, created where missing; each name is
    checked (:func:`check_name`) and none may be a link or a file."""
    path = Path(root)
    for name in names:
        path = child(path, name, "the folder")
        try:
            path.mkdir()
        except FileExistsError:
            if not refuse_link(path).is_dir():
                raise RunDirectoryError(f"{path} should be a folder, but is a file: the run "
                                        "directory was altered; restore it, or start a new "
                                        "run") from None
        except OSError as error:
            raise disk_error(path, error) from None
    return path


def files(directory: str | os.PathLike, pattern: str) -> list[Path]:
    """The entries of ``directory`` whose names match ``pattern`` (a glob), in name order; none
    when it is missing. A linked ``directory`` is refused, so that deleting what this lists
    deletes nothing outside the run directory (a listed link is the link, not its target)."""
    directory = refuse_link(directory)
    if not directory.is_dir():
        return []
    return sorted(directory / name for name in os.listdir(directory)
                  if fnmatch.fnmatchcase(name, pattern))


def remove_leftovers(directory: str | os.PathLike) -> None:
    """Delete the temporary files (:data:`LEFTOVER`) that writes stopped by a fault or a kill
    left in ``directory`` and its folders (a linked folder is not entered; a leftover that is a
    link is deleted as a link). Call it only while no write can be under way: holding the
    run's lock, before any evaluation."""
    for parent, folders, names in os.walk(directory):
        for name in folders + names:
            path = Path(parent) / name
            if LEFTOVER.fullmatch(name) and (path.is_symlink() or not path.is_dir()):
                path.unlink(missing_ok=True)


def disk_error(path: Path, error: OSError) -> RunDirectoryError:
    """The :class:`RunDirectoryError` for a failed write of ``path``: a full disk says so."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return RunDirectoryError(f"no space left to write {path} ({error.strerror}); free some "
                                 "space and continue with `deapnas resume` on the run "
                                 "directory")
    return RunDirectoryError(f"cannot write {path}: {error.strerror or error}")


def _link_error(path: Path) -> RunDirectoryError:
    return RunDirectoryError(f"{path} is a symbolic link; deapnas never reads, writes or deletes "
                             "through a link in a run directory: replace it with the file or "
                             "folder itself, or start a new run")
