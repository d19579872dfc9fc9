"""The real speech of the corpus: Debian packages fetched with ``apt-get download`` + ``dpkg -x`` (no
install), and the jobs (one output file each) their extracted files become."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Job:
    """One output file: decode/convert ``src`` (a path, or text for the synthesisers)."""

    kind: str  # "file" | "g722" | "espeak" | "flite"
    src: str
    out: str  # relative to the corpus folder
    source: str
    language: str
    speaker: str
    licence: str
    args: tuple[str, ...] = ()



def _asterisk_jobs(root: Path) -> list[Job]:
    jobs = []
    base = root / "usr/share/asterisk/sounds"
    for path in sorted(base.rglob("*.g722")):
        rel = path.relative_to(base)
        if "silence" in rel.parts[:-1]:
            continue
        voice = rel.parts[0]  # e.g. en_US_f_Allison; Allison speaks both en and es
        lang, person = voice.split("_")[0], voice.split("_")[-1]
        licence = "CC-BY-3.0" if lang == "ru" else "CC-BY-SA-3.0"
        jobs.append(Job("g722", str(path), f"audio/asterisk/{rel.with_suffix('.wav').as_posix()}",
                         "asterisk", lang, f"asterisk-{person}", licence))
    return jobs


def _fillets_jobs(root: Path) -> list[Job]:
    jobs = []
    base = root / "usr/share/games/fillets-ng/sound"
    for path in sorted(base.glob("*/*/*.ogg")):
        level, lang = path.parent.parent.name, path.parent.name
        if lang not in ("cs", "nl"):
            continue
        parts = path.stem.split("-")
        who = parts[1] if len(parts) > 1 else ""
        speaker = f"fillets-{lang}-{who}" if who in ("m", "v") else f"fillets-{lang}-{level}-minor"
        rel = path.relative_to(base).with_suffix(".wav").as_posix()
        jobs.append(Job("file", str(path), f"audio/fillets/{rel}", "fillets", lang, speaker,
                         "GPL-2"))
    return jobs


def _tuxpaint_jobs(root: Path) -> list[Job]:
    jobs = []
    base = root / "usr/share/tuxpaint/stamps"
    for path in sorted(base.rglob("*_desc_*.ogg")):
        lang = path.name.split("_desc_")[-1].split(".")[0]
        rel = path.relative_to(base).as_posix()
        out = f"audio/tuxpaint/{rel.removesuffix('.ogg').replace('.', '_')}.wav"
        jobs.append(Job("file", str(path), out, "tuxpaint", lang, f"tuxpaint-{lang}", "GPL-2"))
    return jobs


def _per_language_jobs(base: Path, source: str, pattern: str, licence: str) -> list[Job]:
    jobs, seen = [], set()
    for path in sorted(base.glob(pattern)):
        if path.suffix.lower() not in (".ogg", ".wav", ".opus", ".flac") or not path.is_file():
            continue
        real = path.resolve()
        if real in seen:  # symlinked duplicates (e.g. sr@latin -> sr)
            continue
        seen.add(real)
        lang = path.relative_to(base).parts[0]
        rel = path.relative_to(base).with_suffix(".wav").as_posix()
        jobs.append(Job("file", str(path), f"audio/{source}/{rel}", source, lang,
                         f"{source}-{lang}", licence))
    return jobs


def _klettres_jobs(root: Path) -> list[Job]:
    return _per_language_jobs(root / "usr/share/klettres", "klettres", "*/*/*", "GPL-2+")


def _ktuberling_jobs(root: Path) -> list[Job]:
    return _per_language_jobs(root / "usr/share/ktuberling/sounds", "ktuberling", "*/*", "GPL-2+")


# package -> function listing its jobs from the extracted root
PACKAGES: dict[str, Callable[[Path], list[Job]]] = {
    "asterisk-core-sounds-en-g722": _asterisk_jobs,
    "asterisk-core-sounds-es-g722": _asterisk_jobs,
    "asterisk-core-sounds-fr-g722": _asterisk_jobs,
    "asterisk-core-sounds-ru-g722": _asterisk_jobs,
    "fillets-ng-data-cs": _fillets_jobs,
    "fillets-ng-data-nl": _fillets_jobs,
    "tuxpaint-stamps-default": _tuxpaint_jobs,
    "klettres-data": _klettres_jobs,
    "ktuberling-data": _ktuberling_jobs,
}


def fetch_package(name: str, cache_dir: Path, log: Callable[[str], None] = print) -> Path | None:
    """``apt-get download`` + ``dpkg -x`` package ``name`` into ``cache_dir/root/<name>``.

    Returns the extracted root, or None (with a warning) when the package cannot be had.
    Runs ``apt-get update`` once if the first download fails.
    """
    root = cache_dir / "root" / name
    if (root / ".extracted").exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        warnings.warn(f"apt-get/dpkg not found: skipping {name}", stacklevel=2)
        return None
    debs = cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        for old in debs.glob(f"{name}_*.deb"):
            old.unlink()
        res = subprocess.run(["apt-get", "download", "-q", name], cwd=debs,
                             capture_output=True, text=True)
        found = sorted(debs.glob(f"{name}_*.deb"))
        if res.returncode == 0 and found:
            break
        if attempt == 0 and not _APT_UPDATED:
            log(f"apt-get download {name} failed; running apt-get update")
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
            _APT_UPDATED.append(True)
            continue
        warnings.warn(f"cannot download Debian package {name} ({res.stderr.strip()[-200:]}): "
                      f"skipping it", stacklevel=2)
        return None
    tmp = cache_dir / "root" / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    res = subprocess.run(["dpkg", "-x", str(found[-1]), str(tmp)], capture_output=True, text=True)
    if res.returncode != 0:
        warnings.warn(f"dpkg -x {found[-1].name} failed: skipping {name}", stacklevel=2)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    (root / ".extracted").touch()
    found[-1].unlink()  # the extracted tree is the cache
    return root


_APT_UPDATED: list[bool] = []
