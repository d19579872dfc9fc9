"""The HTML of the listening page (:mod:`codec.eval.listen` writes it and the files it refers to):
plain HTML and CSS, every score a ``<data value="...">`` element."""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .report import METRICS, Results
from .spectrogram import BAND_HZ, RANGE_DB, palette

#: How each metric is labelled and printed (digits), in the order of :data:`METRICS`.
METRIC_LABELS: dict[str, tuple[str, int]] = {
    "pesq_wb": ("PESQ-WB", 2), "stoi": ("STOI", 3), "mel_distance": ("mel dist.", 2),
    "si_sdr": ("SI-SDR dB", 1), "dnsmos_ovrl": ("DNSMOS", 2), "dnsmos_sig": ("SIG", 2),
    "dnsmos_bak": ("BAK", 2), "dnsmos_p808": ("P.808", 2), "tone_db": ("tone dB", 1)}
#: The scores a clip's card shows (the table shows all of METRICS).
CARD_METRICS = ("pesq_wb", "stoi", "si_sdr", "dnsmos_ovrl", "tone_db")


@dataclasses.dataclass(frozen=True)
class Clip:
    """One file chosen for listening: ``index`` into ``results.files``, its ``rank`` (0 = lowest
    ranking score) among ``n_ranked`` files, a ``label`` ("worst", "median", "best", "62nd
    percentile" or "" for a single file) and the ranking ``score`` (NaN if it had none)."""

    index: int
    rank: int
    n_ranked: int
    label: str
    score: float


@dataclasses.dataclass(frozen=True)
class Card:
    """One player + spectrogram on the page: the original (``system`` None) or one system."""

    system: int | None
    audio: str  # paths relative to the page
    image: str
    image_size: tuple[int, int]
    band_errors: np.ndarray | None




_CSS = """
:root { color-scheme: light dark; --bg: #fdfdfd; --fg: #1d1d1f; --muted: #62626a; --card: #f2f2f5;
  --line: #d9d9de; --bar: #b4477d; }
@media (prefers-color-scheme: dark) { :root { --bg: #121214; --fg: #ececf0; --muted: #a3a3ad;
  --card: #1e1e22; --line: #34343a; --bar: #e17fb0; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 1rem; background: var(--bg); color: var(--fg);
  font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 1.5rem; margin: .2rem 0 .6rem; }
h2 { font-size: 1.2rem; margin: 1.6rem 0 .5rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
.muted, figcaption small, .legend { color: var(--muted); }
ul.notes { padding-left: 1.2rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: .92rem; }
th, td { padding: .3rem .55rem; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.plot img { max-width: 100%; height: auto; background: #fff; }
.legend { display: flex; flex-wrap: wrap; align-items: center; gap: .4rem 1rem; font-size: .88rem; }
.scale { display: inline-block; width: 9rem; height: .8rem; border-radius: 2px; vertical-align: middle; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: .75rem; }
figure.card { margin: 0; padding: .6rem; background: var(--card); border-radius: 8px; }
figcaption { display: flex; justify-content: space-between; gap: .5rem; margin-bottom: .35rem; }
.card audio { display: block; width: 100%; height: 2.2rem; }
.card img { display: block; width: 100%; height: 150px; margin-top: .4rem; border-radius: 3px; }
.card svg { display: block; width: 100%; height: 2.6rem; margin-top: .3rem; }
.card svg path { fill: var(--bar); }
.card svg line { stroke: var(--line); }
dl.scores { display: grid; grid-template-columns: repeat(5, auto); gap: 0 .5rem; margin: .35rem 0 0;
  font-size: .85rem; font-variant-numeric: tabular-nums; }
dl.scores dt { color: var(--muted); font-size: .75rem; grid-row: 1; }
dl.scores dd { margin: 0; grid-row: 2; }
.band-note { font-size: .75rem; color: var(--muted); margin: 0; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _number(value: float, digits: int) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _data(value: float, text: str, **attrs: object) -> str:
    """A ``<data>`` element: machine-readable ``value`` (repr, "nan" if undefined), shown ``text``."""
    extra = "".join(f' data-{k.replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    shown = repr(float(value)) if math.isfinite(value) else "nan"
    return f'<data value="{shown}"{extra}>{_e(text)}</data>'


def _systems_line(results: Results) -> str:
    by_name: dict[str, list[str]] = {}
    for s in results.systems:
        by_name.setdefault(s.name, []).append(f"{s.kbps:g}")
    return "; ".join(f"{name} at {', '.join(rates)} kbps" for name, rates in by_name.items())


def _scores_table(results: Results) -> str:
    head = "".join(f"<th>{_e(METRIC_LABELS[m][0])}</th>" for m in METRICS)
    lines = ['<div class="table-wrap"><table>',
             f"<thead><tr><th>system</th><th>kbps</th><th>real kbps</th>{head}"
             "<th>encode &times;RT</th><th>decode &times;RT</th></tr></thead><tbody>"]
    if results.original:
        cells = ["<td>original</td>", "<td></td>", "<td></td>"]
        for m in METRICS:
            value = results.original.get(m, math.nan)
            cells.append(f"<td>{_data(value, _number(value, METRIC_LABELS[m][1]), metric=m)}</td>"
                         if m in results.original else "<td></td>")
        lines.append("<tr>" + "".join(cells) + "<td></td><td></td></tr>")
    for j, s in enumerate(results.systems):
        cells = [f"<td>{_e(s.name)}</td>", f"<td>{s.kbps:g}</td>",
                 f"<td>{_data(s.real_kbps, f'{s.real_kbps:.2f}', system=j, metric='real_kbps')}</td>"]
        for m in METRICS:
            digits = METRIC_LABELS[m][1]
            cell = _data(s.mean[m], _number(s.mean[m], digits), system=j, metric=m, stat="mean")
            if s.n_files > 1:
                std = _data(s.std[m], _number(s.std[m], digits), system=j, metric=m, stat="std")
                cell += f" &plusmn; {std}"
            cells.append(f"<td>{cell}</td>")
        cells += [f"<td>{s.encode_x_realtime:.1f}</td>", f"<td>{s.decode_x_realtime:.1f}</td>"]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _band_svg(errors: np.ndarray, scale_db: float) -> str:
    """Bars of the per-band error (0 Hz left, Nyquist right), all cards of a clip on one scale: one
    path, and the values in its tooltip."""
    n = len(errors)
    bars = "".join(f"M{b * 10 + 1} 40v-{38.0 * min(value / scale_db, 1.0):.1f}h8V40z"
                   for b, value in enumerate(errors) if math.isfinite(value))
    values = " ".join("n/a" if not math.isfinite(v) else f"{v:.1f}" for v in errors)
    tip = f"mean |dB difference| per {BAND_HZ / 1000:g} kHz band from 0 Hz: {values}"
    return (f'<svg viewBox="0 0 {n * 10} 40" preserveAspectRatio="none" role="img" '
            f'aria-label="per-band error"><title>{_e(tip)}</title><path d="{bars}"/>'
            f'<line x1="0" y1="40" x2="{n * 10}" y2="40" stroke-width="1"/></svg>')


def _card(results: Results, clip: Clip, card: Card, band_scale: float) -> str:
    width, height = card.image_size
    if card.system is None:
        name, rate = "original", f"{results.sample_rate / 1000:g} kHz mono"
        extra = ('<p class="band-note">the reference, as every system got it; its loudest bin sets '
                 "the colour scale of this row</p>")
    else:
        s = results.systems[card.system]
        f = s.files[clip.index]
        real = f.n_bytes * 8 / f.duration_s / 1000 if f.duration_s > 0 else math.nan
        name = f"{s.name} {s.kbps:g} kbps"
        rate = _data(real, f"{_number(real, 2)} kbps real", file=clip.index, system=card.system,
                     metric="real_kbps")
        scores = "".join(
            f"<dt>{_e(METRIC_LABELS[m][0])}</dt><dd>"
            f"{_data(f.scores[m], _number(f.scores[m], METRIC_LABELS[m][1]), file=clip.index, system=card.system, metric=m)}"
            "</dd>" for m in CARD_METRICS)
        assert card.band_errors is not None
        extra = (_band_svg(card.band_errors, band_scale)
                 + f'<dl class="scores">{scores}</dl>')
    alt = f"spectrogram of {name}, {Path(results.files[clip.index]).name}"
    return (f'<figure class="card"><figcaption><b>{_e(name)}</b><small>{rate}</small></figcaption>'
            f'<audio controls preload="metadata" src="{quote(card.audio)}"></audio>'
            f'<img src="{quote(card.image)}" width="{width}" height="{height}" alt="{_e(alt)}">'
            f"{extra}</figure>")


def _clip_section(results: Results, clip: Clip, cards: Sequence[Card], rank_by: str) -> str:
    name = Path(results.files[clip.index]).name
    duration = results.systems[0].files[clip.index].duration_s
    label = f"{clip.label}: " if clip.label else ""
    errors = [c.band_errors for c in cards if c.band_errors is not None]
    finite = [float(np.nanmax(e)) for e in errors if np.isfinite(e).any()]
    band_scale = max(finite + [1.0])
    rank = f"{rank_by}'s PESQ-WB {_number(clip.score, 2)}"
    if clip.n_ranked > 1:
        rank = f"rank {clip.rank + 1} of {clip.n_ranked} by {rank}"
    body = "\n".join(_card(results, clip, c, band_scale) for c in cards)
    return (f'<section class="clip"><h3>{_e(label)}{_e(name)} <small class="muted">'
            f"{duration:.1f} s, {_e(rank)}</small></h3>\n"
            f'<p class="legend"><span>per-band error bars: 0 Hz (left) to '
            f"{results.sample_rate / 2000:g} kHz, full height = {band_scale:.0f} dB</span></p>\n"
            f'<div class="grid">\n{body}\n</div></section>')


def _gradient() -> str:
    """The colour scale as a CSS gradient, for the legend."""
    rgb = palette()
    n = len(rgb) // 3
    stops = [f"rgb({rgb[3 * i]},{rgb[3 * i + 1]},{rgb[3 * i + 2]}) {100 * i / (n - 1):.0f}%"
             for i in np.linspace(0, n - 1, 6).round().astype(int)]
    return f"linear-gradient(to right, {', '.join(stops)})"


def render_page(results: Results, rows: Sequence[tuple[Clip, Sequence[Card]]], rank_by: str,
                title: str) -> str:
    """The page's HTML for ``results`` and the clip ``rows`` already written."""
    n_files = len(results.files)
    notes = "".join(f"<li>{_e(note)}</li>" for note in results.notes)
    nan_notes = "".join(
        f"<li>{_e(f'{s.name} {s.kbps:g} kbps: {m} undefined on {s.n_nan[m]} of {s.n_files} files (left out of the mean)')}</li>"
        for s in results.systems for m in METRICS if s.n_nan[m])
    chosen = (f"{len(rows)} of {n_files} clips, chosen by {_e(rank_by)}'s PESQ-WB (mean over its "
              "bitrates) to span the range from worst to best. ") if n_files > 1 else ""
    if rows:
        listen = (f"<p>{chosen}Audio: mono, {results.sample_rate / 1000:g} kHz, 16-bit FLAC, "
                  "exactly what was scored.</p>"
                  f'<p class="legend"><span>spectrograms: 0 Hz (bottom) to '
                  f"{results.sample_rate / 2000:g} kHz, 10 ms per column</span><span>quiet "
                  f'<span class="scale" style="background: {_gradient()}"></span> loud '
                  f"({RANGE_DB:.0f} dB, one scale per row)</span></p>"
                  + "\n".join(_clip_section(results, clip, cards, rank_by) for clip, cards in rows))
    else:
        listen = "<p>No clips were requested (<code>--listen 0</code>).</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p>{n_files} reference file{'s' if n_files != 1 else ''}, {results.total_duration_s:.1f} s, mixed to mono and
scored at {results.sample_rate} Hz after alignment. Systems measured: {_e(_systems_line(results))}.</p>
<ul class="notes">{notes}{nan_notes}</ul>
<h2>Scores</h2>
<p class="muted">{'Mean &plusmn; std over files. ' if n_files > 1 else ''}Real kbps = compressed bytes &times; 8 / seconds of
audio; speed = seconds of audio / seconds of encoding (decoding). Also as
<a href="results.md">results.md</a> and <a href="results.json">results.json</a>.</p>
{_scores_table(results)}
<p class="plot"><img src="rate_quality.png" alt="PESQ-WB against real bitrate"></p>
<h2>Listen</h2>
{listen}
</body>
</html>
"""
